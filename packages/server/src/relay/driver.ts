/**
 * The TURN I/O driver: binds a sans-I/O {@link TurnCore} to sockets and timers. It answers the
 * core's clients (over the UDP socket they came on, or their TCP/TLS connection), opens and
 * closes relay sockets (UDP, and RFC 6062 TCP relay listeners), runs the RFC 6062 peer
 * connections and sweeps expired state once a second.
 *
 * The listeners (stun/udp-service.ts, stun/stream-service.ts) hand it what they demultiplexed
 * as TURN: ChannelData and non-Binding STUN messages.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server as NetServer } from 'node:net';
import { type AddressFamily, Attr, StunClass, type StunMessage, type TransportAddress, canonicalIp, ipFamily, sourceKey } from '@nat/protocol';
import type { ServerEventSink } from '../events.js';
import { ExternalAddresses } from '../stun/external.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ClientEndpoint } from '../turn/allocation.js';
import type { TurnAuthenticator } from '../turn/auth.js';
import type { TurnClusterQuota } from '../turn/cluster.js';
import { TurnCore, type TurnCoreInit, type TurnOutput } from '../turn/core.js';
import { quotaUser } from '../turn/quota.js';
import type { PeerPolicyInit } from '../turn/peer-policy.js';
import { type RelayPortRange, RelayPorts } from '../turn/relay-ports.js';
import { type DataConnection, TcpPeers } from './tcp-peers.js';

/** TURN options (of {@link TurnDriver} and `startStunServer`'s `turn`). */
export interface TurnOptions extends Omit<TurnCoreInit, 'relayFamilies' | 'peers' | 'logger' | 'auth'> {
  /** Where long-term keys come from (`staticUsers`, `restApiSecrets`, `anyOf`). Required. */
  readonly auth: TurnAuthenticator;
  /** Relay IP per family. Default: the listen address of that family. */
  readonly relayIps?: readonly string[];
  /** Relay port range. Default 49152-65535. */
  readonly relayPorts?: RelayPortRange;
  /** Peer address policy. Default: refuse loopback, private, link-local, multicast, ... */
  readonly peers?: PeerPolicyInit;
  /**
   * Allocation quotas counted across the nodes of a cluster (`@nat/redis`'s `RedisTurnQuota`),
   * reserved before each relay socket is opened, released when the allocation ends. Default
   * none: the node's own quotas only.
   */
  readonly clusterQuota?: TurnClusterQuota;
}

/** Authenticated requests waiting for their user's keys (`TurnAuthenticator.prepare`) at once, and per source: beyond, dropped (the client retransmits). */
export const MAX_PREPARING = 1024;
export const MAX_PREPARING_PER_SOURCE = 32;

/** Options of a {@link TurnDriver}. */
export interface TurnDriverInit {
  readonly turn: TurnOptions;
  /** The server's listen addresses: the default relay IP of each family. */
  readonly listen: readonly string[];
  readonly logger?: Logger;
  /** Where the TURN core's events go. Default none. */
  readonly events?: ServerEventSink;
  /**
   * 1:1 NAT: relay sockets stay bound to the private relay IP, clients are told the public one
   * (XOR-RELAYED-ADDRESS), and relaying between two allocations of this server goes straight to
   * the private address. Default none.
   */
  readonly external?: ExternalAddresses;
}

/** Most UDP client endpoints remembered before those without an allocation are forgotten. */
const MAX_UDP_ENDPOINTS = 50_000;

/** Runs a TURN core on sockets. {@link close} releases every socket it opened. */
export class TurnDriver {
  readonly core: TurnCore;
  /** Relay IP per family (the first of `relayIps`, or of the listen addresses, of each family). */
  readonly relayIps: ReadonlyMap<AddressFamily, string>;
  readonly #log: Logger;
  readonly #external: ExternalAddresses;
  /** Public relay IP -> the private one it is bound to, and back (canonical text; empty without external addresses). */
  readonly #inside = new Map<string, string>();
  readonly #outside = new Map<string, string>();
  readonly #relayPorts: RelayPorts;
  readonly #relays = new Map<number, Partial<Record<AddressFamily, UdpSocket>>>();
  readonly #tcpRelays = new Map<number, NetServer>();
  readonly #peers: TcpPeers;
  /** How to answer each client endpoint, by endpoint key. */
  readonly #senders = new Map<string, (bytes: Uint8Array) => void>();
  readonly #udpEndpoints = new Map<string, ClientEndpoint>();
  readonly #streams = new Map<string, DataConnection>();
  readonly #sweep: NodeJS.Timeout;
  readonly #auth: TurnAuthenticator;
  readonly #cluster: TurnClusterQuota | undefined;
  /** Requests waiting for their user's keys, per source. */
  readonly #preparing = new Map<string, number>();
  #preparingTotal = 0;
  #closed = false;

