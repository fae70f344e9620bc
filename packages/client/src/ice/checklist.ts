/**
 * The ICE agent's first part: its state, the checklist (RFC 8445 section 6.1.2: pairing,
 * priorities, the order checks go in), the connectivity-check transactions with their
 * retransmissions and the triggered-check queue (section 6.1.4), and the events it reports.
 * The parts built on it: `checks.ts` (answering checks, reading responses), `selection.ts`
 * (nomination, the selected pair, consent, failure) and `agent.ts` (the public API).
 */
import { candidatePriority, pairPriority, shortTermKey } from '@nat/protocol';
import { encodeCheckRequest } from './messages.js';
import {
  COMPONENT,
  CONSENT_TRANSMISSIONS,
  type LocalCandidate,
  MAX_PAIRS,
  type Pair,
  type RemoteCandidate,
  type Transaction,
  type TransactionKind,
  type Triggered,
  pairInfo,
  stripUndefined,
  txKeyOf,
} from './pair.js';
import {
  type BaseId,
  type CandidatePairState,
  ICE_AGENT_DEFAULTS,
  type IceAgentEvent,
  type IceAgentOptions,
  type IceAgentState,
  type IceFailureReason,
  type IceRole,
  type IceTransmit,
  type ResolvedIceAgentOptions,
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

/** The agent's state, its checklist and its check transactions; see the module documentation. */
export abstract class IceChecklist {
  protected readonly opts: ResolvedIceAgentOptions;
  protected roleValue: IceRole;
  protected readonly tieBreaker: bigint;
  protected localUfrag: string;
  protected localPwd: string;
  protected localKey: Uint8Array;
  protected remoteUfrag: string | undefined;
  protected remotePwd: string | undefined;
  protected remoteKey: Uint8Array | undefined;

  protected readonly locals: LocalCandidate[] = [];
  protected readonly baseCandidates = new Map<BaseId, LocalCandidate>();
  protected remotes = new Map<string, RemoteCandidate>();
  protected pairList: Pair[] = [];
  protected readonly transactions = new Map<string, Transaction>();
  protected triggered: Triggered[] = [];
  protected readonly transmits: IceTransmit[] = [];
  protected readonly events: IceAgentEvent[] = [];

  protected stateValue: IceAgentState = 'new';
  protected now = 0;
  protected startedAt: number | undefined;
  protected nextCheckAt = 0;
  protected nextConsentAt = 0;
  protected selected: Pair | undefined;
  protected nominating: Pair | undefined;
  protected localEnded = false;
  protected remoteEnded = false;
  protected nextPairId = 1;
  protected prflxCount = 0;

  constructor(init: IceAgentInit) {
    this.opts = { ...ICE_AGENT_DEFAULTS, random: Math.random, ...stripUndefined(init.options ?? {}) };
    this.roleValue = init.role;
    this.tieBreaker = init.tieBreaker;
    this.localUfrag = init.ufrag;
    this.localPwd = init.pwd;
    this.localKey = shortTermKey(init.pwd);
  }

  // -------------------------------------------------------------------------------------------
  // The checklist

  protected addPair(local: LocalCandidate, remote: RemoteCandidate): Pair | undefined {
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

  protected findPair(base: BaseId, remoteKey: string): Pair | undefined {
    return this.pairList.find((p) => p.local.base === base && p.remote.key === remoteKey);
  }

  protected priorityOf(local: LocalCandidate, remote: RemoteCandidate): bigint {
    const l = local.candidate.priority;
    const r = remote.candidate.priority;
    return this.roleValue === 'controlling' ? pairPriority(l, r) : pairPriority(r, l);
  }

  protected recomputePriorities(): void {
    for (const p of this.pairList) p.priority = this.priorityOf(p.local, p.remote);
    this.sortPairs();
  }

  protected sortPairs(): void {
    this.pairList.sort((a, b) => (a.priority === b.priority ? a.id - b.id : a.priority > b.priority ? -1 : 1));
  }

  /**
   * RFC 8445 section 6.1.4.2: the highest-priority Waiting pair; if none, the highest-priority
   * Frozen pair whose foundation has no pair Waiting or In-Progress.
   */
  protected nextOrdinaryPair(): Pair | undefined {
    const waiting = this.pairList.find((p) => p.state === 'waiting');
    if (waiting !== undefined) return waiting;
    return this.pairList.find(
      (p) => p.state === 'frozen' && !this.pairList.some((q) => q.foundation === p.foundation && (q.state === 'waiting' || q.state === 'in-progress')),
    );
  }

  protected canCheck(): boolean {
    return this.remoteKey !== undefined && this.stateValue !== 'failed' && this.stateValue !== 'closed';
  }

  protected resetChecklist(): void {
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
  // Time and the check transactions

  protected advance(now: number): void {
    if (now > this.now) this.now = now;
    if (this.startedAt === undefined) this.startedAt = this.now;
  }

  protected runTransactions(now: number): void {
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

  protected sendNextCheck(): boolean {
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

  protected startCheck(pair: Pair, useCandidate: boolean, kind: TransactionKind): void {
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

  protected send(pair: Pair, bytes: Uint8Array): void {
    pair.lastSentAt = this.now;
    this.transmits.push({ base: pair.local.base, to: pair.remote.address, bytes });
  }

  protected enqueueTriggered(pair: Pair, useCandidate: boolean): void {
    const queued = this.triggered.find((t) => t.pair === pair);
    if (queued !== undefined) {
      queued.useCandidate ||= useCandidate;
      return;
    }
    if (useCandidate) this.triggered.unshift({ pair, useCandidate });
    else this.triggered.push({ pair, useCandidate });
  }

  protected cancelChecks(pair: Pair): void {
    for (const tx of this.transactions.values()) {
      if (tx.pair === pair && tx.kind === 'check' && !tx.cancelled) {
        tx.cancelled = true;
        // keep listening for a late response for a while
        tx.nextAt = this.now + 2 * this.opts.checkMaxRto;
      }
    }
  }

  protected failPair(pair: Pair): void {
    if (this.nominating === pair) this.nominating = undefined;
    this.setPairState(pair, 'failed');
  }

  protected setPairState(pair: Pair, state: CandidatePairState): void {
    if (pair.state === state) return;
    pair.state = state;
    this.emitPair(pair);
  }

  // -------------------------------------------------------------------------------------------
  // Events

  protected setState(state: IceAgentState, reason?: IceFailureReason): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.events.push(reason === undefined ? { type: 'state', state } : { type: 'state', state, reason });
  }

  protected emitPair(pair: Pair): void {
    this.events.push({ type: 'pair', pair: pairInfo(pair) });
  }
}
