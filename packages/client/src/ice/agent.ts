/**
 * A sans-I/O ICE agent: RFC 8445 (full agent, one component, UDP), RFC 8838 trickle ICE and
 * RFC 7675 consent freshness, as a plain state machine in the manner of str0m and quinn-proto.
 * The driver feeds it candidates, credentials, packets and the time; it asks the agent what to
 * send (`pollTransmit`), when to wake it (`pollTimeout`) and what happened (`pollEvent`).
 * Nothing here opens a socket, reads a clock or starts a timer.
 */
import {
  Attr,
  type IceCandidate,
  type StunMessage,
  StunClass,
  StunMethod,
  type TransportAddress,
  canonicalIp,
  candidateFoundation,
  candidatePriority,
  candidateTransportAddress,
  decodeStunMessage,
  looksLikeStun,
  pairPriority,
  shortTermKey,
  verifyFingerprint,
  verifyMessageIntegrity,
} from '@nat/protocol';
import { isGlobalIPv6 } from './family.js';
import { encodeCheckError, encodeCheckRequest, encodeCheckSuccess, encodeKeepalive } from './messages.js';
import {
  type BaseId,
  type CandidatePairInfo,
  type CandidatePairState,
  ICE_AGENT_DEFAULTS,
  type IceAgentEvent,
  type IceAgentOptions,
  type IceAgentState,
  type IceFailureReason,
  type IcePacketSource,
  type IceRole,
  type IceTransmit,
  type ResolvedIceAgentOptions,
  pathOf,
} from './types.js';

/** What {@link IceAgent} is made of. */
export interface IceAgentInit {
  /** The initial role; a role conflict (RFC 8445 section 7.3.1.1) may change it. */
  readonly role: IceRole;
  /** The 64-bit tie-breaker (RFC 8445 section 7.1.1), random per session. */
  readonly tieBreaker: bigint;
  /** Local ICE username fragment (at least 4 ice-chars, RFC 8445 section 5.3). */
  readonly ufrag: string;
  /** Local ICE password (at least 22 ice-chars). */
  readonly pwd: string;
  readonly options?: IceAgentOptions;
}

interface LocalCandidate {
  readonly candidate: IceCandidate;
  readonly base: BaseId;
  readonly address: TransportAddress;
  readonly key: string;
}

interface RemoteCandidate {
  candidate: IceCandidate;
  readonly address: TransportAddress;
  readonly key: string;
}

interface Pair {
  readonly id: number;
  readonly local: LocalCandidate;
  readonly remote: RemoteCandidate;
  readonly foundation: string;
  priority: bigint;
  state: CandidatePairState;
  nominated: boolean;
  /** The controlled agent saw USE-CANDIDATE before the pair succeeded (RFC 8445 section 7.3.1.5). */
  nominateOnSuccess: boolean;
  mappedLocal: LocalCandidate | undefined;
  rttMs: number | undefined;
  validAt: number | undefined;
  consentAt: number;
  lastSentAt: number;
  /** When the pair's current connectivity check first went out (undefined before any). */
  checkStartedAt: number | undefined;
}

type TransactionKind = 'check' | 'consent';

interface Transaction {
  readonly key: string;
  readonly pair: Pair;
  readonly kind: TransactionKind;
  readonly useCandidate: boolean;
  readonly role: IceRole;
  readonly remoteKey: Uint8Array;
  readonly bytes: Uint8Array;
  readonly sentPriority: number;
  readonly firstSentAt: number;
  readonly maxSends: number;
  nextAt: number;
  rto: number;
  sends: number;
  /** RFC 8445 section 7.3.1.4: no more retransmits, no failure, but a late response still counts. */
  cancelled: boolean;
}

interface Triggered {
  readonly pair: Pair;
  useCandidate: boolean;
}

/** RFC 8445 section 6.1.2.5: the recommended limit on the size of a checklist. */
const MAX_PAIRS = 100;
/** Consent checks retransmit a few times within their interval (RFC 7675 section 5.1). */
const CONSENT_TRANSMISSIONS = 4;
const COMPONENT = 1;

const keyOf = (a: TransportAddress): string => `${a.address}|${a.port}`;
const txKeyOf = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset + 4, 16).toString('hex');
/**
 * How long a valid pair waits for a pending higher-priority pair toward a global IPv6 address
 * before it is nominated (RFC 8421's preference; RFC 8305 gives IPv6 a head start of the same
 * order): the peer's stateful firewall drops the first check until the peer's own check opens it.
 */
