/**
 * Birthday punching on real sockets: the UDP socket driver of the sans-I/O
 * {@link BirthdayPuncher}, beside an {@link IceConnection}'s agent. It learns the peer's NAT
 * info (the `app` payload of its offer or answer) and candidates, picks a role
 * ({@link punchRole}), opens the hard side's extra sockets on the ICE socket's host address,
 * moves probes, turns a hit into an agent base or remote candidate ({@link addPunchedPath}) and
 * closes every extra socket once punching is over and the agent has a direct path.
 */
import { type Socket, createSocket } from 'node:dgram';
import type { DatagramSocket } from './host-socket.js';
import { type IceCandidate, type TransportAddress, candidateTransportAddress, canonicalIp, ipFamily } from '@nat/protocol';
import type { IceAgent } from '../ice/agent.js';
import {
  BirthdayPuncher,
  type BirthdayOptions,
  type PortAllocation,
  type PunchMapping,
  type PunchNatInfo,
  type PunchOutcome,
  type PunchRole,
  type PunchSocket,
  addPunchedPath,
  punchInfoToApp,
  punchRole,
  punchTarget,
} from '../ice/birthday.js';
import type { BaseId } from '../ice/types.js';
import { WakeTimer } from '../driver/wake-timer.js';
import { localMappingEvidence, remoteMappingEvidence } from './mapping-evidence.js';

/** The most extra sockets the hard side opens, whatever {@link BirthdayOptions.sockets} says. */
export const MAX_PUNCH_SOCKETS = 1024;

/** Birthday punching of {@link IceConnectionOptions.punch} (what `learnPunchOptions` (nat-info.ts) returns). */
export interface IcePunchOptions {
  /** This side's NAT mapping behaviour, as `detectNat` reported it; null: unknown (no punching). */
  readonly mapping: PunchMapping;
  /** How this side's NAT allocates ports. Default `unknown`. */
  readonly ports?: 'preserving' | 'sequential' | 'random' | 'unknown';
  /** Budgets of the puncher; `sockets` is capped at {@link MAX_PUNCH_SOCKETS}. */
  readonly options?: BirthdayOptions;
  /**
   * Also punch toward a private or loopback host candidate of the peer when it signalled no
   * server-reflexive one (see {@link punchTarget}). Default false; for LAN and loopback tests.
   */
  readonly privateTargets?: boolean;
  /**
   * How long the ordinary ICE checks toward the peer's punch target get before punching starts,
   * ms, counted from the first check to it (at most {@link MAX_PLAIN_CHECK_WAIT_MS} after the
   * target is known, if the agent never checks it); punching does not start while a direct pair
   * has succeeded. Against a NAT that filters by address only, or not at all, the checks connect
   * in one round trip and the 256 sockets are never bound. 0: punch as soon as the target is
   * known, whatever the checks do. Default: two round trips of the fastest succeeded pair, at
   * least {@link MIN_PLAIN_CHECK_WAIT_MS} (twice that before any pair succeeded), at most
   * {@link MAX_PLAIN_CHECK_WAIT_MS}.
   */
  readonly plainCheckWaitMs?: number;
  /**
   * The NAT probe got no answer from the STUN server over UDP (`learnPunchOptions` (nat-info.ts) sets
   * it): UDP is most likely blocked, so TURN over TCP/TLS is tried at once instead of after
   * {@link IceConnectionOptions.tcpRelayDelayMs}. Default false.
   */
  readonly udpBlocked?: boolean;
}

/**
 * How long after the peer's offer or answer the checks are read for mapping evidence, ms, and how
 * often at most (the connection flushes on every datagram; a relayed connection lives on).
 */
export const EVIDENCE_WINDOW_MS = 10_000;
const EVIDENCE_INTERVAL_MS = 50;

/** The least default {@link IcePunchOptions.plainCheckWaitMs}, ms. */
export const MIN_PLAIN_CHECK_WAIT_MS = 100;
/** Punching starts at the latest this long after its target is known (unless a direct pair succeeded), ms. */
export const MAX_PLAIN_CHECK_WAIT_MS = 1000;

/** What punching did on one side of a connection. */
export interface PunchReport {
  /** This side's role; undefined until the peer's offer or answer came. */
  readonly role: PunchRole | undefined;
  /** Whether the puncher started (it needs a role of `hard` or `easy` and a target). */
  readonly started: boolean;
  /** How punching ended; undefined while it runs or when it never started. */
  readonly outcome: PunchOutcome | undefined;
  /** Where the hit came from (the peer's end of the punched path), when there was one. */
  readonly hit: { readonly socket: PunchSocket; readonly remote: TransportAddress } | undefined;
  readonly probesSent: number;
  /** Extra sockets opened in all (hard side). */
  readonly socketsOpened: number;
  /** Extra sockets open now. */
  readonly socketsOpen: number;
  /** Why the role changed after the peer's offer or answer: what the checks showed of a mapping. */
  readonly learned: string | undefined;
}

