/**
 * Admission of inbound offers, sans-I/O (the caller passes `now`): which offers a listening peer
 * answers. Any key can register with an open rendezvous and send offers, and answering one costs
 * sockets, TURN allocations and signalling messages (which count against this peer's own
 * rendezvous rate limit), so a listener caps what strangers can make it spend:
 * - peers the caller does not allow are refused before anything is opened;
 * - at most `maxSessions` sessions at once, and `maxSessionsPerPeer` per peer;
 * - new sessions start at a bounded rate, overall and per peer (token buckets);
 * - refusals (a `bye`) are themselves rate limited: past the budget an offer is dropped
 *   silently, so a flood never makes the listener trip its rendezvous rate limit.
 */

/** Why an offer was refused. */
export type OfferRefusalCause = 'not-allowed' | 'sessions' | 'peer-sessions' | 'peer-rate' | 'rate';

/** Limits of {@link OfferAdmission}; every one has a default a listener on the open internet can live with. */
export interface OfferAdmissionOptions {
  /** Sessions at once, every peer together (default {@link DEFAULT_MAX_SESSIONS}). */
  readonly maxSessions?: number;
  /** Sessions at once from one peer id (default {@link DEFAULT_MAX_SESSIONS_PER_PEER}). */
  readonly maxSessionsPerPeer?: number;
  /** New sessions per second, every peer together, sustained (default 2; a burst of `maxSessionsPerPeer * 2` is allowed). */
  readonly sessionsPerSecond?: number;
  /** New sessions per minute from one peer, sustained (default 30). */
  readonly sessionsPerPeerPerMinute?: number;
  /**
   * Sessions one peer may start back to back before its per-minute rate applies (default
   * `max(maxSessionsPerPeer, 8)`: a person or a script that runs `nat ping` a few times in a row
   * is served; a peer that keeps opening sessions is slowed to the rate).
   */
  readonly peerBurst?: number;
  /** Refusals sent per second, sustained (default 1, burst 5); refusals past that are silent drops. */
  readonly refusalsPerSecond?: number;
  /** Peers that may connect at all (default: every peer). */
  readonly allow?: (peerId: string) => boolean;
}

export const DEFAULT_MAX_SESSIONS = 32;
export const DEFAULT_MAX_SESSIONS_PER_PEER = 4;
/** Peers remembered for their per-peer rate; past this, peers with no session are forgotten. */
const MAX_TRACKED_PEERS = 4096;

/** A token bucket: `rate` tokens per ms, at most `burst`. */
class Bucket {
  #tokens: number;
  #at: number;
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }
  take(now: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.rate);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Counters of {@link OfferAdmission}. */
export interface OfferAdmissionStats {
  admitted: number;
  /** Refusals by cause (answered or not). */
  refused: Record<OfferRefusalCause, number>;
  /** Refusals answered with a `bye`; the rest were dropped silently (over the refusal budget). */
  refusalsSent: number;
  /** Sessions open now. */
  sessions: number;
}

/** The admission state of one listener. */
export class OfferAdmission {
  readonly stats: OfferAdmissionStats = {
    admitted: 0,
    refused: { 'not-allowed': 0, sessions: 0, 'peer-sessions': 0, 'peer-rate': 0, rate: 0 },
    refusalsSent: 0,
    sessions: 0,
  };
  readonly #o: Required<Omit<OfferAdmissionOptions, 'allow'>> & Pick<OfferAdmissionOptions, 'allow'>;
  readonly #peers = new Map<string, { sessions: number; bucket: Bucket }>();
  readonly #starts: Bucket;
  readonly #refusals: Bucket;

  constructor(options: OfferAdmissionOptions = {}, now = performance.now()) {
    const perPeer = options.maxSessionsPerPeer ?? DEFAULT_MAX_SESSIONS_PER_PEER;
    this.#o = {
      maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
      maxSessionsPerPeer: perPeer,
      sessionsPerSecond: options.sessionsPerSecond ?? 2,
      sessionsPerPeerPerMinute: options.sessionsPerPeerPerMinute ?? 30,
      peerBurst: options.peerBurst ?? Math.max(perPeer, 8),
      refusalsPerSecond: options.refusalsPerSecond ?? 1,
      allow: options.allow,
    };
    for (const [k, v] of Object.entries(this.#o)) if (typeof v === 'number' && !(v >= 1)) throw new RangeError(`${k} must be at least 1, got ${v}`);
    this.#starts = new Bucket(this.#o.sessionsPerSecond / 1000, Math.max(perPeer * 2, this.#o.sessionsPerSecond), now);
    this.#refusals = new Bucket(this.#o.refusalsPerSecond / 1000, Math.max(5, this.#o.refusalsPerSecond), now);
  }

  /**
   * Whether to answer an offer from `peerId`: `true` (a session is counted until {@link release}),
   * or the cause of the refusal. Nothing is opened for a refused offer.
   */
  admit(peerId: string, now = performance.now()): true | OfferRefusalCause {
    const cause = this.#check(peerId, now);
    if (cause !== true) {
      this.stats.refused[cause]++;
      return cause;
    }
    this.stats.admitted++;
    this.stats.sessions++;
    this.#peers.get(peerId)!.sessions++;
    return true;
  }

  /** A session admitted for `peerId` ended. */
  release(peerId: string): void {
    const p = this.#peers.get(peerId);
    if (p === undefined || p.sessions === 0) return;
    p.sessions--;
    this.stats.sessions--;
  }

  /** Whether a refusal may be answered now (else the offer is dropped silently); counts it. */
  answerRefusal(now = performance.now()): boolean {
    if (!this.#refusals.take(now)) return false;
    this.stats.refusalsSent++;
    return true;
  }

  #check(peerId: string, now: number): true | OfferRefusalCause {
    if (this.#o.allow !== undefined && !this.#o.allow(peerId)) return 'not-allowed';
    if (this.stats.sessions >= this.#o.maxSessions) return 'sessions';
    let p = this.#peers.get(peerId);
    if (p === undefined) {
      if (this.#peers.size >= MAX_TRACKED_PEERS) for (const [id, q] of this.#peers) if (q.sessions === 0) this.#peers.delete(id);
      p = { sessions: 0, bucket: new Bucket(this.#o.sessionsPerPeerPerMinute / 60_000, this.#o.peerBurst, now) };
      this.#peers.set(peerId, p);
    }
    if (p.sessions >= this.#o.maxSessionsPerPeer) return 'peer-sessions';
    if (!p.bucket.take(now)) return 'peer-rate';
    if (!this.#starts.take(now)) return 'rate';
    return true;
  }
}

/** The `bye` reason of a refused offer (the connecting side prints it). */
export function refusalReason(cause: OfferRefusalCause): string {
  switch (cause) {
    case 'not-allowed':
      return 'not allowed';
    case 'sessions':
      return 'busy: too many sessions';
    case 'peer-sessions':
      return 'busy: too many sessions from this peer';
    case 'peer-rate':
      return 'busy: too many offers from this peer';
    case 'rate':
      return 'busy: too many offers';
  }
}
