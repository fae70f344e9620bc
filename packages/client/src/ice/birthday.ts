/**
 * Birthday hole punching and port prediction, sans-I/O, beside the {@link IceAgent}.
 *
 * ICE alone cannot connect a peer behind an endpoint-dependent mapping (the "hard" side: a
 * symmetric NAT, RFC 4787 section 4.1) to a peer behind an endpoint-independent mapping that
 * filters by address and port (the "easy" side): the hard side's check to the easy side leaves
 * from a new, unknown port, and the easy side's filter only lets in the ports it sent to. The
 * birthday technique makes the two meet by chance, within a bounded budget:
 *
 * - the hard side opens many sockets (256 by default) and sends one probe from each to the easy
 *   side's public (server-reflexive) address, so its NAT holds that many mappings, each one open
 *   to the easy side's address;
 * - the easy side sends probes from its ICE socket to random ports of the hard side's public IP
 *   (2000 at 1000 per second by default). Each probe opens the easy side's filter for that port;
 *   a probe that lands on one of the hard side's mapped ports gets through.
 *
 * With N mapped ports among R possible ones, k probes all miss with probability (1 - N/R)^k:
 * 256 sockets and 2000 probes over 64512 ports miss about once in 3000 tries.
 *
 * Port prediction: a NAT that allocates ports sequentially maps the hard side's sockets just
 * above the last port it was seen to map (its server-reflexive port), so the easy side probes
 * those first ({@link BirthdayOptions.predictionWindow}).
 *
 * When both sides are hard, nothing is punched: the relay is the path ({@link punchRole}).
 *
 * Integration (the driver, which owns the sockets):
 *
 * 1. Each side puts {@link punchInfoToApp} of its discovery report in its offer or answer `app`
 *    payload; on the peer's payload, {@link punchInfoFromApp} then {@link punchRole}.
 * 2. Role `hard`: open {@link BirthdayPuncher.socketCount} extra UDP sockets (numbered 0..N-1);
 *    `easy`: probes leave from the ICE socket (`'primary'`). Start the puncher with the peer's
 *    public address from its signalled candidates ({@link punchTarget}) and the ICE credentials.
 * 3. Loop as with the agent: `pollTransmit` (send `bytes` from `socket` to `to`), `pollEvent`,
 *    `pollTimeout` / `handleTimeout`. Hand every datagram received on the primary socket and on
 *    the extra sockets to {@link BirthdayPuncher.handlePacket} first; when it returns false,
 *    process its events, then hand the datagram to the agent (for an extra socket: only once it
 *    is a base of the agent).
 * 4. On a `hit` event call {@link addPunchedPath}: a hit on an extra socket makes that socket a
 *    new host base of the agent; a hit from an unknown address adds it as a peer-reflexive
 *    remote candidate. The agent's ordinary checks then validate and nominate the direct path
 *    (relay first, then the upgrade). On `done`, close every extra socket but `keep`.
 * 5. Call {@link BirthdayPuncher.stop} once the agent has a direct selected pair anyway.
 *
 * Probes are STUN Binding indications (so an ICE agent ignores them) with USERNAME
 * `RFRAG:LFRAG` and MESSAGE-INTEGRITY under the receiver's ICE password, as a check has
 * (RFC 8445 section 7.2.2): a third party cannot fake a hit.
 */
import {
  Attr,
  type IceCandidate,
  StunClass,
  StunMethod,
  type TransportAddress,
  attr,
  candidatePriority,
  candidateTransportAddress,
  decodeStunMessage,
  encodeStunMessage,
  ipToBytes,
  looksLikeStun,
  shortTermKey,
  verifyMessageIntegrity,
} from '@nat/protocol';
import type { NatBehavior } from '../discovery/nat-class.js';
import { type PortAllocation, classifyPortAllocation } from '../discovery/ports.js';
import type { IceAgent } from './agent.js';
import type { BaseId } from './types.js';

/** A mapping behaviour as the discovery report gives it (RFC 5780 section 4.3); null: unknown. */
export type PunchMapping = NatBehavior | null;

export { type PortAllocation, classifyPortAllocation };

/** What each side tells the other about its NAT, in the offer or answer `app` payload. */
export interface PunchNatInfo {
  /** The mapping behaviour from NAT discovery. */
  readonly mapping: PunchMapping;
  /** How the NAT allocates ports, when known ({@link classifyPortAllocation}). */
  readonly portAllocation: PortAllocation;
}

