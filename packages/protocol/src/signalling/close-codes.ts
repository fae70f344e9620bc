/**
 * WebSocket close codes of the rendezvous service (4000-4999 is the private-use range of RFC 6455
 * section 7.4.2), besides the standard 1008 (policy), 1009 (too big) and 1013 (try later). The
 * server closes with them and the client reads them, so they live with the protocol.
 */
export const RENDEZVOUS_CLOSE_CODES = {
  /** Another connection registered the same peer id; the newest one wins. */
  replaced: 4000,
  /** The connection did not register within the service's registration timeout. */
  registerTimeout: 4001,
  /** The `register` signature did not verify (the challenge is single-use). */
  unauthorized: 4002,
  /** The connection kept sending over its rate limit. */
  rateLimited: 4003,
  /** The service is shutting down. */
  shutdown: 1001,
} as const;
