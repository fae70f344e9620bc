/**
 * One connection's token bucket: `perSecond` tokens flow in, at most `burst` are held, and each
 * message takes one. Sans-I/O: the caller passes `now` in milliseconds.
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  /** A full bucket at time `now`. A `perSecond` of 0 disables the limit. */
  constructor(perSecond: number, burst: number, now: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
    this.#last = now;
  }

  /** Takes `count` tokens (default one); false when the bucket holds fewer (over the limit). */
  take(now: number, count = 1): boolean {
    if (this.#perMs <= 0) return true;
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#last) * this.#perMs);
    this.#last = now;
    if (this.#tokens < count) return false;
    this.#tokens -= count;
    return true;
  }
}
