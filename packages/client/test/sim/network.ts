/**
 * A simulated UDP internet for deterministic ICE tests: hosts with UDP sockets, NAT boxes with
 * every RFC 4787 mapping and filtering behaviour, port allocation (preserving, sequential or
 * random), mapping timeouts and hairpinning, and per-packet loss, delay and jitter from a seeded
 * PRNG. Time is the {@link Scheduler}'s virtual clock; nothing here touches a real socket.
 *
 * Topology: one "internet" realm, and behind each NAT one LAN. A NAT with mapping `none` is a
 * firewall in front of hosts with public addresses (the symmetric UDP firewall when it filters).
 */
import { type TransportAddress, formatTransportAddress } from '@nat/protocol';
import { Scheduler, seededRandom } from './clock.js';

/** RFC 4787 section 4.1 mapping behaviour; `none` translates nothing. */
export type MappingBehaviour = 'none' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';
/** RFC 4787 section 5 filtering behaviour; `none` lets everything in. */
export type FilteringBehaviour = 'none' | 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

/** How a NAT box behaves. */
export interface NatConfig {
  readonly mapping: MappingBehaviour;
  readonly filtering: FilteringBehaviour;
  /** RFC 4787 section 4.2.1: keep the internal port when free (`preserving`), the next free one, or a random one. Default `preserving`. */
  readonly portAllocation?: 'preserving' | 'sequential' | 'random';
  /** An idle mapping expires after this long, ms (RFC 4787 REQ-5 asks for 2 min or more). Default 120000. */
  readonly mappingTimeout?: number;
  /** RFC 4787 section 6: a LAN host may reach another through the NAT's public address. Default false. */
  readonly hairpinning?: boolean;
  /**
   * UDP blocked: every outbound packet is dropped except those to these addresses. This models a
   * network where only the TURN server is reachable (in reality over TCP or TLS on 443).
   */
  readonly allowOnly?: readonly TransportAddress[];
}

/** Link behaviour, applied once per packet end to end. */
export interface LinkConfig {
  /** Probability of losing a packet, 0..1. Default 0. */
  readonly loss?: number;
  /** One-way delay, ms. Default 10. */
  readonly delay?: number;
  /** Extra random delay in [0, jitter) ms, which reorders packets. Default 0. */
  readonly jitter?: number;
}

/** The simplest TURN-like relay model: control messages travel beside the bytes instead of inside them. */
export type RelayMeta =
  | { readonly kind: 'allocate' }
  | { readonly kind: 'allocated'; readonly relayed: TransportAddress }
  | { readonly kind: 'send'; readonly peer: TransportAddress }
  | { readonly kind: 'data'; readonly peer: TransportAddress };

/** A datagram in flight. */
export interface SimPacket {
  readonly src: TransportAddress;
  readonly dst: TransportAddress;
  readonly bytes: Uint8Array;
  readonly meta?: RelayMeta;
}

/** `ip:port`. */
export const addr = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });
const key = (a: TransportAddress): string => formatTransportAddress(a);

type Owner = { readonly kind: 'host'; readonly host: SimHost } | { readonly kind: 'nat'; readonly nat: SimNat };

/** Counters, for test output. */
export interface NetworkStats {
  sent: number;
  lost: number;
  delivered: number;
  dropped: number;
}

/** The simulated network. */
export class SimNetwork {
  readonly clock: Scheduler;
  readonly random: () => number;
  readonly stats: NetworkStats = { sent: 0, lost: 0, delivered: 0, dropped: 0 };
  private readonly link: Required<LinkConfig>;
  private readonly owners = new Map<string, Owner>();

  constructor(init: { readonly seed?: number; readonly link?: LinkConfig; readonly clock?: Scheduler } = {}) {
    this.clock = init.clock ?? new Scheduler();
    this.random = seededRandom(init.seed ?? 1);
    this.link = { loss: 0, delay: 10, jitter: 0, ...init.link };
  }

  /** A host with a public address on the internet. */
  addHost(ip: string): SimHost {
    const host = new SimHost(this, ip, undefined);
    this.claim(ip, { kind: 'host', host });
    return host;
  }

  /** A NAT box with `publicIp` on the internet (ignored by a `none` mapping firewall). */
  addNat(publicIp: string, config: NatConfig): SimNat {
    const nat = new SimNat(this, publicIp, config);
    if (config.mapping !== 'none') this.claim(publicIp, { kind: 'nat', nat });
    return nat;
  }

