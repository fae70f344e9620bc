/**
 * A driver for the sans-I/O {@link IceAgent} on the simulated network: it gathers host, srflx
 * (from the virtual STUN server) and relay candidates (from the virtual relay), trickles them to
 * the other peer through a simulated signalling channel, moves packets between the agent and its
 * socket, wakes the agent at the time it asks for, and sends application data on the selected pair.
 */
import {
  Attr,
  type IceCandidate,
  StunClass,
  StunMethod,
  type TransportAddress,
  candidateFoundation,
  candidatePriority,
  decodeStunMessage,
  encodeStunMessage,
  sameTransportAddress,
} from '@nat/protocol';
import { IceAgent, type IceAgentEvent, type IceAgentOptions, type IceRole } from '../../src/ice/index.js';
import type { Scheduled, Scheduler } from './clock.js';
import type { SimHost, SimPacket, SimSocket } from './network.js';

/** What a {@link SimIcePeer} is made of. */
export interface SimIcePeerInit {
  readonly name: string;
  readonly host: SimHost;
  readonly role: IceRole;
  readonly tieBreaker: bigint;
  readonly ufrag: string;
  readonly pwd: string;
  readonly stun?: TransportAddress;
  readonly relay?: TransportAddress;
  readonly options?: IceAgentOptions;
  readonly port?: number;
  /** Gathering requests are retried this often, this many times. Defaults 100 ms, 8. */
  readonly gatherRto?: number;
  readonly gatherTries?: number;
}

const UDP = 'udp';
const RELAY = 'relay';

/** One peer: a socket, an agent, and its event log. */
export class SimIcePeer {
  readonly agent: IceAgent;
  readonly socket: SimSocket;
  readonly events: { at: number; event: IceAgentEvent }[] = [];
  readonly received: Uint8Array[] = [];
  /** Signalling out: a candidate, or null for end-of-candidates. */
  onCandidate: ((candidate: IceCandidate | null) => void) | undefined;
  /** Signalling in: called after each remote candidate (null: end-of-candidates) reached the agent. */
  onRemoteCandidate: ((candidate: IceCandidate | null) => void) | undefined;
  /**
   * Sees every datagram on the ICE socket before the agent; true consumes it (birthday probes).
   */
  intercept: ((packet: SimPacket) => boolean) | undefined;
  /** Extra bases: sockets other than the ICE socket that the agent may send from (punched sockets). */
  readonly extraSockets = new Map<string | number, SimSocket>();
  /** Called after every {@link flush} (for drivers of extra state machines). */
  onFlush: (() => void) | undefined;
  /** Virtual time of the first selected pair and of the first direct selected pair. */
  connectedAt: number | undefined;
  directAt: number | undefined;
  private readonly clock: Scheduler;
  private timer: Scheduled | undefined;
  private timerAt = Number.NaN;
  private stunPending: { key: string; tries: number } | undefined;
  private relayPending: { tries: number } | undefined;
  private hostCandidate: IceCandidate | undefined;

  constructor(private readonly init: SimIcePeerInit) {
    this.clock = init.host.network.clock;
    this.agent = new IceAgent({
      role: init.role,
      tieBreaker: init.tieBreaker,
      ufrag: init.ufrag,
      pwd: init.pwd,
      options: { random: init.host.network.random, ...init.options },
    });
    this.socket = init.host.bind(init.port ?? 5000);
    this.socket.onPacket = (p) => this.onPacket(p);
  }

  get name(): string {
    return this.init.name;
  }

  /** Starts gathering; candidates are trickled through {@link onCandidate} as they come. */
  start(): void {
    const a = this.socket.address;
    this.hostCandidate = this.candidate('host', a, undefined, undefined);
    this.addLocal(this.hostCandidate, UDP);
    if (this.init.stun !== undefined) {
      this.stunPending = { key: '', tries: 0 };
      this.sendStun();
    }
    if (this.init.relay !== undefined) {
      this.relayPending = { tries: 0 };
      this.sendAllocate();
    }
    this.maybeEndGathering();
    this.flush();
  }

  /** Sends application data on the selected pair; false when there is none. */
  sendData(bytes: Uint8Array): boolean {
    const pair = this.agent.selectedPair();
    if (pair === undefined) return false;
    this.transmit(pair.base, pair.remoteAddress, bytes);
    return true;
  }

  /** A datagram that arrived on extra base `base`: to the agent, or the application. */
  deliver(base: string | number, p: SimPacket): void {
    if (!this.agent.handlePacket(p.bytes, { base, from: p.src }, this.clock.now)) this.received.push(p.bytes);
    this.flush();
  }

  /** Feeds the agent and acts on what it wants: call after every input. */
  flush(): void {
    const now = this.clock.now;
    for (let t = this.agent.pollTransmit(); t !== undefined; t = this.agent.pollTransmit()) this.transmit(t.base, t.to, t.bytes);
    for (let e = this.agent.pollEvent(); e !== undefined; e = this.agent.pollEvent()) {
      this.events.push({ at: now, event: e });
      if (e.type === 'selected-pair') {
        this.connectedAt ??= now;
        if (e.pair.path === 'direct') this.directAt ??= now;
      }
    }
    this.onFlush?.();
    const at = this.agent.pollTimeout();
    if (at === undefined) {
      this.timer?.cancel();
      this.timer = undefined;
      this.timerAt = Number.NaN;
      return;
    }
    const when = Math.max(at, now);
    if (this.timer !== undefined && this.timerAt === when) return;
    this.timer?.cancel();
    this.timerAt = when;
    this.timer = this.clock.at(when, () => {
      this.timer = undefined;
      this.timerAt = Number.NaN;
      this.agent.handleTimeout(this.clock.now);
      this.flush();
    });
  }

