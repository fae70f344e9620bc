/**
 * Epoch checks: how a NAT-PMP or PCP client learns that the gateway lost its mappings (a
 * reboot, a daemon restart) from the epoch field of its responses. Pure functions of two
 * observations: the server's epoch and the client's own clock (in seconds) when each arrived.
 */

/** One response's epoch and the client's clock (seconds) when it arrived. */
export interface EpochObservation {
  /** The server's epoch field (seconds since its state began). */
  readonly epoch: number;
  /** The client's monotonic clock, in seconds, when the response arrived. */
  readonly clientTime: number;
}

/**
 * NAT-PMP (RFC 6886 section 3.6): the gateway lost its state when its epoch went backwards, or
 * advanced much less than the client's clock did: less than 7/8 of the client's elapsed time,
 * minus 2 seconds of slack (clocks of cheap routers run slow).
 */
export function natPmpEpochValid(previous: EpochObservation, current: EpochObservation): boolean {
  if (current.epoch < previous.epoch) return false;
  const clientDelta = current.clientTime - previous.clientTime;
  const serverDelta = current.epoch - previous.epoch;
  return serverDelta >= (clientDelta * 7) / 8 - 2;
}

/**
 * PCP (RFC 6887 section 8.5): the epoch is invalid when it went back by more than one second,
 * or when the server's and the client's elapsed times differ by more than 1/16 plus 2 seconds
 * either way.
 */
export function pcpEpochValid(previous: EpochObservation, current: EpochObservation): boolean {
  if (current.epoch + 1 < previous.epoch) return false;
  const clientDelta = current.clientTime - previous.clientTime;
  const serverDelta = current.epoch - previous.epoch;
  if (clientDelta + 2 < serverDelta - serverDelta / 16) return false;
  if (serverDelta + 2 < clientDelta - clientDelta / 16) return false;
  return true;
}
