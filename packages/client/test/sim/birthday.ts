/**
 * A driver for the sans-I/O {@link BirthdayPuncher} on the simulated network, beside a
 * {@link SimIcePeer}: it learns the peer's NAT info (as from the offer or answer `app` payload)
 * and public address (from its trickled candidates), opens the hard side's extra sockets, moves
 * probes, turns a hit into a new agent base or remote candidate ({@link addPunchedPath}), and
 * stops punching once the agent has a direct path.
 */
import type { IceCandidate } from '@nat/protocol';
import {
  BirthdayPuncher,
  type BirthdayOptions,
  type PunchCredentials,
  type PunchNatInfo,
  type PunchOutcome,
  type PunchRole,
  addPunchedPath,
  punchRole,
  punchTarget,
} from '../../src/ice/index.js';
import type { Scheduled } from './clock.js';
import type { NatConfig, SimPacket, SimSocket } from './network.js';
import type { SimIcePeer } from './peer.js';

/** What NAT discovery would report for a simulated NAT box (`undefined`: no NAT). */
export function discoveredInfo(config: NatConfig | undefined): PunchNatInfo {
  if (config === undefined || config.mapping === 'none') return { mapping: 'endpoint-independent', portAllocation: 'preserving' };
  // UDP blocked: discovery gets no answer
  if (config.allowOnly !== undefined) return { mapping: null, portAllocation: null };
  return { mapping: config.mapping, portAllocation: config.portAllocation ?? 'preserving' };
}

/** What one side's punching did. */
export interface SimPunchReport {
  readonly role: PunchRole | undefined;
  /** Virtual time punching started (undefined: it never did). */
  readonly startedAt: number | undefined;
  readonly hitAt: number | undefined;
  readonly outcome: PunchOutcome | undefined;
  readonly probesSent: number;
  /** Extra sockets opened. */
  readonly sockets: number;
}

/** Birthday punching for one {@link SimIcePeer}. */
export class SimBirthday {
  role: PunchRole | undefined;
  puncher: BirthdayPuncher | undefined;
  readonly sockets: SimSocket[] = [];
  startedAt: number | undefined;
  hitAt: number | undefined;
  outcome: PunchOutcome | undefined;
  private remoteInfo: PunchNatInfo | undefined;
  private readonly remoteCandidates: IceCandidate[] = [];
  private timer: Scheduled | undefined;
  private timerAt = Number.NaN;
  private pumping = false;

  constructor(
    private readonly peer: SimIcePeer,
    private readonly local: PunchNatInfo,
    private readonly credentials: PunchCredentials,
    private readonly options: BirthdayOptions = {},
  ) {
    peer.onRemoteCandidate = (c) => {
      if (c !== null) this.remoteCandidates.push(c);
      this.maybeStart();
    };
    peer.intercept = (p) => this.onPrimary(p);
    peer.onFlush = () => {
      const p = this.puncher;
      if (p !== undefined && !p.done && this.peer.agent.selectedPair()?.path === 'direct') {
        p.stop(this.now);
        this.pump();
      }
    };
  }

  private get now(): number {
    return this.peer.socket.host.network.clock.now;
  }

  /** The peer's NAT info arrived (its offer or answer `app` payload). */
  setRemoteInfo(info: PunchNatInfo | undefined): void {
    this.remoteInfo = info;
    this.role = info === undefined ? 'none' : punchRole(this.local.mapping, info.mapping);
    this.maybeStart();
  }

  /** What happened. */
  report(): SimPunchReport {
    return {
      role: this.role,
      startedAt: this.startedAt,
      hitAt: this.hitAt,
      outcome: this.outcome,
      probesSent: this.puncher?.probesSent ?? 0,
      sockets: this.sockets.length,
    };
  }

  private maybeStart(): void {
    const role = this.role;
    if (this.puncher !== undefined || (role !== 'hard' && role !== 'easy')) return;
    const target = punchTarget(this.remoteCandidates);
    if (target === undefined) return;
    const puncher = new BirthdayPuncher({
      role,
      peer: target,
      peerPortAllocation: this.remoteInfo?.portAllocation ?? null,
      credentials: this.credentials,
      options: this.options,
    });
    this.puncher = puncher;
    for (let i = 0; i < puncher.socketCount; i++) {
      const socket = this.peer.socket.host.bind();
      socket.onPacket = (p) => this.onExtra(i, socket, p);
      this.sockets.push(socket);
    }
    this.startedAt = this.now;
    puncher.start(this.now);
    this.pump();
  }

  private onPrimary(p: SimPacket): boolean {
    const puncher = this.puncher;
    if (puncher === undefined || p.meta !== undefined) return false;
    const consumed = puncher.handlePacket(p.bytes, 'primary', p.src, this.now);
    this.pump();
    return consumed;
  }

  private onExtra(i: number, socket: SimSocket, p: SimPacket): void {
    const puncher = this.puncher!;
    const consumed = puncher.handlePacket(p.bytes, i, p.src, this.now);
    this.pump();
    if (consumed) return;
    const base = baseOf(i);
    if (this.peer.extraSockets.get(base) === socket) this.peer.deliver(base, p);
  }

  private pump(): void {
    const puncher = this.puncher;
    if (puncher === undefined || this.pumping) return;
    this.pumping = true;
    let touchedAgent = false;
    try {
      for (let t = puncher.pollTransmit(); t !== undefined; t = puncher.pollTransmit()) {
        const socket = t.socket === 'primary' ? this.peer.socket : this.sockets[t.socket];
        socket?.send(t.to, t.bytes);
      }
      for (let e = puncher.pollEvent(); e !== undefined; e = puncher.pollEvent()) {
        if (e.type === 'hit') {
          this.hitAt ??= e.at;
          if (e.socket === 'primary') addPunchedPath(this.peer.agent, e);
          else {
            const socket = this.sockets[e.socket]!;
            this.peer.extraSockets.set(baseOf(e.socket), socket);
            addPunchedPath(this.peer.agent, e, { base: baseOf(e.socket), address: socket.address });
          }
          touchedAgent = true;
        } else {
          this.outcome = e.outcome;
          this.sockets.forEach((s, i) => {
            if (i !== e.keep) s.close();
          });
        }
      }
      this.schedule(puncher.pollTimeout());
    } finally {
      this.pumping = false;
    }
    if (touchedAgent) this.peer.flush();
  }

  private schedule(at: number | undefined): void {
    const clock = this.peer.socket.host.network.clock;
    if (at === undefined) {
      this.timer?.cancel();
      this.timer = undefined;
      this.timerAt = Number.NaN;
      return;
    }
    const when = Math.max(at, clock.now);
    if (this.timer !== undefined && this.timerAt === when) return;
    this.timer?.cancel();
    this.timerAt = when;
    this.timer = clock.at(when, () => {
      this.timer = undefined;
      this.timerAt = Number.NaN;
      this.puncher?.handleTimeout(clock.now);
      this.pump();
    });
  }
}

/** The agent base id of the hard side's extra socket `i`. */
export const baseOf = (i: number): string => `bday-${i}`;