  constructor(init: TurnDriverInit) {
    this.#log = init.logger ?? silentLogger;
    this.#external = init.external ?? new ExternalAddresses();
    const relayIps = new Map<AddressFamily, string>();
    for (const ip of init.turn.relayIps ?? init.listen) {
      const f = ipFamily(ip);
      if (f && !relayIps.has(f)) relayIps.set(f, ip);
    }
    this.relayIps = relayIps;
    for (const ip of relayIps.values()) {
      const pub = this.#external.publicIp(ip);
      if (pub === ip) continue;
      this.#inside.set(pub, canonicalIp(ip));
      this.#outside.set(canonicalIp(ip), pub);
    }
    this.core = new TurnCore({
      ...init.turn,
      relayFamilies: [...relayIps.keys()],
      peers: init.turn.peers,
      logger: this.#log,
      ...(init.events === undefined ? {} : { events: init.events }),
    });
    this.#auth = init.turn.auth;
    this.#cluster = init.turn.clusterQuota;
    this.#relayPorts = new RelayPorts(init.turn.relayPorts);
    this.#peers = new TcpPeers(this.core, relayIps, () => this.flush());
    this.#sweep = setInterval(() => {
      this.core.sweep(Date.now());
      this.flush();
    }, 1000);
    this.#sweep.unref();
  }

  /** The (cached) 5-tuple of a UDP client on `socket`; remembers how to answer it. */
  udpEndpoint(role: string, server: TransportAddress, from: TransportAddress, socket: UdpSocket): ClientEndpoint {
    const key = `udp|${server.address}|${role}|${from.address}|${from.port}`;
    let e = this.#udpEndpoints.get(key);
    if (e === undefined) {
      // Bounded: forget endpoints with no allocation when the cache grows large.
      if (this.#udpEndpoints.size >= MAX_UDP_ENDPOINTS) {
        for (const k of this.#udpEndpoints.keys()) {
          if (!this.core.allocationOf(k)) {
            this.#udpEndpoints.delete(k);
            this.#senders.delete(k);
          }
        }
      }
      e = { key, client: { family: from.family, address: from.address, port: from.port }, server, transport: 'udp' };
      this.#udpEndpoints.set(key, e);
      const { port, address } = from;
      this.#senders.set(key, (bytes) => socket.send(bytes, port, address));
    }
    return e;
  }

  /** A ChannelData message from a client. */
  channelData(bytes: Uint8Array, endpoint: ClientEndpoint, now: number): void {
    this.core.handleChannelData(bytes, endpoint, now);
    this.flush();
  }

  /**
   * A STUN message other than Binding from a client (a TURN request or indication). A signed
   * request whose user a remote store must look up first (`TurnAuthenticator.prepare`) waits
   * for that lookup (bounded: {@link MAX_PREPARING}, {@link MAX_PREPARING_PER_SOURCE}); every
   * other message is handled at once.
   */
  stun(message: StunMessage, endpoint: ClientEndpoint, now: number): void {
    const pending = this.#prepare(message, endpoint, now);
    if (pending === undefined) {
      this.core.handleStun(message, endpoint, now);
      return this.flush();
    }
    const source = sourceKey(endpoint.client.address);
    const held = this.#preparing.get(source) ?? 0;
    if (this.#preparingTotal >= MAX_PREPARING || held >= MAX_PREPARING_PER_SOURCE) return;
    this.#preparing.set(source, held + 1);
    this.#preparingTotal++;
    void pending.then(() => {
      this.#preparingTotal--;
      const n = (this.#preparing.get(source) ?? 1) - 1;
      if (n <= 0) this.#preparing.delete(source);
      else this.#preparing.set(source, n);
      if (this.#closed) return;
      this.core.handleStun(message, endpoint, Date.now());
      this.flush();
    });
  }

  /** The user lookup a signed request needs before the core can check it, if any. */
  #prepare(m: StunMessage, endpoint: ClientEndpoint, now: number): Promise<void> | undefined {
    if (this.#auth.prepare === undefined || m.class !== StunClass.Request) return undefined;
    if (m.integrityOffset < 0 && m.integritySha256Offset < 0) return undefined;
    const username = m.get(Attr.Username);
    const realm = m.get(Attr.Realm);
    if (username === undefined || realm !== this.core.realm || !this.core.nonceValid(m, endpoint, now)) return undefined;
    return this.#auth.prepare(username, realm, now);
  }

  /** A client's TCP/TLS connection: how to answer it, and what RFC 6062 ConnectionBind joins. */
  attachStream(endpoint: ClientEndpoint, connection: DataConnection, send: (bytes: Uint8Array) => void): void {
    this.#senders.set(endpoint.key, send);
    this.#streams.set(endpoint.key, connection);
  }

  /** The connection closed: its allocation goes with it (RFC 8656 section 3.1). */
  detachStream(endpointKey: string): void {
    this.#senders.delete(endpointKey);
    this.#streams.delete(endpointKey);
    this.core.handleEndpointClosed(endpointKey);
    this.flush();
  }

  /** Carries out what the core asked for. */
  flush(): void {
    for (const o of this.core.drain()) this.#apply(o);
  }

  #apply(o: TurnOutput): void {
    switch (o.kind) {
      case 'to-client':
        return this.#senders.get(o.endpoint.key)?.(o.bytes);
      case 'to-peer': {
        // A peer at one of this server's public addresses (another allocation's relayed address) is reached inside.
        const inside = this.#inside.size === 0 ? undefined : this.#inside.get(o.peer.address);
        return void this.#relays.get(o.allocation)?.[o.peer.family]?.send(o.bytes, o.peer.port, inside ?? o.peer.address);
      }
      case 'open-relay':
        return void this.#reserveThenOpen(o);
      case 'close-relay':
        this.#cluster?.release(o.allocation);
        return this.#closeRelay(o.allocation);
      case 'tcp-connect':
        return this.#peers.connect(o.allocation, o.connectionId, o.peer);
      case 'tcp-bind':
        return this.#peers.bind(o.connectionId, this.#streams.get(o.endpoint.key));
      case 'tcp-close':
        return this.#peers.close(o.connectionId);
    }
  }

  #closeRelay(id: number): void {
    const sockets = this.#relays.get(id);
    this.#relays.delete(id);
    for (const sock of Object.values(sockets ?? {})) sock?.close();
    this.#tcpRelays.get(id)?.close();
    this.#tcpRelays.delete(id);
  }

  /** Reserves the allocation's slot in the cluster's ledger (when there is one), then opens its relay. */
  async #reserveThenOpen(o: Extract<TurnOutput, { kind: 'open-relay' }>): Promise<void> {
    const a = this.core.allocation(o.allocation);
    if (this.#cluster !== undefined && a !== undefined) {
      const user = quotaUser(a.username);
      const refused = await this.#cluster.reserve(a.id, {
        user: a.tier === undefined ? user : `${a.tier}\0${user}`,
        source: sourceKey(a.endpoint.client.address),
      });
      if (this.#closed || this.core.allocation(a.id) === undefined) return this.#cluster.release(a.id);
      if (refused !== undefined) {
        this.core.relayRefused(a.id, refused);
        return this.flush();
      }
    }
    if (o.transport === 'tcp') return this.#openTcpRelay(o.allocation, o.families[0]!);
    return this.#openRelay(o);
  }

  async #openRelay(o: Extract<TurnOutput, { kind: 'open-relay' }>): Promise<void> {
    const { allocation: id, families, evenPort: even, reserveNext, reservationToken: token, newReservationToken: newToken } = o;
    const sockets: Partial<Record<AddressFamily, UdpSocket>> = {};
    this.#relays.set(id, sockets);
    for (const family of families) {
      const ip = this.relayIps.get(family)!;
      const opened = await this.#relayPorts.open(ip, { even, reserveNext: reserveNext && family === families[0], ...(token ? { token } : {}) });
      if (this.#closed || !this.#relays.has(id)) {
        opened?.socket.close();
        opened?.next?.close();
        return;
      }
      if (!opened) {
        this.core.relayFailed(id, 508);
        return this.flush();
      }
      if (opened.next && newToken) this.#relayPorts.reserve(newToken, opened.next);
      const socket = opened.socket;
      sockets[family] = socket;
      // Hot path: peer -> client. Another allocation of this server sends from the private
      // address; its peers know it by the public one (the permission names that one).
      const outside = this.#outside;
      socket.on('message', (msg, rinfo) => {
        const pub = outside.size === 0 ? undefined : outside.get(rinfo.address);
        const from = pub === undefined ? (rinfo as TransportAddress) : { family: rinfo.family as AddressFamily, address: pub, port: rinfo.port };
        this.core.handlePeerData(id, msg, from, Date.now());
        this.flush();
      });
      socket.on('error', (e) => this.#log.debug({ err: e.message, allocation: id }, 'relay socket error'));
      this.core.relayOpened(id, family, this.#external.advertise({ family, address: ip, port: socket.address().port }));
    }
    this.flush();
  }

  async #openTcpRelay(id: number, family: AddressFamily): Promise<void> {
    const ip = this.relayIps.get(family)!;
    const server = await this.#relayPorts.openTcp(ip);
    if (this.#closed || !this.core.allocation(id)) return void server?.close();
    if (!server) {
      this.core.relayFailed(id, 508);
      return this.flush();
    }
    this.#tcpRelays.set(id, server);
    server.on('connection', (socket) => this.#peers.incoming(id, socket));
    this.core.relayOpened(id, family, this.#external.advertise({ family, address: ip, port: (server.address() as { port: number }).port }));
    this.flush();
  }

  /** Closes every relay socket and peer connection and stops the sweep. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    // Every allocation ends with the server (allocation-ended, cause server-close, and its last relayed counts).
    this.core.close(Date.now());
    for (const o of this.core.drain()) if (o.kind === 'close-relay') this.#cluster?.release(o.allocation);
    for (const id of [...this.#relays.keys(), ...this.#tcpRelays.keys()]) this.#closeRelay(id);
    this.#peers.closeAll();
    this.#relayPorts.close();
  }
}
