/**
 * Public types of the sans-I/O ICE agent ({@link IceAgent}): options with their defaults, the
 * states, and the events and transmits the agent hands to its driver.
 */
import type { CandidateType, IceCandidate, TransportAddress } from '@nat/protocol';

/** Which side decides on the selected pair (RFC 8445 section 6.1.1). */
export type IceRole = 'controlling' | 'controlled';

/**
 * An opaque name, chosen by the driver, for a local base (RFC 8445 section 5.1.1.1): the socket a
 * host candidate lives on, or a TURN allocation for a relayed candidate. The agent tells the
 * driver which base to send each packet from, and the driver tells it which base a packet came in on.
 */
export type BaseId = string | number;

/**
 * The agent's state, as RTCIceTransportState names them:
 * `new` (no remote credentials yet), `checking`, `connected` (a selected pair exists),
 * `completed` (the selected pair is direct and no better pair is still being checked),
 * `disconnected` (consent responses stopped, RFC 7675), `failed` (see {@link IceFailureReason}),
 * `closed`.
 */
export type IceAgentState = 'new' | 'checking' | 'connected' | 'completed' | 'disconnected' | 'failed' | 'closed';

/** Why the agent failed. */
export type IceFailureReason =
  /** no remote candidate arrived (neither signalled nor peer-reflexive) before the failure timeout */
  | 'no-remote-candidates'
  /** both sides ended their candidates and every pair failed its checks */
  | 'all-pairs-failed'
  /** the failure timeout elapsed without a selected pair */
  | 'timeout'
  /** the selected pair got no consent response for the consent timeout (RFC 7675 section 5.1) */
  | 'consent-expired'
  /** the connection driver's, not the agent's: gathering ended with no local candidate at all (no socket to check from) */
  | 'no-local-candidates';

/** The state of a candidate pair (RFC 8445 section 6.1.2.6). */
export type CandidatePairState = 'frozen' | 'waiting' | 'in-progress' | 'succeeded' | 'failed';

/** Whether data on a pair goes straight between the peers or through a TURN relay. */
export type IcePath = 'direct' | 'relay';

/** A public snapshot of a candidate pair. */
export interface CandidatePairInfo {
  /** A stable id, unique within the agent. */
  readonly id: number;
  /** The local candidate the pair was formed with (a host or relayed candidate: a base). */
  readonly local: IceCandidate;
  /**
   * The local candidate the peer sees: the one whose address equals the XOR-MAPPED-ADDRESS of
   * the successful check (srflx or prflx behind a NAT), or `local` before any success.
   */
  readonly mappedLocal: IceCandidate;
  readonly remote: IceCandidate;
  /** The base the pair's packets are sent from. */
  readonly base: BaseId;
  /** Where to send: the remote candidate's transport address. */
  readonly remoteAddress: TransportAddress;
  readonly state: CandidatePairState;
  /** Pair priority (RFC 8445 section 6.1.2.3), a 64-bit value. */
  readonly priority: bigint;
  readonly nominated: boolean;
  readonly path: IcePath;
  /** Round-trip time of the last successful check on the pair, ms. */
  readonly rttMs: number | undefined;
}

/** What the agent wants sent: `bytes` from base `base` to `to`. */
export interface IceTransmit {
  readonly base: BaseId;
  readonly to: TransportAddress;
  readonly bytes: Uint8Array;
}

/** Where a received packet came from. */
export interface IcePacketSource {
  /** The base it arrived on. */
  readonly base: BaseId;
  /** Its source address (for a relayed base: the peer address the relay reported). */
  readonly from: TransportAddress;
}

/** What the agent reports to its driver, in order. */
export type IceAgentEvent =
  | { readonly type: 'state'; readonly state: IceAgentState; readonly reason?: IceFailureReason }
  | { readonly type: 'selected-pair'; readonly pair: CandidatePairInfo; readonly previous: CandidatePairInfo | undefined }
  | { readonly type: 'pair'; readonly pair: CandidatePairInfo }
  | { readonly type: 'local-candidate'; readonly candidate: IceCandidate; readonly base: BaseId }
  | { readonly type: 'remote-candidate'; readonly candidate: IceCandidate }
  | { readonly type: 'role'; readonly role: IceRole };

/** Options of {@link IceAgent}; every one has a default. */
export interface IceAgentOptions {
  /** Ta, the pacing of new checks (RFC 8445 section 14.2), ms. Default 50. */
  readonly ta?: number;
  /** First retransmission timeout of a check, ms; doubles each time. Default 250. */
  readonly checkRto?: number;
  /** Upper bound of the doubling retransmission timeout, ms. Default 1000. */
  readonly checkMaxRto?: number;
  /** Transmissions of one check before the pair fails. Default 7 (about 5.75 s at the defaults). */
  readonly checkTransmissions?: number;
  /**
   * Time from the agent's first clock reading (or from an ICE restart) after which it gives up
   * with `failed` if it has no selected pair, ms. Default 10000.
   */
  readonly failureTimeout?: number;
  /**
   * How long at most the controlling agent waits, after a direct pair succeeds, for higher-priority
   * pairs still pending before nominating it, ms. Default 200. A higher-priority pair already
   * being checked is waited for only two round trips of the succeeded pair plus `ta` after its
   * check went out (longer, it would not answer on a path as good).
   */
  readonly nominationDelay?: number;
  /**
   * Nominate a relayed pair as soon as it succeeds when no pair is selected yet, then switch to a
   * direct pair when one succeeds (relay first, then upgrade). Default true.
   */
  readonly relayFirst?: boolean;
  /** Mean interval of consent checks on the selected pair (RFC 7675 section 5.1), ms. Default 5000. */
  readonly consentInterval?: number;
  /** Consent expires after this long without a response (RFC 7675 section 5.1), ms. Default 30000. */
  readonly consentTimeout?: number;
  /** `disconnected` after this long without a consent response, ms. Default 8000. */
  readonly disconnectedTimeout?: number;
  /** Binding indications keep the selected pair's NAT bindings when nothing else was sent (RFC 8445 section 11), ms. Default 15000. */
  readonly keepaliveInterval?: number;
  /** Random numbers in [0, 1) for consent jitter; inject a seeded one for deterministic tests. Default Math.random. */
  readonly random?: () => number;
}

/** The resolved options. */
export type ResolvedIceAgentOptions = Required<IceAgentOptions>;

/** Defaults of {@link IceAgentOptions}. */
export const ICE_AGENT_DEFAULTS: Readonly<Omit<ResolvedIceAgentOptions, 'random'>> = Object.freeze({
  ta: 50,
  checkRto: 250,
  checkMaxRto: 1000,
  checkTransmissions: 7,
  failureTimeout: 10_000,
  nominationDelay: 200,
  relayFirst: true,
  consentInterval: 5000,
  consentTimeout: 30_000,
  disconnectedTimeout: 8000,
  keepaliveInterval: 15_000,
});

/** The path of a pair whose candidates have these types. */
export function pathOf(localType: CandidateType, remoteType: CandidateType): IcePath {
  return localType === 'relay' || remoteType === 'relay' ? 'relay' : 'direct';
}
