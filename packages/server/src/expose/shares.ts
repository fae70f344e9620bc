/** Counts of a pool's entries per key (source prefix, user): a share is taken before the entry exists and given back when it goes. */
export class ShareCounter {
  readonly #counts = new Map<string, number>();

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Takes one unit of `key`'s share when it holds fewer than `limit`; false (nothing taken) otherwise. */
  take(key: string, limit: number): boolean {
    const n = this.#counts.get(key) ?? 0;
    if (n >= limit) return false;
    this.#counts.set(key, n + 1);
    return true;
  }

  /** Gives back one unit taken with {@link take}. */
  give(key: string): void {
    const n = (this.#counts.get(key) ?? 0) - 1;
    if (n > 0) this.#counts.set(key, n);
    else this.#counts.delete(key);
  }

  /** Keys holding at least one unit. */
  get size(): number {
    return this.#counts.size;
  }
}