/** What the driver needs of its connection. */
export interface PunchHost {
  readonly agent: IceAgent;
  /** Makes extra socket `socket` a base of the connection: it sends the agent's packets on it. */
  addBase(base: BaseId, socket: DatagramSocket, address: TransportAddress): void;
  /** Forgets a base added with {@link addBase} (its socket is being closed). */
  removeBase(base: BaseId): void;
  /** Hands a datagram that arrived on an extra socket (now a base) to the connection's input path. */
  deliver(base: BaseId, socket: DatagramSocket, bytes: Buffer, from: TransportAddress): void;
  /** Acts on what the agent wants now. */
  flush(): void;
  /** The socket of a base, for probes from the primary socket. */
  socketOf(base: BaseId | undefined): DatagramSocket | undefined;
}

/** The agent base id of the hard side's extra socket `i`. */
export const punchBase = (i: number): BaseId => `bday-${i}`;

interface Extra {
  readonly socket: Socket;
  readonly address: TransportAddress;
  open: boolean;
}

/** An IPv4 address of the peer to punch toward, private ones included. */
function anyIPv4(candidates: readonly IceCandidate[]): TransportAddress | undefined {
  for (const c of candidates) {
    const a = candidateTransportAddress(c);
    if (c.transport === 'udp' && a !== undefined && a.family === 'IPv4') return a;
  }
  return undefined;
}

