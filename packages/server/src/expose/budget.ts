/**
 * A byte budget (token bucket over bytes, a one-second burst): {@link consume} says how long the
 * source should pause so that the rate holds. Sans-I/O: the caller passes `now` in ms.
 */
export class ByteBudget {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  constructor(bytesPerSecond: number, now: number) {
    this.#perMs = bytesPerSecond / 1000;
    this.#burst = bytesPerSecond;
    this.#tokens = bytesPerSecond;
    this.#last = now;
  }

  /** Takes `bytes`; returns the milliseconds until the budget is back above zero (0 = no wait). */
  consume(bytes: number, now: number): number {
    if (this.#perMs <= 0) return 0;
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#last) * this.#perMs);
    this.#last = now;
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#perMs);
  }
}