/** The `app` payload keys of {@link PunchNatInfo}. */
export const PUNCH_APP_KEYS = Object.freeze({ mapping: 'nat.mapping', portAllocation: 'nat.ports' } as const);

const MAPPINGS: readonly NatBehavior[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'];
const ALLOCATIONS: readonly Exclude<PortAllocation, null>[] = ['preserving', 'sequential', 'random'];

/**
 * The `app` payload entries for `info`: `nat.mapping` (one of the RFC 5780 behaviours, or
 * `unknown`) and `nat.ports` (`preserving`, `sequential`, `random` or `unknown`). Their
 * presence also says the peer can punch.
 */
export function punchInfoToApp(info: PunchNatInfo): Record<string, string> {
  return {
    [PUNCH_APP_KEYS.mapping]: info.mapping ?? 'unknown',
    [PUNCH_APP_KEYS.portAllocation]: info.portAllocation ?? 'unknown',
  };
}

/** The peer's {@link PunchNatInfo} from its `app` payload; undefined when it does not punch. */
export function punchInfoFromApp(app: Readonly<Record<string, string>> | undefined): PunchNatInfo | undefined {
  const mapping = app?.[PUNCH_APP_KEYS.mapping];
  if (mapping === undefined) return undefined;
  const ports = app?.[PUNCH_APP_KEYS.portAllocation];
  return {
    mapping: MAPPINGS.find((m) => m === mapping) ?? null,
    portAllocation: ALLOCATIONS.find((p) => p === ports) ?? null,
  };
}

/**
 * What this side does: `hard` (its mapping depends on the destination, the peer's does not:
 * open many sockets), `easy` (the reverse: probe random ports), `relay` (both depend on the
 * destination: punching is hopeless, use the relay at once), or `none` (both independent, or
 * unknown: ordinary ICE checks suffice or nothing is known to punch with).
 */
export type PunchRole = 'hard' | 'easy' | 'relay' | 'none';

/** The {@link PunchRole} for a local and a remote mapping behaviour. */
export function punchRole(local: PunchMapping, remote: PunchMapping): PunchRole {
  if (local === null || remote === null) return 'none';
  const localHard = local !== 'endpoint-independent';
  const remoteHard = remote !== 'endpoint-independent';
  if (localHard && remoteHard) return 'relay';
  if (localHard) return 'hard';
  if (remoteHard) return 'easy';
  return 'none';
}

/** False for IPv4 ranges that are not reachable across the internet (RFC 6890), for {@link punchTarget} and host ranking. */
export function isPublicIPv4(ip: string): boolean {
  const b = ipToBytes(ip);
  if (b.length !== 4) return false;
  const [a, c] = [b[0]!, b[1]!];
  return !(
    a === 0 ||
    a === 10 ||
    a === 127 ||
    a >= 224 ||
    (a === 100 && c >= 64 && c < 128) ||
    (a === 169 && c === 254) ||
    (a === 172 && c >= 16 && c < 32) ||
    (a === 192 && c === 168) ||
    (a === 198 && (c === 18 || c === 19))
  );
}

/**
 * The peer's public address to punch towards, from its signalled candidates: its IPv4
 * server-reflexive candidate of the highest priority (the first of equals), else (a peer with no NAT) its first IPv4 host candidate with a
 * public address. The hard side probes this address; the easy side probes random ports of its
 * IP and predicts from its port.
 */
export function punchTarget(candidates: readonly IceCandidate[]): TransportAddress | undefined {
  const v4 = candidates
    .filter((c) => c.transport === 'udp')
    .map((c) => ({ c, a: candidateTransportAddress(c) }))
    .filter((x): x is { c: IceCandidate; a: TransportAddress } => x.a !== undefined && x.a.family === 'IPv4');
  // The highest priority wins, not the first signalled: a host with two addresses behind one NAT
  // (a carrier NAT translating both) has two server-reflexive candidates, gathered and trickled in
  // either order, and both sides must pick the same one (its base is where the easy side probes from).
  const srflx = v4
    .filter((x) => x.c.type === 'srflx')
    .reduce<(typeof v4)[number] | undefined>((best, x) => (best === undefined || x.c.priority > best.c.priority ? x : best), undefined);
  return (srflx ?? v4.find((x) => x.c.type === 'host' && isPublicIPv4(x.a.address)))?.a;
}

/** Settable budgets of {@link BirthdayPuncher}; every one has a default. */
export interface BirthdayOptions {
  /** Hard side: sockets opened, one probe each per round. Default 256. */
  readonly sockets?: number;
  /** Hard side: the probes of every socket are sent again this often (a late probe gets through a filter the easy side opened meanwhile), ms. Default 1000. */
  readonly hardRoundInterval?: number;
  /**
   * Easy side: probes per second. Default 1000: with 256 mapped ports among 64512, one probe in
   * 252 hits on average and 95% of tries hit within 750 probes, so 400 per second (the earlier
   * default) put one try in ten past 2 s; 1000 per second hits within about 0.75 s at p95.
   */
  readonly probesPerSecond?: number;
  /** Easy side: probes in all (with the defaults, 2 s of probing). Default 2000. */
  readonly probeBudget?: number;
  /** Both sides: give up this long after {@link BirthdayPuncher.start} without a hit, ms. Default 6000. */
  readonly giveUpAfter?: number;
  /** Easy side: the lowest and highest port probed. Defaults 1024 and 65535. */
  readonly minPort?: number;
  readonly maxPort?: number;
  /**
   * Easy side: ports just above the peer's last observed mapped port, probed in order before
   * (peer's NAT known sequential), between (unknown) or never (known random or preserving) the
   * random ones. Default 320 (the 256 sockets plus room for the mappings of ICE checks).
   */
  readonly predictionWindow?: number;
  /** Granularity of the easy side's pacing: probes due within one tick go together, ms. Default 10. */
  readonly tick?: number;
  /** Random numbers in [0, 1); inject a seeded one for deterministic tests. Default Math.random. */
  readonly random?: () => number;
}

/** Defaults of {@link BirthdayOptions}. */
export const BIRTHDAY_DEFAULTS: Readonly<Required<Omit<BirthdayOptions, 'random'>>> = Object.freeze({
  sockets: 256,
  hardRoundInterval: 1000,
  probesPerSecond: 1000,
  probeBudget: 2000,
  giveUpAfter: 6000,
  minPort: 1024,
  maxPort: 65535,
  predictionWindow: 320,
  tick: 10,
});

/** The ICE credentials of both sides: probes are authenticated as checks are. */
export interface PunchCredentials {
  readonly localUfrag: string;
  readonly localPwd: string;
  readonly remoteUfrag: string;
  readonly remotePwd: string;
}

/** What {@link BirthdayPuncher} is made of. */
export interface BirthdayPuncherInit {
  /** `hard` or `easy`, from {@link punchRole}. */
  readonly role: 'hard' | 'easy';
  /**
   * The peer's public address ({@link punchTarget}). The hard side probes it; the easy side
   * probes random ports of its IP, and predicts from its port.
   */
  readonly peer: TransportAddress;
  /** The peer's {@link PunchNatInfo.portAllocation}, for prediction. Default null. */
  readonly peerPortAllocation?: PortAllocation;
  readonly credentials: PunchCredentials;
  readonly options?: BirthdayOptions;
}

/** A socket of the puncher: the ICE socket, or extra socket `i` of the hard side. */
export type PunchSocket = 'primary' | number;

/** A probe to send. */
export interface PunchTransmit {
  readonly socket: PunchSocket;
  readonly to: TransportAddress;
  readonly bytes: Uint8Array;
}

/** How punching ended. */
export type PunchOutcome = 'hit' | 'timeout' | 'stopped';

/** What the puncher reports. */
export type PunchEvent =
  /** A probe (or, on an extra socket, the peer's ICE check) came in: a path from `socket` to `remote` is open both ways. */
  | { readonly type: 'hit'; readonly socket: PunchSocket; readonly remote: TransportAddress; readonly at: number }
  /** Punching ended; close every extra socket except `keep`. */
  | {
      readonly type: 'done';
      readonly outcome: PunchOutcome;
      readonly keep: PunchSocket | undefined;
      readonly probesSent: number;
      readonly at: number;
    };

/**
 * One side of birthday punching, sans-I/O: it says what to send from which socket and when,
 * and recognises the peer's probes. See the module comment for the driver's part.
 */
export class BirthdayPuncher {
  /** This side's role. */
  readonly role: 'hard' | 'easy';
  private readonly opts: Required<BirthdayOptions>;
  private readonly peer: TransportAddress;
  private readonly probe: Uint8Array;
  private readonly localKey: Uint8Array;
  private readonly credentials: PunchCredentials;
  private readonly transmits: PunchTransmit[] = [];
  private readonly events: PunchEvent[] = [];
  private startedAt: number | undefined;
  private finished = false;
  private sent = 0;
  private nextRoundAt = 0;
  /** easy side: ports in the order they will be probed (prediction), then random ones */
  private readonly predicted: number[] = [];
  private predictedIndex = 0;
  private readonly interleave: boolean;
  private readonly tried = new Set<number>();

  constructor(init: BirthdayPuncherInit) {
    this.role = init.role;
    this.peer = init.peer;
    this.credentials = init.credentials;
    const given = Object.fromEntries(Object.entries(init.options ?? {}).filter(([, v]) => v !== undefined));
    this.opts = { ...BIRTHDAY_DEFAULTS, random: Math.random, ...given } as Required<BirthdayOptions>;
    if (!(this.opts.sockets >= 1 && this.opts.probesPerSecond > 0 && this.opts.minPort >= 1 && this.opts.maxPort <= 65535)) {
      throw new RangeError('birthday options out of range');
    }
    if (this.opts.minPort > this.opts.maxPort) throw new RangeError('minPort above maxPort');
    const c = init.credentials;
    this.localKey = shortTermKey(c.localPwd);
    // One probe serves every send: an indication has no transaction to match.
    this.probe = encodeStunMessage(
      { method: StunMethod.Binding, class: StunClass.Indication, attributes: [attr(Attr.Username, `${c.remoteUfrag}:${c.localUfrag}`)] },
      { integrity: shortTermKey(c.remotePwd), fingerprint: true },
    );
    const allocation = init.peerPortAllocation ?? null;
    this.interleave = allocation === null;
    if (this.role === 'easy' && (allocation === null || allocation === 'sequential')) {
      for (let p = init.peer.port + 1; p <= init.peer.port + this.opts.predictionWindow && p <= this.opts.maxPort; p++) {
        if (p >= this.opts.minPort) this.predicted.push(p);
      }
    }
  }

  /** Hard side: the extra sockets the driver opens before {@link start}, numbered from 0. Easy side: 0. */
  get socketCount(): number {
    return this.role === 'hard' ? this.opts.sockets : 0;
  }

  /** Probes sent so far. */
  get probesSent(): number {
    return this.sent;
  }

  /** Whether punching has ended. */
  get done(): boolean {
    return this.finished;
  }

  /** Starts punching at `now` (the driver's clock, ms). */
  start(now: number): void {
    if (this.startedAt !== undefined) return;
    this.startedAt = now;
    this.nextRoundAt = now;
    this.run(now);
  }

  /** Stops punching (say, the agent found a direct path anyway). */
  stop(now: number): void {
    this.finish('stopped', undefined, now);
  }

  /**
   * A datagram that arrived on `socket` from `from`. True when it was a probe (the puncher
   * consumed it); false otherwise: process {@link pollEvent} (it may hold a hit that makes
   * `socket` a base of the agent), then give the datagram to the agent.
   */
  handlePacket(bytes: Uint8Array, socket: PunchSocket, from: TransportAddress, now: number): boolean {
    if (!looksLikeStun(bytes)) return false;
    let message;
    try {
      message = decodeStunMessage(bytes);
    } catch {
      return false;
    }
    if (message.method !== StunMethod.Binding) return false;
    const username = message.get(Attr.Username);
    if (username === undefined) return false;
    const c = this.credentials;
    if (message.class === StunClass.Indication) {
      if (username !== `${c.localUfrag}:${c.remoteUfrag}` || message.integrityOffset < 0) return false;
      if (!verifyMessageIntegrity(message, this.localKey)) return true;
      this.hit(socket, from, now, true);
      return true;
    }
    // The peer's ICE check reaching an extra socket is a hit too: its NAT lets us in there.
    if (message.class === StunClass.Request && socket !== 'primary' && username.startsWith(`${c.localUfrag}:`)) {
      this.hit(socket, from, now, false);
    }
    return false;
  }

  /** The time has come (or passed) that {@link pollTimeout} named. */
  handleTimeout(now: number): void {
    this.run(now);
  }

  /** The next probe to send, if any. */
  pollTransmit(): PunchTransmit | undefined {
    return this.transmits.shift();
  }

  /** The next event, if any. */
  pollEvent(): PunchEvent | undefined {
    return this.events.shift();
  }

  /** When to call {@link handleTimeout} next, or undefined when done (or not started). */
  pollTimeout(): number | undefined {
    const start = this.startedAt;
    if (start === undefined || this.finished) return undefined;
    const giveUp = start + this.opts.giveUpAfter;
    if (this.role === 'hard') return Math.min(this.nextRoundAt, giveUp);
    if (this.sent >= this.opts.probeBudget) return giveUp;
    const due = this.dueAt(this.sent);
    const tick = this.opts.tick;
    return Math.min(giveUp, start + Math.ceil((due - start) / tick) * tick);
  }

  private dueAt(n: number): number {
    return this.startedAt! + (n * 1000) / this.opts.probesPerSecond;
  }

  private run(now: number): void {
    const start = this.startedAt;
    if (start === undefined || this.finished) return;
    if (this.role === 'hard') {
      if (now >= this.nextRoundAt && now < start + this.opts.giveUpAfter) {
        for (let i = 0; i < this.opts.sockets; i++) this.send(i, this.peer);
        this.nextRoundAt = now + this.opts.hardRoundInterval;
      }
    } else {
      while (this.sent < this.opts.probeBudget && this.dueAt(this.sent) <= now) {
        this.send('primary', { family: this.peer.family, address: this.peer.address, port: this.nextPort() });
      }
    }
    if (now >= start + this.opts.giveUpAfter) this.finish('timeout', undefined, now);
  }

  /** The next port the easy side probes: predicted ones first or every other probe, then random ones. */
  private nextPort(): number {
    const predict = this.predictedIndex < this.predicted.length && (!this.interleave || this.sent % 2 === 0);
    if (predict) {
      const p = this.predicted[this.predictedIndex++]!;
      this.tried.add(p);
      return p;
    }
    const span = this.opts.maxPort - this.opts.minPort + 1;
    for (let attempt = 0; ; attempt++) {
      const p = this.opts.minPort + Math.floor(this.opts.random() * span);
      // a repeat is wasted unless every port was tried already
      if (!this.tried.has(p) || this.tried.size >= span || attempt > 64) {
        this.tried.add(p);
        return p;
      }
    }
  }

  private send(socket: PunchSocket, to: TransportAddress): void {
    this.sent++;
    this.transmits.push({ socket, to, bytes: this.probe });
  }

  private hit(socket: PunchSocket, from: TransportAddress, now: number, answer: boolean): void {
    if (this.finished) return;
    // The rest of a round is moot now. Answer once, from the socket that was hit, so the peer learns the path too.
    this.transmits.length = 0;
    if (answer) this.transmits.push({ socket, to: from, bytes: this.probe });
    this.events.push({ type: 'hit', socket, remote: from, at: now });
    this.finish('hit', socket, now);
  }

  private finish(outcome: PunchOutcome, keep: PunchSocket | undefined, now: number): void {
    if (this.finished) return;
    this.finished = true;
    if (outcome !== 'hit') this.transmits.length = 0;
    this.events.push({ type: 'done', outcome, keep, probesSent: this.sent, at: now });
  }
}

/** The local preference of extra-socket host candidates: just below a typical first interface's. */
const PUNCHED_LOCAL_PREFERENCE = 65000;

/**
 * The integration hook: tells the agent about a punched path so its ordinary checks validate
 * and nominate it. A hit on an extra socket (`local` given: the socket's base id and bound
 * address) adds a host candidate on that new base, with a foundation of its own so its pairs are
 * not frozen behind the ICE socket's (RFC 8445 section 6.1.2.6); a hit from an address the agent
 * does not know adds it as a peer-reflexive remote candidate (RFC 8445 section 7.3.1.3 would
 * learn it from the peer's check a round trip later). Neither candidate is signalled.
 */
export function addPunchedPath(
  agent: IceAgent,
  hit: Extract<PunchEvent, { type: 'hit' }>,
  local?: { readonly base: BaseId; readonly address: TransportAddress },
): void {
  if (local !== undefined) {
    agent.addLocalCandidate(
      {
        foundation: `bday${typeof hit.socket === 'number' ? hit.socket : 0}`,
        component: 1,
        transport: 'udp',
        priority: candidatePriority('host', PUNCHED_LOCAL_PREFERENCE, 1),
        address: local.address.address,
        port: local.address.port,
        type: 'host',
        extensions: [],
      },
      local.base,
    );
  }
  agent.addRemoteCandidate({
    foundation: 'bday',
    component: 1,
    transport: 'udp',
    priority: candidatePriority('prflx', 65535, 1),
    address: hit.remote.address,
    port: hit.remote.port,
    type: 'prflx',
    extensions: [],
  });
}