/** The UDP socket driver of one connection's {@link BirthdayPuncher}. */
export class SocketPunch {
  readonly #host: PunchHost;
  readonly #options: IcePunchOptions;
  #local: PunchNatInfo;
  #learned: string | undefined;
  /** When the peer's offer or answer came, and when the checks were last read for evidence. */
  #remoteAt = 0;
  #evidenceAt = 0;
  readonly #remoteCandidates: IceCandidate[] = [];
  readonly #extras: (Extra | undefined)[] = [];
  #remote: PunchNatInfo | undefined;
  #role: PunchRole | undefined;
  #primary: { base: BaseId; address: TransportAddress } | undefined;
  #puncher: BirthdayPuncher | undefined;
  #credentials: { localUfrag: string; localPwd: string; remoteUfrag: string; remotePwd: string } | undefined;
  #outcome: PunchOutcome | undefined;
  #hit: { socket: PunchSocket; remote: TransportAddress } | undefined;
  #keep: number | undefined;
  #opened = 0;
  #started = false;
  /** Punching is ready to start (role, target, bases known) since then; it waits for the plain checks. */
  #armed: { role: 'hard' | 'easy'; target: TransportAddress; at: number } | undefined;
  /** When a check toward the target was first seen in flight. */
  #checkSeenAt: number | undefined;
  readonly #waitTimer = new WakeTimer(
    () => this.#considerStart(),
    () => performance.now(),
  );
  readonly #timer = new WakeTimer(
    () => {
      if (this.#closed) return;
      this.#puncher?.handleTimeout(performance.now());
      this.#pump();
    },
    () => performance.now(),
  );
  #pumping = false;
  #closed = false;

  constructor(host: PunchHost, options: IcePunchOptions) {
    this.#host = host;
    this.#options = options;
    const ports = options.ports ?? 'unknown';
    this.#local = { mapping: options.mapping, portAllocation: ports === 'unknown' ? null : (ports satisfies Exclude<PortAllocation, null>) };
  }

  /** The `app` payload entries of our offer or answer. */
  app(): Record<string, string> {
    return punchInfoToApp(this.#local);
  }

  /** What punching did so far. */
  report(): PunchReport {
    return {
      role: this.#role,
      started: this.#started,
      outcome: this.#outcome,
      hit: this.#hit,
      probesSent: this.#puncher?.probesSent ?? 0,
      socketsOpened: this.#opened,
      socketsOpen: this.#extras.filter((e) => e?.open === true).length,
      learned: this.#learned,
    };
  }

  /** Whether the agent's pair from `base` to `remote` is a punched path. */
  isPunched(base: BaseId, remote: TransportAddress): boolean {
    if (this.#keep !== undefined && base === punchBase(this.#keep)) return true;
    const h = this.#hit;
    return h !== undefined && h.socket === 'primary' && base === this.#primary?.base && h.remote.address === remote.address && h.remote.port === remote.port;
  }

  /** The peer's offer or answer came: its NAT info (undefined: it does not punch) and both sides' ICE credentials. */
  setRemote(info: PunchNatInfo | undefined, credentials: { localUfrag: string; localPwd: string; remoteUfrag: string; remotePwd: string }): void {
    if (this.#role !== undefined) return;
    this.#remote = info;
    this.#remoteAt = performance.now();
    this.#credentials = credentials;
    this.#role = info === undefined ? 'none' : punchRole(this.#local.mapping, info.mapping);
    this.#maybeStart();
  }

  /** A remote candidate (signalled or trickled). */
  addRemoteCandidate(c: IceCandidate): void {
    this.#remoteCandidates.push(c);
    this.#maybeStart();
  }

  /** The ICE socket probes leave from (easy side) and whose host address the extra sockets share (hard side). */
  setPrimary(base: BaseId, address: TransportAddress): void {
    this.#primary ??= { base, address };
    this.#maybeStart();
  }

  /**
   * A datagram on the primary socket, before the agent sees it: true when it was a probe (the
   * puncher consumed it). Datagrams on other sockets are ignored (false).
   */
  intercept(base: BaseId, bytes: Uint8Array, from: TransportAddress): boolean {
    const puncher = this.#puncher;
    if (puncher === undefined || base !== this.#primary?.base || puncher.done) return false;
    const consumed = puncher.handlePacket(bytes, 'primary', from, performance.now());
    this.#pump();
    return consumed;
  }

  /** The base and host address of the local candidate the peer will punch toward ({@link punchTarget} of ours). */
  #ownBase(): { base: BaseId; address: TransportAddress } | undefined {
    const locals = this.#host.agent.localCandidates().filter((l) => l.candidate.type === 'host' || l.candidate.type === 'srflx');
    const mine = punchTarget(locals.map((l) => l.candidate));
    if (mine === undefined) return undefined;
    const chosen = locals.find((l) => l.candidate.type !== 'relay' && l.candidate.address === mine.address && l.candidate.port === mine.port);
    const host = chosen === undefined ? undefined : locals.find((l) => l.base === chosen.base && l.candidate.type === 'host');
    const address = host === undefined ? undefined : candidateTransportAddress(host.candidate);
    if (chosen === undefined || address === undefined || address.family !== 'IPv4' || this.#host.socketOf(chosen.base) === undefined) return undefined;
    return { base: chosen.base, address };
  }

  /** The agent changed its selected pair, or may have: stop punching once a direct path works. */
  onFlush(): void {
    if (!this.#started && this.#armed === undefined) this.#learnFromChecks();
    if (!this.#started) this.#maybeStart();
    if (!this.#started) this.#considerStart();
    const puncher = this.#puncher;
    const pair = this.#host.agent.selectedPair();
    if (pair === undefined || pair.path !== 'direct') return;
    if (puncher !== undefined && !puncher.done) {
      puncher.stop(performance.now());
      this.#pump();
    }
    // The punched socket is not needed when the agent settled on another direct path.
    const keep = this.#keep;
    if (keep !== undefined && pair.base !== punchBase(keep)) {
      this.#keep = undefined;
      this.#host.removeBase(punchBase(keep));
      this.#closeExtra(keep);
    }
  }

  /** Closes every extra socket and the timer. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#timer.cancel();
    this.#waitTimer.cancel();
    for (let i = 0; i < this.#extras.length; i++) this.#closeExtra(i);
  }

  /**
   * Before punching is armed: an endpoint-dependent mapping the checks revealed
   * ({@link localMappingEvidence}, {@link remoteMappingEvidence}) overrides an unknown or
   * endpoint-independent one, and a side still unknown is taken as endpoint-independent once the
   * other is known to depend on the destination (the one case punching helps; if both depend, the
   * checks show it on both sides and the role becomes `relay`).
   */
  #learnFromChecks(): void {
    const remote = this.#remote;
    const agent = this.#host.agent;
    if (this.#role !== 'none' || remote === undefined || agent.selectedPair()?.path === 'direct') return;
    const now = performance.now();
    if (now - this.#remoteAt > EVIDENCE_WINDOW_MS || now - this.#evidenceAt < EVIDENCE_INTERVAL_MS) return;
    this.#evidenceAt = now;
    const mine = localMappingEvidence(agent.pairs(), agent.localCandidates());
    const theirs = remoteMappingEvidence(this.#remoteCandidates, agent.remoteCandidates());
    if (mine === undefined && theirs === undefined) return;
    const dependent = (m: PunchMapping, seen: boolean): PunchMapping =>
      seen && (m === null || m === 'endpoint-independent') ? 'address-and-port-dependent' : m;
    const local = dependent(this.#local.mapping, mine !== undefined);
    const peer = dependent(remote.mapping, theirs !== undefined);
    const role = punchRole(
      local ?? (peer !== null && peer !== 'endpoint-independent' ? 'endpoint-independent' : null),
      peer ?? (local !== null && local !== 'endpoint-independent' ? 'endpoint-independent' : null),
    );
    if (role === 'none') return;
    this.#local = { ...this.#local, mapping: local };
    this.#remote = { ...remote, mapping: peer };
    this.#role = role;
    this.#learned = [mine && `ours: ${mine.reason}`, theirs && `the peer's: ${theirs.reason}`].filter((x) => x !== undefined).join('; ');
  }

  #maybeStart(): void {
    const role = this.#role;
    const primary = this.#primary;
    const credentials = this.#credentials;
    if (
      this.#started ||
      this.#armed !== undefined ||
      this.#closed ||
      (role !== 'hard' && role !== 'easy') ||
      primary === undefined ||
      credentials === undefined
    )
      return;
    if (primary.address.family !== 'IPv4') return;
    const target = punchTarget(this.#remoteCandidates) ?? (this.#options.privateTargets === true ? anyIPv4(this.#remoteCandidates) : undefined);
    if (target === undefined) return;
    // Punch from the socket behind the address the peer punches toward: the base of our own
    // punch target (the peer runs punchTarget on our candidates), not just the first host socket
    // (a host with a private and a public address must probe from the public one).
    const own = this.#ownBase();
    if (own !== undefined) this.#primary = own;
    else if (this.#options.privateTargets !== true) return; // our srflx candidate is still to come
    this.#armed ??= { role, target, at: performance.now() };
    this.#considerStart();
  }

  /**
   * Starts punching once the plain checks toward the target had their chance
   * ({@link IcePunchOptions.plainCheckWaitMs}) and no direct pair succeeded: the hard side's
   * sockets and the easy side's probes compete with the checks for the event loop, so a pair of
   * NATs that ICE connects by itself (one side filtering by address only, or not at all) must not
   * pay for them. The mapping probe cannot tell filtering (that needs RFC 5780 section 4.4's
   * tests), so the checks are the test.
   */
  #considerStart(): void {
    const armed = this.#armed;
    if (armed === undefined || this.#started || this.#closed) return;
    const wait = this.#options.plainCheckWaitMs;
    if (wait === 0) return this.#start(armed.role, armed.target);
    const pairs = this.#host.agent.pairs();
    if (pairs.some((p) => p.path === 'direct' && p.state === 'succeeded')) return this.#waitTimer.cancel();
    const now = performance.now();
    const toTarget = (a: TransportAddress): boolean => a.address === armed.target.address && a.port === armed.target.port;
    if (this.#checkSeenAt === undefined && pairs.some((p) => toTarget(p.remoteAddress) && p.state !== 'frozen' && p.state !== 'waiting'))
      this.#checkSeenAt = now;
    const rtts = pairs.map((p) => p.rttMs).filter((r): r is number => r !== undefined);
    const auto = rtts.length > 0 ? Math.max(MIN_PLAIN_CHECK_WAIT_MS, 2 * Math.min(...rtts)) : 2 * MIN_PLAIN_CHECK_WAIT_MS;
    const grace = wait ?? Math.min(auto, MAX_PLAIN_CHECK_WAIT_MS);
    const at = Math.min(this.#checkSeenAt === undefined ? Infinity : this.#checkSeenAt + grace, armed.at + Math.max(grace, MAX_PLAIN_CHECK_WAIT_MS));
    if (now < at) return this.#waitTimer.set(at);
    this.#start(armed.role, armed.target);
  }

  #start(role: 'hard' | 'easy', armedTarget: TransportAddress): void {
    const credentials = this.#credentials!;
    // Candidates trickled while the checks had their chance may hold a better target and base.
    const target = punchTarget(this.#remoteCandidates) ?? armedTarget;
    const own = this.#ownBase();
    if (own !== undefined) this.#primary = own;
    this.#waitTimer.cancel();
    this.#started = true;
    const given = this.#options.options ?? {};
    const sockets = Math.min(given.sockets ?? 256, MAX_PUNCH_SOCKETS);
    const puncher = new BirthdayPuncher({
      role,
      peer: target,
      peerPortAllocation: this.#remote?.portAllocation ?? null,
      credentials,
      options: { ...given, sockets },
    });
    this.#puncher = puncher;
    void this.#openExtras(puncher.socketCount, this.#primary!.address.address).then(() => {
      if (this.#closed) return;
      // stopped while the sockets were being bound (a direct pair came first): they are not needed
      if (puncher.done) {
        for (let i = 0; i < this.#extras.length; i++) this.#closeExtra(i);
        return;
      }
      puncher.start(performance.now());
      this.#pump();
    });
  }

  async #openExtras(count: number, ip: string): Promise<void> {
    const bound = await Promise.all(Array.from({ length: count }, (_, i) => this.#bindExtra(i, ip)));
    for (const [i, e] of bound.entries()) this.#extras[i] = e;
    if (this.#closed) this.close();
  }

  /**
   * An extra socket: a node:dgram one. A peer link never runs its streams on it (only on the
   * socket it started on), so it needs nothing of udx.
   */
  #bindExtra(i: number, ip: string): Promise<Extra | undefined> {
    const socket = createSocket({ type: 'udp4' });
    return new Promise((resolve) => {
      const failed = (): void => {
        socket.close();
        resolve(undefined);
      };
      socket.once('error', failed);
      socket.bind({ address: ip, port: 0 }, () => {
        socket.off('error', failed);
        socket.on('error', () => {}); // send errors are not fatal
        this.#opened++;
        const extra: Extra = { socket, address: { family: 'IPv4', address: ip, port: socket.address().port }, open: true };
        socket.on('message', (msg, rinfo) => this.#onExtra(i, extra, msg, rinfo.address, rinfo.port));
        resolve(extra);
      });
    });
  }

  #onExtra(i: number, extra: Extra, msg: Buffer, fromIp: string, fromPort: number): void {
    if (this.#closed || !extra.open) return;
    let ip: string;
    try {
      ip = canonicalIp(fromIp);
    } catch {
      return;
    }
    const from: TransportAddress = { family: ipFamily(ip) ?? 'IPv4', address: ip, port: fromPort };
    const puncher = this.#puncher;
    if (puncher !== undefined && !puncher.done) {
      const consumed = puncher.handlePacket(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), i, from, performance.now());
      this.#pump();
      if (consumed) return;
    }
    // Once a hit made it a base, the agent's checks and application data flow on it.
    if (this.#keep === i) this.#host.deliver(punchBase(i), extra.socket, msg, from);
  }

  #closeExtra(i: number): void {
    const e = this.#extras[i];
    if (e === undefined || !e.open) return;
    e.open = false;
    try {
      e.socket.close();
    } catch {
      // already closed
    }
  }

  #pump(): void {
    const puncher = this.#puncher;
    if (puncher === undefined || this.#pumping || this.#closed) return;
    this.#pumping = true;
    let touchedAgent = false;
    try {
      for (let t = puncher.pollTransmit(); t !== undefined; t = puncher.pollTransmit()) {
        const socket =
          t.socket === 'primary'
            ? this.#host.socketOf(this.#primary?.base)
            : this.#extras[t.socket]?.open === true
              ? this.#extras[t.socket]!.socket
              : undefined;
        try {
          socket?.send(t.bytes, t.to.port, t.to.address);
        } catch {
          // closed meanwhile
        }
      }
      for (let e = puncher.pollEvent(); e !== undefined; e = puncher.pollEvent()) {
        if (e.type === 'hit') {
          this.#hit = { socket: e.socket, remote: e.remote };
          const extra = typeof e.socket === 'number' ? this.#extras[e.socket] : undefined;
          if (extra !== undefined && typeof e.socket === 'number') {
            this.#keep = e.socket;
            this.#host.addBase(punchBase(e.socket), extra.socket, extra.address);
            addPunchedPath(this.#host.agent, e, { base: punchBase(e.socket), address: extra.address });
          } else addPunchedPath(this.#host.agent, e);
          touchedAgent = true;
        } else {
          this.#outcome = e.outcome;
          for (let i = 0; i < this.#extras.length; i++) if (i !== e.keep) this.#closeExtra(i);
          if (typeof e.keep !== 'number') this.#keep = undefined;
        }
      }
      this.#schedule(puncher.pollTimeout());
    } finally {
      this.#pumping = false;
    }
    if (touchedAgent) this.#host.flush();
  }

  #schedule(at: number | undefined): void {
    this.#timer.set(this.#closed ? undefined : at);
  }
}