  /** @internal */
  claim(ip: string, owner: Owner): void {
    if (this.owners.has(ip)) throw new Error(`address ${ip} already in use`);
    this.owners.set(ip, owner);
  }

  /** @internal a socket on `host` sends `packet`. */
  send(host: SimHost, packet: SimPacket): void {
    this.stats.sent++;
    if (this.link.loss > 0 && this.random() < this.link.loss) {
      this.stats.lost++;
      return;
    }
    const delay = this.link.delay + (this.link.jitter > 0 ? this.random() * this.link.jitter : 0);
    const nat = host.nat;
    let out = packet;
    if (nat !== undefined) {
      if (nat.hasLanIp(packet.dst.address)) {
        this.clock.after(delay, () => this.deliverTo(nat.lanHost(packet.dst.address), packet));
        return;
      }
      const translated = nat.outbound(packet, this.clock.now);
      if (translated === undefined) {
        this.stats.dropped++;
        return;
      }
      out = translated;
    }
    this.clock.after(delay, () => this.arrive(out, nat));
  }

  private arrive(packet: SimPacket, fromNat: SimNat | undefined): void {
    const owner = this.owners.get(packet.dst.address);
    if (owner === undefined) {
      this.stats.dropped++;
      return;
    }
    if (owner.kind === 'host') {
      this.deliverTo(owner.host, packet);
      return;
    }
    const nat = owner.nat;
    if (nat === fromNat && !nat.hairpinning) {
      this.stats.dropped++;
      return;
    }
    const inner = nat.inbound(packet, this.clock.now);
    if (inner === undefined) {
      this.stats.dropped++;
      return;
    }
    this.deliverTo(nat.lanHost(inner.dst.address), inner);
  }

  private deliverTo(host: SimHost | undefined, packet: SimPacket): void {
    const socket = host?.socket(packet.dst.port);
    if (socket?.onPacket === undefined) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
    socket.onPacket(packet);
  }
}

/** A host: an IP address with UDP sockets. */
export class SimHost {
  private readonly sockets = new Map<number, SimSocket>();
  private nextPort = 40000;

  /** @internal */
  constructor(
    readonly network: SimNetwork,
    readonly ip: string,
    readonly nat: SimNat | undefined,
  ) {}

  /** Binds a UDP socket, on `port` or the next free one. */
  bind(port?: number): SimSocket {
    let p = port;
    if (p === undefined) while (this.sockets.has((p = this.nextPort++)));
    if (this.sockets.has(p)) throw new Error(`port ${p} in use on ${this.ip}`);
    const socket = new SimSocket(this, addr(this.ip, p));
    this.sockets.set(p, socket);
    return socket;
  }

  /** @internal */
  socket(port: number): SimSocket | undefined {
    return this.sockets.get(port);
  }

  /** @internal */
  unbind(socket: SimSocket): void {
    if (this.sockets.get(socket.address.port) === socket) this.sockets.delete(socket.address.port);
  }
}

/** A UDP socket. */
export class SimSocket {
  /** Called for each datagram that reaches the socket. */
  onPacket: ((packet: SimPacket) => void) | undefined;

  /** @internal */
  constructor(
    readonly host: SimHost,
    readonly address: TransportAddress,
  ) {}

  /** Closes the socket: datagrams to its port are dropped from now on. */
  close(): void {
    this.onPacket = undefined;
    this.host.unbind(this);
  }

  /** Sends a datagram (and, for the relay model, its control information). */
  send(to: TransportAddress, bytes: Uint8Array, meta?: RelayMeta): void {
    this.host.network.send(this.host, { src: this.address, dst: to, bytes, ...(meta === undefined ? {} : { meta }) });
  }
}

interface Mapping {
  readonly key: string;
  readonly internal: TransportAddress;
  readonly external: TransportAddress;
  readonly addresses: Set<string>;
  readonly endpoints: Set<string>;
  lastUsed: number;
}

/** A NAT box (or, with mapping `none`, a stateful firewall). */
export class SimNat {
  readonly hairpinning: boolean;
  private readonly lan = new Map<string, SimHost>();
  private readonly byInternal = new Map<string, Mapping>();
  private readonly byExternal = new Map<string, Mapping>();
  private nextPort = 49152;
  /** Mappings ever created, for tests. */
  mappingsCreated = 0;

