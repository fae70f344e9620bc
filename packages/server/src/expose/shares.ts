import { ipFamily, ipToBytes } from '@nat/protocol';

/**
 * The key a source address is counted under for per-source shares: an IPv4 address as it is
 * (an IPv4-mapped IPv6 address as its IPv4 address), an IPv6 address by its /64 (one site or
 * one subscriber line usually holds a whole /64, so counting single IPv6 addresses is no limit).
 */
export function sourceKey(ip: string): string {
  const v4 = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (ipFamily(v4) !== 'IPv6') return v4;
  try {
    const b = ipToBytes(v4);
    return `${Buffer.from(b.subarray(0, 8)).toString('hex')}::/64`;
  } catch {
    return v4;
  }
}

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
