/**
 * The server layer's one error type: configuration that cannot work (an address that is not an
 * IP, a port in use, a certificate that does not load). Hostile packets never raise it: they are
 * dropped or answered with a STUN error response, and counted.
 */
/** UNAVAILABLE: a shared store (a Redis user database, a cluster quota ledger) did not answer. */
export type ServerErrorCode = 'BAD_CONFIG' | 'BIND_FAILED' | 'TLS' | 'UNAVAILABLE';

export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code: ServerErrorCode;
  constructor(code: ServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
