/**
 * The types of what an ICE connection observed ({@link ConnectionDiagnosis}), apart from the
 * code that records them (`diagnosis.ts`), so that the error classes can name them without
 * importing any I/O.
 */

/** Candidates of one side, counted by type; loopback host candidates also counted apart. */
export interface CandidateCounts {
  readonly host: number;
  /** Host candidates on 127.0.0.0/8 or ::1 (included in `host`). */
  readonly loopbackHost: number;
  readonly srflx: number;
  readonly prflx: number;
  readonly relay: number;
}

/** Whether this side got a relayed candidate, and why not. */
export type RelayOutcome =
  /** an allocation was granted: a relayed candidate was offered to the peer */
  | 'obtained'
  /** the ICE servers (the rendezvous service's) had no TURN server with credentials */
  | 'not-offered'
  /** the connection was told not to relay (`relay: false`) */
  | 'disabled'
  /** every TURN server refused or did not answer (see `relayErrors`) */
  | 'failed'
  /** gathering had not finished */
  | 'pending';

/** A TURN permission the relay refused (RFC 8656 section 9: e.g. 403 for a peer its policy denies). */
export interface RefusedPermission {
  /** The peer IP the permission was for. */
  readonly ip: string;
  /** The STUN error code (403 Forbidden), when the server answered with one. */
  readonly code: number | undefined;
  readonly message: string;
}

/** What a connection observed; see the module documentation. */
export interface ConnectionDiagnosis {
  /** The STUN (`host:port`) and TURN (`host:port/transport`) servers this side was offered. */
  readonly iceServers: { readonly stun: readonly string[]; readonly turn: readonly string[] };
  /** True when the rendezvous service or a STUN/TURN server is on this machine's loopback. */
  readonly serversOnLoopback: boolean;
  /** False when host candidates were turned off (`hostCandidates: false`, relay only). */
  readonly hostCandidates: boolean;
  readonly local: CandidateCounts;
  readonly remote: CandidateCounts;
  /** Where the TURN server saw the peer: the related addresses of the peer's relayed candidates. */
  readonly remoteRelaySeenAt: readonly string[];
  readonly relay: RelayOutcome;
  /** Why each TURN server refused an allocation, when `relay` is `failed`. */
  readonly relayErrors: readonly string[];
  readonly permissionsRefused: readonly RefusedPermission[];
  /** The reason the peer gave in its `bye`, when it ended the session. */
  readonly peerBye: string | undefined;
  /** True when the peer said `bye` before the connection had a path. */
  readonly peerEnded: boolean;
}
