/**
 * The agent pump of an ICE connection: the one place where the sans-I/O {@link IceAgent} meets
 * sockets and time. Every input (a datagram on a host or punching socket, data from the TURN
 * relay, a timer) goes to the agent; after each, {@link AgentPump.flush} sends what the agent
 * wants sent, acts on its events and sets the next wake-up.
 *
 * Demultiplexing a datagram, in order: a data frame from the source of the last one (the fast
 * path), a response to gathering's own STUN transactions (server-reflexive candidates), a
 * birthday-punching probe, a STUN message for the agent, and else an application frame, which is
 * accepted only on a pair that passed its checks.
 */
import { type TransportAddress, FRAME_DATA, canonicalIp, ipFamily, parseCandidate, type IceCandidate } from '@nat/protocol';
import type { IceAgent } from '../ice/agent.js';
import type { BaseId, CandidatePairInfo, IceFailureReason } from '../ice/types.js';
import { isRelayBase, relayBase } from '../ice/family.js';
import type { TurnClient } from '../turn/client.js';
import type { TurnPeerData } from '../turn/events.js';
import { WakeTimer } from '../driver/wake-timer.js';
import { addressKey } from './candidates.js';
import type { DatagramSocket } from './host-socket.js';
import type { SocketPunch } from './punch.js';

/** A socket of the connection (a host candidate's, or birthday punching's) and its bound address. */
export interface BaseSocket {
  readonly socket: DatagramSocket;
  readonly address: TransportAddress;
}

/** What the pump hands back to its connection. */
export interface PumpHooks {
  /** True once the connection is closed: inputs are then ignored. */
  closed(): boolean;
  /** A response to gathering's own STUN transactions on `socket`; true when it was one (the agent does not see it). */
  gatheringResponse(socket: DatagramSocket, bytes: Uint8Array, from: TransportAddress): boolean;
  /** A data frame's payload from the peer. */
  data(payload: Uint8Array): void;
  /** Any other application frame on a validated pair; `reply` sends on the pair it came from. True when it was a data frame. */
  frame(bytes: Uint8Array, reply: (bytes: Uint8Array) => void): boolean;
  /** The agent selected a pair. */
  selected(pair: CandidatePairInfo): void;
  /** The agent called the path disconnected (consent unanswered for a while). */
  disconnected(): void;
  /** The agent failed. */
  failed(reason: IceFailureReason): void;
  /** TURN permission for `ip` was refused. */
  permissionFailed(ip: string, error: unknown): void;
}

/** Feeds an {@link IceAgent} from the connection's sockets and timers, and carries out what it asks. */
export class AgentPump {
  readonly agent: IceAgent;
  /** The sockets by agent base id: host candidates' (`host:IP`) and punching's (`bday-N`). */
  readonly sockets = new Map<BaseId, BaseSocket>();
  /** Birthday punching, when the connection does it. */
  punch: SocketPunch | undefined;
  readonly #hooks: PumpHooks;
  #turn: TurnClient | undefined;
  readonly #valid = new Set<string>();
  readonly #permitted = new Set<string>();
  /**
   * The source (base, address as the socket reported it, port) of the last data frame accepted
   * on a validated pair: later data frames from it skip the address parsing and pair lookup
   * (pairs never lose their validation, so this needs no invalidation).
   */
  #lastDataFrom: { base: BaseId; ip: string; port: number } | undefined;
  readonly #timer = new WakeTimer(
    () => {
      if (this.#hooks.closed()) return;
      this.agent.handleTimeout(performance.now());
      this.flush();
    },
    () => performance.now(),
  );

  constructor(agent: IceAgent, hooks: PumpHooks) {
    this.agent = agent;
    this.#hooks = hooks;
  }

  /** The TURN allocation in use, once gathering obtained one. */
  get turn(): TurnClient | undefined {
    return this.#turn;
  }