const IPV6_NOMINATION_WAIT = 1000;
const isPending = (p: Pair): boolean => p.state === 'frozen' || p.state === 'waiting' || p.state === 'in-progress';

function canonicalAddress(a: TransportAddress): TransportAddress {
  const address = canonicalIp(a.address);
  return address === a.address ? a : { family: a.family, address, port: a.port };
}

/**
 * The ICE agent. One data stream with one component over UDP; candidates are gathered by the
 * driver and handed in with the base (socket or TURN allocation) they belong to.
 *
 * Relay first, then upgrade: the controlling agent nominates a relayed pair as soon as it works
 * when nothing is selected yet, keeps checking, and nominates a direct pair when one succeeds.
 * RFC 8445 ends checks at the first nomination; this agent lets the controlling side nominate
 * again (as renomination does), and the controlled side always uses the highest-priority
 * nominated pair. Both emit `selected-pair` when it changes.
 *
 * Candidates pair by base: a server-reflexive candidate is replaced by its base (RFC 8445
 * section 6.1.2.4), so add a base's host candidate before its srflx candidate; a srflx candidate
 * is still used to recognise the address the peer sees.
 */
export class IceAgent {
  private readonly opts: ResolvedIceAgentOptions;
  private roleValue: IceRole;
  private readonly tieBreaker: bigint;
  private localUfrag: string;
  private localPwd: string;
  private localKey: Uint8Array;
  private remoteUfrag: string | undefined;
  private remotePwd: string | undefined;
  private remoteKey: Uint8Array | undefined;

  private readonly locals: LocalCandidate[] = [];
  private readonly baseCandidates = new Map<BaseId, LocalCandidate>();
  private remotes = new Map<string, RemoteCandidate>();
  private pairList: Pair[] = [];
  private readonly transactions = new Map<string, Transaction>();
  private triggered: Triggered[] = [];
  private readonly transmits: IceTransmit[] = [];
  private readonly events: IceAgentEvent[] = [];

  private stateValue: IceAgentState = 'new';
  private now = 0;
  private startedAt: number | undefined;
  private nextCheckAt = 0;
  private nextConsentAt = 0;
  private selected: Pair | undefined;
  private nominating: Pair | undefined;
  private localEnded = false;
  private remoteEnded = false;
  private nextPairId = 1;
  private prflxCount = 0;

  constructor(init: IceAgentInit) {
    this.opts = { ...ICE_AGENT_DEFAULTS, random: Math.random, ...stripUndefined(init.options ?? {}) };
    this.roleValue = init.role;
    this.tieBreaker = init.tieBreaker;
    this.localUfrag = init.ufrag;
    this.localPwd = init.pwd;
    this.localKey = shortTermKey(init.pwd);
  }

  /** The current role. */
  get role(): IceRole {
    return this.roleValue;
  }

  /** The current state. */
  get state(): IceAgentState {
    return this.stateValue;
  }

