/** Which side opened an RFC 6062 peer connection. */
export type TcpOrigin = 'connect' | 'incoming';

/** Limits of {@link TcpPeerLimits}. */
export interface TcpPeerLimitsInit {
  /** Peer connections one TCP allocation may hold that its client opened with Connect (508 beyond). */
  readonly connectsPerAllocation: number;
  /** Peer connections one TCP allocation may hold that peers opened to its relayed address (closed beyond). */
  readonly incomingPerAllocation: number;
}

/**
 * Counts the RFC 6062 peer connections of each TCP allocation (connecting, waiting for their
 * ConnectionBind, or bound), so that one allocation cannot take every connection the host can
 * hold. Sans I/O; the TURN core calls `tryOpen` before it creates a connection and `closed` when
 * it forgets one.
 */
export class TcpPeerLimits {
  readonly #init: TcpPeerLimitsInit;
  readonly #counts = new Map<number, { connect: number; incoming: number }>();

  constructor(init: TcpPeerLimitsInit) {
    this.#init = init;
  }

  /** Counts a new connection of `allocation`; false (nothing counted) when the allocation is at its limit. */
  tryOpen(allocation: number, origin: TcpOrigin): boolean {
    let c = this.#counts.get(allocation);
    if (c === undefined) {
      c = { connect: 0, incoming: 0 };
      this.#counts.set(allocation, c);
    }
    const limit = origin === 'connect' ? this.#init.connectsPerAllocation : this.#init.incomingPerAllocation;
    if (c[origin] >= limit) return false;
    c[origin]++;
    return true;
  }

  /** One connection of `allocation` is gone. */
  closed(allocation: number, origin: TcpOrigin): void {
    const c = this.#counts.get(allocation);
    if (c === undefined) return;
    c[origin]--;
    if (c.connect <= 0 && c.incoming <= 0) this.#counts.delete(allocation);
  }

  /** Connections of `allocation` counted now, per origin. */
  count(allocation: number): { connect: number; incoming: number } {
    return { ...(this.#counts.get(allocation) ?? { connect: 0, incoming: 0 }) };
  }
}
