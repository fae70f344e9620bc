import type { StunMessage } from '@nat/protocol';

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
 * | {@link StunClientError} | STUN, TURN, ICE, rendezvous | {@link StunClientErrorCode} (ICE failures and rendezvous refusals also set `reason`) |
 * | `IceConnectError` (a `StunClientError`) | a connection that failed to connect | as `StunClientError`, plus `diagnosis` |
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
 * The error of the STUN, TURN, ICE and rendezvous layers: every such operation of @nat/client
 * that fails rejects with a `StunClientError` whose `code` says why; the original error, when
 * there is one, is `cause`.
 */
export class StunClientError extends NatClientError<StunClientErrorCode> {
  override readonly name = 'StunClientError';
  /** For `ERROR_RESPONSE`: the ERROR-CODE number (300-699), when the response carried one. */
  readonly stunErrorCode: number | undefined;
  /** For `ERROR_RESPONSE`: the ERROR-CODE reason phrase. */
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

/** True when `e` is a {@link StunClientError} with one of the given codes (any code when none given). */
export function isStunClientError(e: unknown, ...codes: StunClientErrorCode[]): e is StunClientError {
  return e instanceof StunClientError && (codes.length === 0 || codes.includes(e.code));
}

/** The ABORTED error for a signal, keeping its reason as `cause`. */
export function abortError(signal: AbortSignal | undefined, what = 'operation'): StunClientError {
  return new StunClientError('ABORTED', `${what} aborted`, { cause: signal?.reason });
}