  private transmit(base: string | number, to: TransportAddress, bytes: Uint8Array): void {
    const extra = this.extraSockets.get(base);
    if (extra !== undefined) extra.send(to, bytes);
    else if (base === RELAY) this.socket.send(this.init.relay!, bytes, { kind: 'send', peer: to });
    else this.socket.send(to, bytes);
  }

  private onPacket(p: SimPacket): void {
    const now = this.clock.now;
    if (this.intercept?.(p) === true) return;
    if (p.meta?.kind === 'allocated') {
      if (this.relayPending !== undefined) {
        this.relayPending = undefined;
        const relayed = p.meta.relayed;
        this.addLocal(this.candidate('relay', relayed, this.socket.address, this.init.relay!.address), RELAY);
        this.maybeEndGathering();
      }
    } else if (p.meta?.kind === 'data') {
      if (!this.agent.handlePacket(p.bytes, { base: RELAY, from: p.meta.peer }, now)) this.received.push(p.bytes);
    } else if (this.isStunGatherResponse(p)) {
      // handled
    } else if (!this.agent.handlePacket(p.bytes, { base: UDP, from: p.src }, now)) {
      this.received.push(p.bytes);
    }
    this.flush();
  }

  private isStunGatherResponse(p: SimPacket): boolean {
    const pending = this.stunPending;
    if (pending === undefined || this.init.stun === undefined || !sameTransportAddress(p.src, this.init.stun)) return false;
    try {
      const m = decodeStunMessage(p.bytes);
      if (m.class !== StunClass.SuccessResponse || m.transactionKey !== pending.key) return false;
      const mapped = m.get(Attr.XorMappedAddress);
      this.stunPending = undefined;
      if (mapped !== undefined && !sameTransportAddress(mapped, this.socket.address)) {
        this.addLocal(this.candidate('srflx', mapped, this.socket.address, this.init.stun.address), UDP);
      }
      this.maybeEndGathering();
      return true;
    } catch {
      return false;
    }
  }

  private sendStun(): void {
    const pending = this.stunPending;
    if (pending === undefined) return;
    if (pending.tries >= (this.init.gatherTries ?? 8)) {
      this.stunPending = undefined;
      this.maybeEndGathering();
      this.flush();
      return;
    }
    pending.tries++;
    const bytes = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request });
    pending.key = Buffer.from(bytes.subarray(4, 20)).toString('hex');
    this.socket.send(this.init.stun!, bytes);
    this.clock.after(this.init.gatherRto ?? 100, () => this.sendStun());
  }

  private sendAllocate(): void {
    const pending = this.relayPending;
    if (pending === undefined) return;
    if (pending.tries >= (this.init.gatherTries ?? 8)) {
      this.relayPending = undefined;
      this.maybeEndGathering();
      this.flush();
      return;
    }
    pending.tries++;
    this.socket.send(this.init.relay!, new Uint8Array(0), { kind: 'allocate' });
    this.clock.after(this.init.gatherRto ?? 100, () => this.sendAllocate());
  }

  private maybeEndGathering(): void {
    if (this.stunPending !== undefined || this.relayPending !== undefined) return;
    this.agent.endOfLocalCandidates();
    this.onCandidate?.(null);
  }

  private addLocal(candidate: IceCandidate, base: string): void {
    this.agent.addLocalCandidate(candidate, base);
    this.onCandidate?.(candidate);
  }

  private candidate(
    type: 'host' | 'srflx' | 'relay',
    address: TransportAddress,
    related: TransportAddress | undefined,
    server: string | undefined,
  ): IceCandidate {
    const base = related ?? address;
    return {
      foundation: candidateFoundation({ type, baseAddress: base.address, transport: 'udp', ...(server === undefined ? {} : { serverAddress: server }) }),
      component: 1,
      transport: 'udp',
      priority: candidatePriority(type, 65535, 1),
      address: address.address,
      port: address.port,
      type,
      ...(related === undefined ? {} : { relatedAddress: related.address, relatedPort: related.port }),
      extensions: [],
    };
  }
}

/**
 * Connects two peers' signalling: credentials at once (offer and answer), candidates trickled
 * with `delay` ms of signalling latency (reliable and in order, as over a WebSocket).
 */
export function signal(a: SimIcePeer, b: SimIcePeer, clock: Scheduler, delay = 20): void {
  const wire = (from: SimIcePeer, to: SimIcePeer): void => {
    from.onCandidate = (c) => {
      clock.after(delay, () => {
        if (c === null) to.agent.endOfRemoteCandidates();
        else to.agent.addRemoteCandidate(c);
        to.onRemoteCandidate?.(c);
        to.flush();
      });
    };
  };
  wire(a, b);
  wire(b, a);
  const ca = a.agent.localCredentials;
  const cb = b.agent.localCredentials;
  a.agent.setRemoteCredentials(cb.ufrag, cb.pwd);
  b.agent.setRemoteCredentials(ca.ufrag, ca.pwd);
}
