/**
 * Per-source token buckets (keyed by source IP, not port: one host cannot dodge the limit by
 * opening sockets). Sans-I/O: the caller passes `now` in milliseconds. Memory is bounded: at most
 * `maxSources` buckets; when full, buckets idle long enough to be full again are swept, and if
 * none are, the oldest are dropped.
 */
export interface RateLimit {
  /** Requests per second allowed per source IP, sustained. 0 disables limiting. */
  readonly perSecond: number;
  /** Requests a source may send in a burst. Default: 2 x perSecond. */
  readonly burst?: number;
  /** Most sources tracked at once. Default 100,000. */
  readonly maxSources?: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 500, burst: 1000 };

interface Bucket {
  tokens: number;
  last: number;
  /** The last request was refused. */
  limited: boolean;
}

export class RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #max: number;
  readonly #buckets = new Map<string, Bucket>();
  #firstRefusal = false;

  constructor(limit: RateLimit) {
    this.#perMs = limit.perSecond / 1000;
    this.#burst = limit.burst ?? limit.perSecond * 2;
    this.#max = limit.maxSources ?? 100_000;
  }

  get enabled(): boolean {
    return this.#perMs > 0;
  }

  /** Number of sources currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * True when the last refusal of {@link allow} was the source's first since its last allowed
   * request: report a rate-limited source once per episode, not once per packet.
   */
  get firstRefusal(): boolean {
    return this.#firstRefusal;
  }

  /** Takes one token for `source`; false when the source is over its limit. */
  allow(source: string, now: number): boolean {
    if (this.#perMs <= 0) return true;
    let b = this.#buckets.get(source);
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) this.#sweep(now);
      b = { tokens: this.#burst, last: now, limited: false };
      this.#buckets.set(source, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.last) * this.#perMs);
      b.last = now;
    }
    if (b.tokens < 1) {
      this.#firstRefusal = !b.limited;
      b.limited = true;
      return false;
    }
    b.tokens -= 1;
    b.limited = false;
    return true;
  }

  #sweep(now: number): void {
    const refill = this.#burst / this.#perMs;
    for (const [k, b] of this.#buckets) if (now - b.last >= refill) this.#buckets.delete(k);
    // Still full: drop the oldest tenth (Map iterates in insertion order).
    if (this.#buckets.size >= this.#max) {
      let n = Math.ceil(this.#max / 10);
      for (const k of this.#buckets.keys()) {
        if (n-- <= 0) break;
        this.#buckets.delete(k);
      }
    }
  }
}