  /** The local username fragment and password, to signal to the peer. */
  get localCredentials(): { readonly ufrag: string; readonly pwd: string } {
    return { ufrag: this.localUfrag, pwd: this.localPwd };
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /**
   * A candidate the driver gathered on `base`: host (the socket's address), srflx (learned from a
   * STUN server through that socket) or relay (a TURN allocation, with its own base id).
   * @throws RangeError when the candidate's address is a host name, or it is not a UDP component 1 candidate
   */
  addLocalCandidate(candidate: IceCandidate, base: BaseId): void {
    const address = candidateTransportAddress(candidate);
    if (address === undefined) throw new RangeError(`local candidate address ${candidate.address} is not an IP address`);
    if (candidate.transport !== 'udp' || candidate.component !== COMPONENT) {
      throw new RangeError('only UDP candidates of component 1 are supported');
    }
    const key = keyOf(address);
    if (this.locals.some((l) => l.key === key && l.base === base)) return;
    const local: LocalCandidate = { candidate, base, address, key };
    this.locals.push(local);
    if ((candidate.type === 'host' || candidate.type === 'relay') && !this.baseCandidates.has(base)) {
      this.baseCandidates.set(base, local);
      for (const remote of this.remotes.values()) this.addPair(local, remote);
    }
  }

  /** The driver has gathered every local candidate (RFC 8838 section 8.2). */
  endOfLocalCandidates(): void {
    this.localEnded = true;
  }

  /**
   * The peer's ufrag and password. A new ufrag after one was set is an ICE restart by the peer
   * (RFC 8445 section 9): the checklist starts over; call {@link restart} too so both sides change.
   */
  setRemoteCredentials(ufrag: string, pwd: string): void {
    if (this.remoteUfrag !== undefined && this.remoteUfrag !== ufrag) this.resetChecklist();
    this.remoteUfrag = ufrag;
    this.remotePwd = pwd;
    this.remoteKey = shortTermKey(pwd);
    if (this.selected !== undefined) this.selected.consentAt = Math.max(this.selected.consentAt, this.now);
  }

  /**
   * A remote candidate, signalled or trickled (RFC 8838). TCP, mDNS-named and other-component
   * candidates are ignored. A candidate that was known as peer-reflexive takes its signalled form.
   */
  addRemoteCandidate(candidate: IceCandidate): void {
    if (candidate.transport !== 'udp' || candidate.component !== COMPONENT) return;
    const address = candidateTransportAddress(candidate);
    if (address === undefined) return;
    const key = keyOf(address);
    const known = this.remotes.get(key);
    if (known !== undefined) {
      if (known.candidate.type === 'prflx') {
        known.candidate = candidate;
        this.recomputePriorities();
      }
      return;
    }
    const remote: RemoteCandidate = { candidate, address, key };
    this.remotes.set(key, remote);
    for (const local of this.baseCandidates.values()) this.addPair(local, remote);
  }

  /** The peer signalled end-of-candidates (RFC 8838 section 8.2). */
  endOfRemoteCandidates(): void {
    this.remoteEnded = true;
  }

  /**
   * ICE restart (RFC 8445 section 9): new local credentials, and a new checklist once the peer's
   * new credentials and candidates arrive. The selected pair, if any, stays usable for data until
   * a new one is selected. Local host, srflx and relay candidates are kept.
   */
  restart(ufrag: string, pwd: string): void {
    this.localUfrag = ufrag;
    this.localPwd = pwd;
    this.localKey = shortTermKey(pwd);
    this.remoteUfrag = undefined;
    this.remotePwd = undefined;
    this.remoteKey = undefined;
    this.resetChecklist();
    if (this.stateValue === 'failed') this.setState(this.selected === undefined ? 'new' : 'connected');
  }

  /** Stops everything: no more transmits or timeouts. */
  close(): void {
    this.transactions.clear();
    this.triggered = [];
    this.setState('closed');
  }

  /**
   * A datagram received on `source.base`. Returns false when it is not a STUN Binding message,
   * so the driver hands it to the application (RFC 7983 demultiplexing); true when the agent
   * consumed it (answered, matched to a check, or dropped as invalid).
   */
  handlePacket(bytes: Uint8Array, source: IcePacketSource, now: number): boolean {
    if (!looksLikeStun(bytes)) return false;
    let message: StunMessage;
    try {
      message = decodeStunMessage(bytes);
    } catch {
      return true;
    }
    if (message.method !== StunMethod.Binding) return false;
    this.advance(now);
    if (this.stateValue === 'closed') return true;
    if (message.fingerprintOffset >= 0 && !verifyFingerprint(message)) return true;
    const from = canonicalAddress(source.from);
    try {
      if (message.class === StunClass.Request) this.handleRequest(message, source.base, from);
      else if (message.class === StunClass.SuccessResponse || message.class === StunClass.ErrorResponse) {
        this.handleResponse(message, source.base, from);
      }
    } catch {
      // an attribute that does not decode: the message is dropped
    }
    this.run();
    return true;
  }

  /** The time has come (or passed) that {@link pollTimeout} named; any time may be passed. */
  handleTimeout(now: number): void {
    this.advance(now);
    this.run();
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  /** The next datagram to send, if any. */
  pollTransmit(): IceTransmit | undefined {
    return this.transmits.shift();
  }

  /** The next event, if any. */
  pollEvent(): IceAgentEvent | undefined {
    return this.events.shift();
  }

  /**
   * When to call {@link handleTimeout} next (in the driver's clock), or undefined when nothing is
   * scheduled. A time at or before the last `now` means "at once".
   */
  pollTimeout(): number | undefined {
    if (this.stateValue === 'closed' || (this.stateValue === 'failed' && this.selected === undefined)) return undefined;
    if (this.startedAt === undefined) return this.now;
    let t = Number.POSITIVE_INFINITY;
    if (this.canCheck() && (this.triggered.length > 0 || this.nextOrdinaryPair() !== undefined)) {
      t = Math.min(t, this.nextCheckAt);
    }
    for (const tx of this.transactions.values()) t = Math.min(t, tx.nextAt);
    if (this.selected === undefined) t = Math.min(t, this.startedAt + this.opts.failureTimeout);
    const nomination = this.nominationDue();
    if (nomination !== undefined) t = Math.min(t, nomination.at);
    const s = this.selected;
    if (s !== undefined && this.remoteKey !== undefined) {
      t = Math.min(t, this.nextConsentAt, s.consentAt + this.opts.consentTimeout, s.lastSentAt + this.opts.keepaliveInterval);
      if (this.stateValue !== 'disconnected') t = Math.min(t, s.consentAt + this.opts.disconnectedTimeout);
    }
    return t === Number.POSITIVE_INFINITY ? undefined : t;
  }

  /** The selected pair, if any: where the driver sends application data. */
  selectedPair(): CandidatePairInfo | undefined {
    return this.selected === undefined ? undefined : this.info(this.selected);
  }

  /** Every pair of the checklist, highest priority first. */
  pairs(): CandidatePairInfo[] {
    return this.pairList.map((p) => this.info(p));
  }

  /** The local candidates, including peer-reflexive ones learned from checks. */
  localCandidates(): { candidate: IceCandidate; base: BaseId }[] {
    return this.locals.map((l) => ({ candidate: l.candidate, base: l.base }));
  }

  /** The remote candidates, including peer-reflexive ones learned from checks. */
  remoteCandidates(): IceCandidate[] {
    return [...this.remotes.values()].map((r) => r.candidate);
  }

  // -------------------------------------------------------------------------------------------
  // The checklist

  private addPair(local: LocalCandidate, remote: RemoteCandidate): Pair | undefined {
    if (local.address.family !== remote.address.family) return undefined;
    const existing = this.findPair(local.base, remote.key);
    if (existing !== undefined) return existing;
    if (this.pairList.length >= MAX_PAIRS) return undefined;
    const foundation = `${local.candidate.foundation}:${remote.candidate.foundation}`;
    // RFC 8445 section 6.1.2.6 and RFC 8838 section 10: a new pair waits when no pair of its
    // foundation is already being checked, or when one of its foundation has succeeded.
    const sameFoundation = this.pairList.filter((p) => p.foundation === foundation);
    const state: CandidatePairState =
      sameFoundation.some((p) => p.state === 'succeeded') || !sameFoundation.some((p) => p.state === 'waiting' || p.state === 'in-progress')
        ? 'waiting'
        : 'frozen';
    const pair: Pair = {
      id: this.nextPairId++,
      local,
      remote,
      foundation,
      priority: this.priorityOf(local, remote),
      state,
      nominated: false,
      nominateOnSuccess: false,
      mappedLocal: undefined,
      rttMs: undefined,
      validAt: undefined,
      consentAt: this.now,
      lastSentAt: this.now,
      checkStartedAt: undefined,
    };
    this.pairList.push(pair);
    this.sortPairs();
    this.emitPair(pair);
    return pair;
  }

  private findPair(base: BaseId, remoteKey: string): Pair | undefined {
    return this.pairList.find((p) => p.local.base === base && p.remote.key === remoteKey);
  }

  private priorityOf(local: LocalCandidate, remote: RemoteCandidate): bigint {
    const l = local.candidate.priority;
    const r = remote.candidate.priority;
    return this.roleValue === 'controlling' ? pairPriority(l, r) : pairPriority(r, l);
  }

  private recomputePriorities(): void {
    for (const p of this.pairList) p.priority = this.priorityOf(p.local, p.remote);
    this.sortPairs();
  }

  private sortPairs(): void {
    this.pairList.sort((a, b) => (a.priority === b.priority ? a.id - b.id : a.priority > b.priority ? -1 : 1));
  }

  /**
   * RFC 8445 section 6.1.4.2: the highest-priority Waiting pair; if none, the highest-priority
   * Frozen pair whose foundation has no pair Waiting or In-Progress.
   */
  private nextOrdinaryPair(): Pair | undefined {
    const waiting = this.pairList.find((p) => p.state === 'waiting');
    if (waiting !== undefined) return waiting;
    return this.pairList.find(
      (p) => p.state === 'frozen' && !this.pairList.some((q) => q.foundation === p.foundation && (q.state === 'waiting' || q.state === 'in-progress')),
    );
  }

  private canCheck(): boolean {
    return this.remoteKey !== undefined && this.stateValue !== 'failed' && this.stateValue !== 'closed';
  }

  private resetChecklist(): void {
    this.remotes = new Map();
    this.pairList = [];
    this.transactions.clear();
    this.triggered = [];
    this.nominating = undefined;
    this.remoteEnded = false;
    this.startedAt = undefined;
    for (let i = this.locals.length - 1; i >= 0; i--) if (this.locals[i]!.candidate.type === 'prflx') this.locals.splice(i, 1);
  }

  // -------------------------------------------------------------------------------------------
  // Time

  private advance(now: number): void {
    if (now > this.now) this.now = now;
    if (this.startedAt === undefined) this.startedAt = this.now;
  }

  /** Everything that is due at `this.now`. */
  private run(): void {
    if (this.stateValue === 'closed') return;
    const now = this.now;
    this.runTransactions(now);
    if (this.canCheck() && now >= this.nextCheckAt) {
      if (this.sendNextCheck()) this.nextCheckAt = now + this.opts.ta;
    }
    const nomination = this.nominationDue();
    if (nomination !== undefined && nomination.at <= now) this.nominate(nomination.pair);
    this.runConsent(now);
    this.checkFailure(now);
  }

  private runTransactions(now: number): void {
    for (const tx of [...this.transactions.values()]) {
      if (tx.nextAt > now) continue;
      if (tx.cancelled || tx.sends >= tx.maxSends) {
        this.transactions.delete(tx.key);
        if (!tx.cancelled && tx.kind === 'check') this.failPair(tx.pair);
        continue;
      }
      tx.sends++;
      tx.rto = Math.min(tx.rto * 2, this.opts.checkMaxRto);
      tx.nextAt = now + tx.rto;
      this.send(tx.pair, tx.bytes);
    }
  }

  private sendNextCheck(): boolean {
    while (this.triggered.length > 0) {
      const t = this.triggered.shift()!;
      if (!this.pairList.includes(t.pair)) continue;
      this.startCheck(t.pair, t.useCandidate, 'check');
      return true;
    }
    const pair = this.nextOrdinaryPair();
    if (pair === undefined) return false;
    this.startCheck(pair, false, 'check');
    return true;
  }

  private startCheck(pair: Pair, useCandidate: boolean, kind: TransactionKind): void {
    if (this.remoteUfrag === undefined || this.remotePwd === undefined || this.remoteKey === undefined) return;
    if (this.stateValue === 'new') this.setState('checking');
    const localPreference = (pair.local.candidate.priority >>> 8) & 0xffff;
    const sentPriority = candidatePriority('prflx', localPreference, COMPONENT);
    const bytes = encodeCheckRequest({
      localUfrag: this.localUfrag,
      remoteUfrag: this.remoteUfrag,
      remotePwd: this.remotePwd,
      role: this.roleValue,
      tieBreaker: this.tieBreaker,
      priority: sentPriority,
      useCandidate,
    });
    const tx: Transaction = {
      key: txKeyOf(bytes),
      pair,
      kind,
      useCandidate,
      role: this.roleValue,
      remoteKey: this.remoteKey,
      bytes,
      sentPriority,
      firstSentAt: this.now,
      maxSends: kind === 'consent' ? CONSENT_TRANSMISSIONS : this.opts.checkTransmissions,
      nextAt: this.now + this.opts.checkRto,
      rto: this.opts.checkRto,
      sends: 1,
      cancelled: false,
    };
    this.transactions.set(tx.key, tx);
    if (kind === 'check' && pair.state !== 'succeeded') {
      if (pair.state !== 'in-progress') pair.checkStartedAt = this.now;
      this.setPairState(pair, 'in-progress');
    }
    this.send(pair, bytes);
  }

  private send(pair: Pair, bytes: Uint8Array): void {
    pair.lastSentAt = this.now;
    this.transmits.push({ base: pair.local.base, to: pair.remote.address, bytes });
  }

  private enqueueTriggered(pair: Pair, useCandidate: boolean): void {
    const queued = this.triggered.find((t) => t.pair === pair);
    if (queued !== undefined) {
      queued.useCandidate ||= useCandidate;
      return;
    }
    if (useCandidate) this.triggered.unshift({ pair, useCandidate });
    else this.triggered.push({ pair, useCandidate });
  }

  private cancelChecks(pair: Pair): void {
    for (const tx of this.transactions.values()) {
      if (tx.pair === pair && tx.kind === 'check' && !tx.cancelled) {
        tx.cancelled = true;
        // keep listening for a late response for a while
        tx.nextAt = this.now + 2 * this.opts.checkMaxRto;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Requests (RFC 8445 section 7.3)

  private handleRequest(message: StunMessage, base: BaseId, from: TransportAddress): void {
    const local = this.baseCandidates.get(base);
    if (local === undefined) return;
    const reply = (bytes: Uint8Array): void => {
      this.transmits.push({ base, to: from, bytes });
    };
    const id = message.transactionId;
    const username = message.get(Attr.Username);
    const priority = message.get(Attr.Priority);
    if (username === undefined || message.integrityOffset < 0) {
      reply(encodeCheckError(id, 400, undefined));
      return;
    }
    const colon = username.indexOf(':');
    if (colon < 0 || username.slice(0, colon) !== this.localUfrag || !verifyMessageIntegrity(message, this.localKey)) {
      reply(encodeCheckError(id, 401, undefined));
      return;
    }
    if (priority === undefined) {
      reply(encodeCheckError(id, 400, this.localPwd));
      return;
    }
    // RFC 8445 section 7.3.1.1: the agent with the larger tie-breaker keeps (or takes) the
    // controlling role; the other either answers 487 or switches.
    const theirControlling = message.get(Attr.IceControlling);
    const theirControlled = message.get(Attr.IceControlled);
    if (this.roleValue === 'controlling' && theirControlling !== undefined) {
      if (this.tieBreaker >= theirControlling) {
        reply(encodeCheckError(id, 487, this.localPwd));
        return;
      }
      this.switchRole('controlled');
    } else if (this.roleValue === 'controlled' && theirControlled !== undefined) {
      if (this.tieBreaker >= theirControlled) this.switchRole('controlling');
      else {
        reply(encodeCheckError(id, 487, this.localPwd));
        return;
      }
    }
    reply(encodeCheckSuccess(id, from, this.localPwd));
    if (this.stateValue === 'new') this.setState('checking');

    // RFC 8445 section 7.3.1.3: a source address that is no known remote candidate is a
    // peer-reflexive candidate, with the priority the request carried.
    const key = keyOf(from);
    let remote = this.remotes.get(key);
    if (remote === undefined) {
      const candidate: IceCandidate = {
        foundation: `prflx${++this.prflxCount}`,
        component: COMPONENT,
        transport: 'udp',
        priority,
        address: from.address,
        port: from.port,
        type: 'prflx',
        extensions: [],
      };
      remote = { candidate, address: from, key };
      this.remotes.set(key, remote);
      this.events.push({ type: 'remote-candidate', candidate });
    }
    const pair = this.findPair(base, key) ?? this.addPair(local, remote);
    if (pair === undefined) return;
    // RFC 8445 section 7.3.1.5: USE-CANDIDATE counts only when we are controlled.
    const useCandidate = message.has(Attr.UseCandidate) && this.roleValue === 'controlled';
    // RFC 8445 section 7.3.1.4: triggered checks.
    switch (pair.state) {
      case 'succeeded':
        if (useCandidate) this.markNominated(pair);
        return;
      case 'in-progress':
        this.cancelChecks(pair);
        break;
      default:
        break;
    }
    if (useCandidate) pair.nominateOnSuccess = true;
    this.setPairState(pair, 'waiting');
    this.enqueueTriggered(pair, false);
  }

  private switchRole(role: IceRole): void {
    if (this.roleValue === role) return;
    this.roleValue = role;
    this.nominating = undefined;
    this.recomputePriorities();
    this.events.push({ type: 'role', role });
  }

  // -------------------------------------------------------------------------------------------
  // Responses (RFC 8445 section 7.2.5)

  private handleResponse(message: StunMessage, base: BaseId, from: TransportAddress): void {
    const tx = this.transactions.get(message.transactionKey);
    if (tx === undefined) return;
    if (!verifyMessageIntegrity(message, tx.remoteKey)) return;
    this.transactions.delete(tx.key);
    const pair = tx.pair;
    if (!this.pairList.includes(pair) && pair !== this.selected) return;
    if (tx.useCandidate && this.nominating === pair) this.nominating = undefined;
    // RFC 8445 section 7.2.5.2.1: the response must come from where the request went, to where
    // it came from; otherwise the pair fails.
    if (base !== pair.local.base || keyOf(from) !== pair.remote.key) {
      if (tx.kind === 'check' && !tx.cancelled) this.failPair(pair);
      return;
    }
    if (message.class === StunClass.ErrorResponse) {
      const code = message.get(Attr.ErrorCode)?.code;
      if (code === 487 && tx.kind === 'check') {
        // RFC 8445 section 7.2.5.1: switch to the role opposite the one the request claimed,
        // and check the pair again.
        this.switchRole(tx.role === 'controlling' ? 'controlled' : 'controlling');
        if (pair.state !== 'succeeded') this.setPairState(pair, 'waiting');
        this.enqueueTriggered(pair, false);
      } else if (tx.kind === 'check' && !tx.cancelled) {
        this.failPair(pair);
      }
      return;
    }
    const rtt = this.now - tx.firstSentAt;
    pair.consentAt = this.now;
    pair.rttMs = rtt;
    if (tx.kind === 'consent') {
      if (pair === this.selected && this.stateValue === 'disconnected') this.updateConnectedState();
      return;
    }
    const mapped = message.get(Attr.XorMappedAddress);
    if (mapped !== undefined) pair.mappedLocal = this.mappedLocalCandidate(canonicalAddress(mapped), pair, tx.sentPriority);
    if (pair.validAt === undefined) pair.validAt = this.now;
    this.setPairState(pair, 'succeeded');
    // RFC 8445 section 7.2.5.3.3: a success unfreezes the pairs of the same foundation.
    for (const p of this.pairList) if (p.state === 'frozen' && p.foundation === pair.foundation) this.setPairState(p, 'waiting');
    if ((tx.useCandidate && this.roleValue === 'controlling') || (pair.nominateOnSuccess && this.roleValue === 'controlled')) {
      this.markNominated(pair);
    }
    if (this.selected !== undefined) this.updateConnectedState();
  }

  /**
   * The local candidate whose address the peer saw (RFC 8445 section 7.2.5.3.1); an unknown
   * address is a new peer-reflexive candidate with the PRIORITY the check carried.
   */
  private mappedLocalCandidate(mapped: TransportAddress, pair: Pair, sentPriority: number): LocalCandidate {
    const key = keyOf(mapped);
    const known = this.locals.find((l) => l.key === key);
    if (known !== undefined) return known;
    const base = pair.local;
    const candidate: IceCandidate = {
      foundation: candidateFoundation({ type: 'prflx', baseAddress: base.address.address, transport: 'udp' }),
      component: COMPONENT,
      transport: 'udp',
      priority: sentPriority,
      address: mapped.address,
      port: mapped.port,
      type: 'prflx',
      relatedAddress: base.address.address,
      relatedPort: base.address.port,
      extensions: [],
    };
    const local: LocalCandidate = { candidate, base: base.base, address: mapped, key };
    this.locals.push(local);
    this.events.push({ type: 'local-candidate', candidate, base: base.base });
    return local;
  }

  private failPair(pair: Pair): void {
    if (this.nominating === pair) this.nominating = undefined;
    this.setPairState(pair, 'failed');
  }

  private setPairState(pair: Pair, state: CandidatePairState): void {
    if (pair.state === state) return;
    pair.state = state;
    this.emitPair(pair);
  }

  // -------------------------------------------------------------------------------------------
  // Nomination and the selected pair

  /** The pair the controlling agent should nominate next, and when. */
  private nominationDue(): { pair: Pair; at: number } | undefined {
    if (this.roleValue !== 'controlling' || this.nominating !== undefined || !this.canCheck()) return undefined;
    const current = this.selected !== undefined && this.pairList.includes(this.selected) ? this.selected : undefined;
    if (current !== undefined && pathOf(current.local.candidate.type, current.remote.candidate.type) === 'direct') return undefined;
    const best = this.pairList.find(
      (p) => p.state === 'succeeded' && !p.nominated && (current === undefined || pathOf(p.local.candidate.type, p.remote.candidate.type) === 'direct'),
    );
    if (best === undefined || best.validAt === undefined) return undefined;
    const relay = pathOf(best.local.candidate.type, best.remote.candidate.type) === 'relay';
    if (relay && current === undefined && this.opts.relayFirst) return { pair: best, at: best.validAt };
    return { pair: best, at: this.nominationTime(best, best.validAt) };
  }

  /**
   * When to nominate `best` (valid since `validAt`) while pairs of higher priority are pending
   * (RFC 8445 section 8.1.1 leaves this to the controlling agent): at most `nominationDelay`
   * later, and for a pair already being checked no longer than it could still answer, two round
   * trips of `best` plus Ta after its check went out. A higher-priority pair that never answers
   * (a host candidate in the other side's private network) then costs a few ms, not the whole
   * delay; one not yet checked keeps the whole delay, and so does one toward a global IPv6
   * address (RFC 8421: the pair to prefer), whose first check a stateful firewall at the peer
   * usually drops until the peer's own check opens it.
   */
  private nominationTime(best: Pair, validAt: number): number {
    const latest = validAt + this.opts.nominationDelay;
    let at = validAt;
    for (const p of this.pairList) {
      if (p.priority <= best.priority || !isPending(p)) continue;
      if (isGlobalIPv6(p.remote.address.address)) return validAt + Math.max(this.opts.nominationDelay, IPV6_NOMINATION_WAIT);
      if (p.state !== 'in-progress' || p.checkStartedAt === undefined) return latest;
      at = Math.max(at, p.checkStartedAt + 2 * (best.rttMs ?? 0) + this.opts.ta);
    }
    return Math.min(at, latest);
  }

  /** The controlling agent nominates: a check with USE-CANDIDATE on a valid pair (RFC 8445 section 8.1.1). */
  private nominate(pair: Pair): void {
    this.nominating = pair;
    this.enqueueTriggered(pair, true);
    if (this.now >= this.nextCheckAt && this.sendNextCheck()) this.nextCheckAt = this.now + this.opts.ta;
  }

  private markNominated(pair: Pair): void {
    pair.nominateOnSuccess = false;
    if (!pair.nominated) {
      pair.nominated = true;
      this.emitPair(pair);
    }
    this.updateSelected();
  }

  private updateSelected(): void {
    const best = this.pairList.find((p) => p.nominated && p.state === 'succeeded');
    if (best === undefined || best === this.selected) return;
    const current = this.selected;
    if (current !== undefined && this.pairList.includes(current) && best.priority < current.priority) return;
    this.selected = best;
    best.consentAt = this.now;
    this.nextConsentAt = this.now + this.consentDelay();
    this.events.push({ type: 'selected-pair', pair: this.info(best), previous: current === undefined ? undefined : this.info(current) });
    this.updateConnectedState();
  }

  private updateConnectedState(): void {
    const s = this.selected;
    if (s === undefined || this.stateValue === 'closed') return;
    const direct = pathOf(s.local.candidate.type, s.remote.candidate.type) === 'direct';
    const better = this.pairList.some((p) => p.priority > s.priority && isPending(p));
    this.setState(direct && !better ? 'completed' : 'connected');
  }

  /** RFC 7675 section 5.1: consent checks at a randomised interval, 0.8 to 1.2 times the mean. */
  private consentDelay(): number {
    return this.opts.consentInterval * (0.8 + 0.4 * this.opts.random());
  }

  private runConsent(now: number): void {
    const s = this.selected;
    if (s === undefined || this.remoteKey === undefined || this.stateValue === 'failed' || this.stateValue === 'closed') return;
    const silent = now - s.consentAt;
    if (silent >= this.opts.consentTimeout) {
      // RFC 7675 section 5.1: consent expired; the driver must stop sending on the pair.
      this.selected = undefined;
      this.transactions.clear();
      this.triggered = [];
      this.setState('failed', 'consent-expired');
      return;
    }
    if (silent >= this.opts.disconnectedTimeout) this.setState('disconnected');
    if (now >= this.nextConsentAt) {
      this.startCheck(s, false, 'consent');
      this.nextConsentAt = now + this.consentDelay();
    }
    if (now - s.lastSentAt >= this.opts.keepaliveInterval) this.send(s, encodeKeepalive());
  }

  private checkFailure(now: number): void {
    if (this.selected !== undefined || this.startedAt === undefined) return;
    if (this.stateValue === 'failed' || this.stateValue === 'closed') return;
    if (now >= this.startedAt + this.opts.failureTimeout) {
      this.fail(this.remotes.size === 0 ? 'no-remote-candidates' : 'timeout');
      return;
    }
    if (this.localEnded && this.remoteEnded && this.pairList.length > 0 && this.triggered.length === 0 && this.pairList.every((p) => p.state === 'failed')) {
      this.fail('all-pairs-failed');
    }
  }

  private fail(reason: IceFailureReason): void {
    this.transactions.clear();
    this.triggered = [];
    this.setState('failed', reason);
  }

  // -------------------------------------------------------------------------------------------
  // Events

  private setState(state: IceAgentState, reason?: IceFailureReason): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.events.push(reason === undefined ? { type: 'state', state } : { type: 'state', state, reason });
  }

  private emitPair(pair: Pair): void {
    this.events.push({ type: 'pair', pair: this.info(pair) });
  }

  private info(p: Pair): CandidatePairInfo {
    return {
      id: p.id,
      local: p.local.candidate,
      mappedLocal: (p.mappedLocal ?? p.local).candidate,
      remote: p.remote.candidate,
      base: p.local.base,
      remoteAddress: p.remote.address,
      state: p.state,
      priority: p.priority,
      nominated: p.nominated,
      path: pathOf(p.local.candidate.type, p.remote.candidate.type),
      rttMs: p.rttMs,
    };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