  /** @internal */
  constructor(
    private readonly network: SimNetwork,
    readonly publicIp: string,
    readonly config: NatConfig,
  ) {
    this.hairpinning = config.hairpinning ?? false;
  }

  /** A host on the LAN behind this NAT (for a `none` mapping firewall, a public address). */
  addHost(ip: string): SimHost {
    const host = new SimHost(this.network, ip, this);
    this.lan.set(ip, host);
    if (this.config.mapping === 'none') this.network.claim(ip, { kind: 'nat', nat: this });
    return host;
  }

  /** @internal */
  hasLanIp(ip: string): boolean {
    return this.lan.has(ip);
  }

  /** @internal */
  lanHost(ip: string): SimHost | undefined {
    return this.lan.get(ip);
  }

  /** The current external address of `internal` towards `remote`, if a live mapping exists. */
  mappingOf(internal: TransportAddress, remote: TransportAddress): TransportAddress | undefined {
    const m = this.byInternal.get(this.mappingKey(internal, remote));
    return m !== undefined && !this.expired(m, this.network.clock.now) ? m.external : undefined;
  }

  private mappingKey(internal: TransportAddress, remote: TransportAddress): string {
    switch (this.config.mapping) {
      case 'address-dependent':
        return `${key(internal)}>${remote.address}`;
      case 'address-and-port-dependent':
        return `${key(internal)}>${key(remote)}`;
      default:
        return key(internal);
    }
  }

  private expired(m: Mapping, now: number): boolean {
    return now - m.lastUsed > (this.config.mappingTimeout ?? 120_000);
  }

  private allocatePort(internalPort: number): number {
    const used = (p: number): boolean => this.byExternal.has(key(addr(this.publicIp, p)));
    const mode = this.config.portAllocation ?? 'preserving';
    if (mode === 'preserving' && !used(internalPort)) return internalPort;
    if (mode === 'random') {
      for (;;) {
        const p = 1024 + Math.floor(this.network.random() * (65536 - 1024));
        if (!used(p)) return p;
      }
    }
    while (used(this.nextPort)) this.nextPort = this.nextPort >= 65535 ? 1024 : this.nextPort + 1;
    return this.nextPort++;
  }

  /** @internal translate (and maybe create a mapping for) an outbound packet. */
  outbound(packet: SimPacket, now: number): SimPacket | undefined {
    const allow = this.config.allowOnly;
    if (allow !== undefined && !allow.some((a) => key(a) === key(packet.dst))) return undefined;
    const k = this.mappingKey(packet.src, packet.dst);
    let m = this.byInternal.get(k);
    if (m !== undefined && this.expired(m, now)) {
      this.byInternal.delete(k);
      this.byExternal.delete(key(m.external));
      m = undefined;
    }
    if (m === undefined) {
      const external = this.config.mapping === 'none' ? packet.src : addr(this.publicIp, this.allocatePort(packet.src.port));
      m = { key: k, internal: packet.src, external, addresses: new Set(), endpoints: new Set(), lastUsed: now };
      this.byInternal.set(k, m);
      this.byExternal.set(key(external), m);
      this.mappingsCreated++;
    }
    m.lastUsed = now;
    m.addresses.add(packet.dst.address);
    m.endpoints.add(key(packet.dst));
    return { ...packet, src: m.external };
  }

  /** @internal filter and translate an inbound packet. */
  inbound(packet: SimPacket, now: number): SimPacket | undefined {
    const m = this.byExternal.get(key(packet.dst));
    if (m === undefined) {
      // an open host behind a 'none' firewall with no filtering needs no mapping
      if (this.config.mapping === 'none' && this.config.filtering === 'none') return packet;
      return undefined;
    }
    if (this.expired(m, now)) {
      this.byExternal.delete(key(m.external));
      this.byInternal.delete(m.key);
      return undefined;
    }
    switch (this.config.filtering) {
      case 'address-dependent':
        if (!m.addresses.has(packet.src.address)) return undefined;
        break;
      case 'address-and-port-dependent':
        if (!m.endpoints.has(key(packet.src))) return undefined;
        break;
      default:
        break;
    }
    return { ...packet, dst: m.internal };
  }
}
