import type { SignallingErrorCode, StunMessage } from '@nat/protocol';
import type { ConnectionDiagnosis } from './connect/diagnosis-types.js';
import type { IceFailureReason } from './ice/types.js';

/** What went wrong in a {@link StunClientError}. */
export type StunClientErrorCode =
  /** no response arrived within the retransmission budget (UDP) or Ti (TCP/TLS) */
  | 'TIMEOUT'
  /** the operation's AbortSignal fired, or the socket it ran on was closed */
  | 'ABORTED'
  /** the server answered with an error response; see `stunErrorCode` and `reason` */
  | 'ERROR_RESPONSE'
  /** a response that matched the transaction but cannot be used (no mapped address, an undecodable attribute, an unknown comprehension-required attribute) */
  | 'BAD_RESPONSE'
  /** the socket failed: bind, connect, send, TLS handshake, or a stream that lost its framing */
  | 'SOCKET'
  /** a server address that does not parse or does not resolve */
  | 'BAD_ADDRESS';

/**
 * The base class of every error @nat/client throws or rejects with: a `code` (a string union
 * of the subclass's), a message that says what was observed, and the original error as `cause`
 * when there is one. One subclass per layer, each with its own `name` and codes:
 *
 * | subclass | layer | codes |
 * |---|---|---|
 * | {@link StunClientError} | STUN, TURN, and the sockets under ICE and the rendezvous | {@link StunClientErrorCode} |
 * | {@link IceError} | ICE: no pair worked, consent lost | {@link IceErrorCode} |
 * | {@link RendezvousError} | the rendezvous or the peer refused (through it) | {@link RendezvousErrorCode} |
 * | `IceConnectError` (a `StunClientError`) | a connection whose socket failed before it connected | as `StunClientError`, plus `diagnosis` |
 * | `PeerLinkError` | the encrypted peer link | `PeerLinkErrorCode` |
 * | `PortMapError` | port mapping (UPnP IGD, NAT-PMP, PCP) | `PortMapErrorCode` |
 * | `IdentityFileError` | identity files | `IdentityFileErrorCode` |
 *
 * `e instanceof NatClientError` tells a client error from any other; `e.code` is then set.
 */
export class NatClientError<Code extends string = string> extends Error {
  override readonly name: string = 'NatClientError';
  /** What went wrong, one of the subclass's codes. */
  readonly code: Code;

  constructor(code: Code, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/**
 * The error of the STUN and TURN layers, and of the sockets under ICE and the rendezvous: every
 * such operation of @nat/client that fails rejects with a `StunClientError` whose `code` says
 * why; the original error, when there is one, is `cause`. An ICE failure is an
 * {@link IceError}, a refusal by the rendezvous or the peer a {@link RendezvousError}.
 */
export class StunClientError extends NatClientError<StunClientErrorCode> {
  override readonly name: string = 'StunClientError';
  /** For `ERROR_RESPONSE`: the ERROR-CODE number (300-699), when the response carried one. */
  readonly stunErrorCode: number | undefined;
  /** For `ERROR_RESPONSE`: the ERROR-CODE reason phrase (or the expose service's refusal code). */
  readonly reason: string | undefined;
  /** For `ERROR_RESPONSE` and `BAD_RESPONSE`: the response that caused it. */
  readonly response: StunMessage | undefined;

  constructor(code: StunClientErrorCode, message: string, options: { cause?: unknown; stunErrorCode?: number; reason?: string; response?: StunMessage } = {}) {
    super(code, message, options);
    this.stunErrorCode = options.stunErrorCode;
    this.reason = options.reason;
    this.response = options.response;
  }
}

/** Why ICE failed: an {@link IceFailureReason} (`no-remote-candidates`, `all-pairs-failed`, `timeout`, `consent-expired`, `no-local-candidates`). */
export type IceErrorCode = IceFailureReason;

/**
 * An ICE connection that failed: the agent found no working pair (`all-pairs-failed`,
 * `timeout`, `no-remote-candidates`), gathering found no local candidate
 * (`no-local-candidates`), or the selected pair lost consent (`consent-expired`). From
 * `connectPeer`, `diagnosis` says what the connection observed.
 */
export class IceError extends NatClientError<IceErrorCode> {
  override readonly name = 'IceError';
  /** What the connection observed until it failed, when a connection attempt rejected with it. */
  readonly diagnosis: ConnectionDiagnosis | undefined;

  constructor(code: IceErrorCode, message: string, options: { cause?: unknown; diagnosis?: ConnectionDiagnosis } = {}) {
    super(code, message, options);
    this.diagnosis = options.diagnosis;
  }
}

/**
 * Why the rendezvous, or a peer through it, said no:
 * - a {@link SignallingErrorCode} the rendezvous answered with (`peer-offline`, `unknown-peer`,
 *   `name-taken`, `unknown-name`, `unauthorized`, `rate-limited`, ...), to a registration or a
 *   request;
 * - `http-refused`: the rendezvous answered the WebSocket upgrade with an HTTP error status;
 * - `bye`: the peer ended the session before it connected;
 * - `self`: the peer id is this peer's own;
 * - `replaced`: another process registered this identity, and the rendezvous dropped this one.
 */
export type RendezvousErrorCode = SignallingErrorCode | 'http-refused' | 'bye' | 'self' | 'replaced';

/**
 * A refusal by the rendezvous service, or by the peer through it (see
 * {@link RendezvousErrorCode}). The rendezvous connection's own failures (closed, no answer in
 * time) are {@link StunClientError}s `SOCKET` and `TIMEOUT`.
 */
export class RendezvousError extends NatClientError<RendezvousErrorCode> {
  override readonly name = 'RendezvousError';
  /** What the connection observed until it failed, when a connection attempt rejected with it. */
  readonly diagnosis: ConnectionDiagnosis | undefined;

  constructor(code: RendezvousErrorCode, message: string, options: { cause?: unknown; diagnosis?: ConnectionDiagnosis } = {}) {
    super(code, message, options);
    this.diagnosis = options.diagnosis;
  }
}

/** True when `e` is a {@link StunClientError} with one of the given codes (any code when none given). */
export function isStunClientError(e: unknown, ...codes: StunClientErrorCode[]): e is StunClientError {
  return e instanceof StunClientError && (codes.length === 0 || codes.includes(e.code));
}

/** The ABORTED error for a signal, keeping its reason as `cause`. */
export function abortError(signal: AbortSignal | undefined, what = 'operation'): StunClientError {
  return new StunClientError('ABORTED', `${what} aborted`, { cause: signal?.reason });
}
