/**
 * Retransmission settings of a STUN client transaction (RFC 8489 section 6.2.1 for UDP, section
 * 6.2.2 for TCP and TLS). Every value is in milliseconds except the counts.
 */
export interface RetransmissionOptions {
  /**
   * Initial retransmission timeout (RTO), doubled after each retransmission. RFC 8489 section
   * 6.2.1 recommends 500 ms, and at least 500 ms unless the path's RTT is known. Default 500.
   */
  readonly rto?: number;
  /** Rc: requests sent in total, the first included. Default 7. */
  readonly rc?: number;
  /**
   * Rm: after the last request, wait Rm times the *initial* RTO for a response before giving up.
   * Default 16 (so 0, 500, 1500, 3500, 7500, 15500, 31500 ms and failure at 39500 ms).
   */
  readonly rm?: number;
  /**
   * Ti: over a reliable transport (TCP, TLS) nothing is retransmitted and the transaction fails
   * after this long without a response (RFC 8489 section 6.2.2). Default 39500.
   */
  readonly ti?: number;
  /** A reliable transport (TCP, TLS): send once, wait Ti. Default false. */
  readonly reliable?: boolean;
}

/** {@link RetransmissionOptions} with every value present. */
export interface Retransmission {
  readonly rto: number;
  readonly rc: number;
  readonly rm: number;
  readonly ti: number;
  readonly reliable: boolean;
}

/** The defaults of RFC 8489 section 6.2.1 and 6.2.2: RTO 500 ms, Rc 7, Rm 16, Ti 39.5 s. */
export const RFC8489_RETRANSMISSION: Retransmission = Object.freeze({
  rto: 500,
  rc: 7,
  rm: 16,
  ti: 39_500,
  reliable: false,
});

function positive(name: string, value: number, integer: boolean): number {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

/**
 * Fills in the missing values of `options` from `base` (the RFC 8489 defaults when absent).
 *
 * @throws RangeError for a value that is not positive (or, for rc and rm, not an integer).
 */
export function resolveRetransmission(options: RetransmissionOptions | undefined, base: Retransmission = RFC8489_RETRANSMISSION): Retransmission {
  return {
    rto: positive('rto', options?.rto ?? base.rto, false),
    rc: positive('rc', options?.rc ?? base.rc, true),
    rm: positive('rm', options?.rm ?? base.rm, true),
    ti: positive('ti', options?.ti ?? base.ti, false),
    reliable: options?.reliable ?? base.reliable,
  };
}

/**
 * How long a transaction waits in total before it fails: the sum of Rc-1 doubling RTOs plus Rm
 * times the initial RTO (39500 ms with the defaults), or Ti over a reliable transport.
 */
export function transactionBudget(options: RetransmissionOptions | undefined): number {
  const r = resolveRetransmission(options);
  if (r.reliable) return r.ti;
  let total = 0;
  for (let i = 0; i < r.rc - 1; i++) total += r.rto * 2 ** i;
  return total + r.rm * r.rto;
}