  /** Uses `turn` for the relayed bases: its data goes to the agent, and remote candidates get permissions. */
  useRelay(turn: TurnClient): void {
    this.#turn = turn;
    this.#permitted.clear(); // a new allocation (an ICE restart's) has none of the old one's permissions
    turn.on('data', (m: TurnPeerData) => this.#onRelayData(m));
    for (const r of this.agent.remoteCandidates()) this.permit(r.address);
  }

  /** Marks a pair validated: application frames from it are accepted. */
  validate(base: BaseId, remote: TransportAddress): void {
    this.#valid.add(addressKey(base, remote));
  }

  /** A datagram that arrived on socket `socket` of base `base`. */
  onDatagram(base: BaseId, socket: DatagramSocket, msg: Buffer, fromIp: string, fromPort: number): void {
    if (this.#hooks.closed()) return;
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
    if (bytes[0] === FRAME_DATA && this.#fromLastData(base, fromIp, fromPort)) {
      this.#hooks.data(bytes.subarray(1));
      return;
    }
    let ip = fromIp;
    try {
      ip = canonicalIp(fromIp);
    } catch {
      return;
    }
    const from: TransportAddress = { family: ipFamily(ip) ?? 'IPv4', address: ip, port: fromPort };
    if (this.#hooks.gatheringResponse(socket, bytes, from)) return;
    if (this.punch?.intercept(base, bytes, from) === true) return; // a birthday probe
    if (!this.agent.handlePacket(bytes, { base, from }, performance.now()) && this.#application(base, from, bytes, socket)) {
      this.#lastDataFrom = { base, ip: fromIp, port: fromPort };
    }
    this.flush();
  }

  #onRelayData(m: TurnPeerData): void {
    if (this.#hooks.closed()) return;
    const { data } = m;
    const base = relayBase(m.peer.family);
    if (data[0] === FRAME_DATA && this.#fromLastData(base, m.peer.address, m.peer.port)) {
      this.#hooks.data(data.subarray(1));
      return;
    }
    const from: TransportAddress = { ...m.peer, address: canonicalIp(m.peer.address) };
    if (!this.agent.handlePacket(data, { base, from }, performance.now()) && this.#application(base, from, data, undefined)) {
      this.#lastDataFrom = { base, ip: m.peer.address, port: m.peer.port };
    }
    this.flush();
  }

  #fromLastData(base: BaseId, ip: string, port: number): boolean {
    const last = this.#lastDataFrom;
    return last !== undefined && last.port === port && last.ip === ip && last.base === base;
  }

  /** A non-STUN datagram: accepted only on a pair that passed its checks. True when it was a data frame. */
  #application(base: BaseId, from: TransportAddress, bytes: Uint8Array, socket: DatagramSocket | undefined): boolean {
    if (!this.#valid.has(addressKey(base, from))) return false;
    return this.#hooks.frame(bytes, (reply) => this.transmit(base, from, reply, socket));
  }

  /** A remote candidate line (from the offer, answer or trickle): to the agent, punching, and a TURN permission. */
  addRemote(line: string): void {
    let c: IceCandidate;
    try {
      c = parseCandidate(line);
    } catch {
      return;
    }
    this.agent.addRemoteCandidate(c);
    this.punch?.addRemoteCandidate(c);
    if (ipFamily(c.address) !== undefined) this.permit(c.address);
  }

  /** Installs a TURN permission toward a remote candidate's IP, so its checks reach our relay (RFC 8445 section 5.1.1.2). */
  permit(ip: string): void {
    const turn = this.#turn;
    if (turn === undefined || this.#permitted.has(ip) || !turn.relayedAddresses.some((a) => a.family === ipFamily(ip))) return;
    this.#permitted.add(ip);
    turn.createPermission(ip).catch((e: unknown) => this.#hooks.permissionFailed(ip, e));
  }

  /** Sends `frame` on the selected pair; false when there is none. */
  sendSelected(frame: Uint8Array): boolean {
    if (this.#hooks.closed()) return false;
    const pair = this.agent.selectedPair();
    if (pair === undefined) return false;
    this.transmit(pair.base, pair.remoteAddress, frame, undefined);
    return true;
  }

  /** Sends `bytes` from base `base` (through TURN for a relayed one) to `to`. */
  transmit(base: BaseId, to: TransportAddress, bytes: Uint8Array, socket: DatagramSocket | undefined): void {
    if (isRelayBase(base)) {
      this.#turn?.send(to, bytes);
      return;
    }
    const s = socket ?? this.sockets.get(base)?.socket;
    // no callback: send errors reach the socket's 'error' listener, and a callback costs ~1.4 us a datagram
    s?.send(bytes, to.port, to.address);
  }

  /** Acts on what the agent wants after every input: transmits, events, and the next wake-up. */
  flush(): void {
    if (this.#hooks.closed()) return;
    const agent = this.agent;
    for (let t = agent.pollTransmit(); t !== undefined; t = agent.pollTransmit()) this.transmit(t.base, t.to, t.bytes, undefined);
    for (let e = agent.pollEvent(); e !== undefined; e = agent.pollEvent()) {
      if (e.type === 'pair' && e.pair.state === 'succeeded') this.validate(e.pair.base, e.pair.remoteAddress);
      else if (e.type === 'remote-candidate') this.permit(e.candidate.address);
      else if (e.type === 'selected-pair') {
        this.validate(e.pair.base, e.pair.remoteAddress);
        this.#hooks.selected(e.pair);
      } else if (e.type === 'state' && e.state === 'disconnected') this.#hooks.disconnected();
      else if (e.type === 'state' && e.state === 'failed') {
        this.#hooks.failed(e.reason ?? 'timeout');
        return;
      }
    }
    this.punch?.onFlush();
    this.#timer.set(agent.pollTimeout());
  }

  /**
   * Stops: no more wake-ups, the agent closed, punching stopped, the host sockets closed
   * (punching closes its own). Returns the TURN allocation, for the caller to release.
   */
  close(): TurnClient | undefined {
    this.#timer.cancel();
    this.agent.close();
    this.punch?.close();
    for (const [base, { socket }] of this.sockets) if (!(typeof base === 'string' && base.startsWith('bday-'))) socket.close();
    this.sockets.clear();
    const turn = this.#turn;
    this.#turn = undefined;
    return turn;
  }
}
