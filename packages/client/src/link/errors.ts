import { NatClientError } from '../errors.js';

/** What went wrong in a {@link PeerLinkError}. */
export type PeerLinkErrorCode =
  /** the peer's static key is not the one its peer id names, or the peer is not allowed */
  | 'REFUSED'
  /** the handshake did not complete in time */
  | 'HANDSHAKE_TIMEOUT'
  /** nothing authentic arrived from the peer for longer than the idle timeout */
  | 'IDLE_TIMEOUT'
  /** the path underneath closed, or the peer closed the link */
  | 'CLOSED'
  /** the link was closed locally, or its AbortSignal fired */
  | 'ABORTED'
  /**
   * a stream's bytes did not authenticate (altered, replayed, reordered or forged on the way), or
   * the stream ended without its sender's authenticated end: the stream is destroyed, no byte of
   * it is delivered
   */
  | 'TAMPERED';

/** The peer link's one error type (a {@link NatClientError}). */
export class PeerLinkError extends NatClientError<PeerLinkErrorCode> {
  override readonly name = 'PeerLinkError';
}
