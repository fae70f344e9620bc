import { sourceKey } from '@nat/protocol';

/** Limits of the name table (`claim-name`). */
export interface NameLimits {
  /** Names one peer key may hold. Default 8. */
  readonly maxNamesPerPeer?: number;
  /** Names the service holds in all. Default 100,000. */
  readonly maxNames?: number;
  /** New names claimed from one source address (IPv6: one /64) per window. Default 32. */
  readonly nameClaimsPerSource?: number;
  /** The window of `nameClaimsPerSource`, ms. Default 3,600,000 (one hour). */
  readonly nameClaimWindowMs?: number;
  /** A name whose owner has not registered for this long is released, ms. Default 30 days. */
  readonly nameTtlMs?: number;
}

export const DEFAULT_NAME_LIMITS: Required<NameLimits> = {
  maxNamesPerPeer: 8,
  maxNames: 100_000,
  nameClaimsPerSource: 32,
  nameClaimWindowMs: 3_600_000,
  nameTtlMs: 30 * 24 * 3_600_000,
};

/** Why a claim was refused. */
export type ClaimRefusal = 'taken' | 'per-peer' | 'per-source' | 'full';

/**
 * Claimed names -> owner peer id, kept after the owner disconnects (so nobody else takes a name
 * while its owner is away) until the owner has not registered for `nameTtlMs`.
 */
export class NameTable {
  readonly limits: Required<NameLimits>;
  readonly #owner = new Map<string, string>();
  readonly #of = new Map<string, { names: Set<string>; seen: number }>();
  readonly #claims = new Map<string, { count: number; since: number }>();
  #nextSweep = 0;

  constructor(limits: NameLimits = {}) {
    this.limits = { ...DEFAULT_NAME_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) };
  }

  get size(): number {
    return this.#owner.size;
  }

  ownerOf(name: string, now: number): string | undefined {
    this.#sweep(now);
    return this.#owner.get(name);
  }

  /** The owner registered (or is active): its names live another `nameTtlMs`. */
  touch(peerId: string, now: number): void {
    const e = this.#of.get(peerId);
    if (e !== undefined) e.seen = now;
  }

  /** Binds `name` to `peerId` (or confirms it); a refusal otherwise. */
  claim(name: string, peerId: string, source: string, now: number): ClaimRefusal | undefined {
    const owner = this.ownerOf(name, now);
    if (owner === peerId) {
      this.touch(peerId, now);
      return undefined;
    }
    if (owner !== undefined) return 'taken';
    const mine = this.#of.get(peerId) ?? { names: new Set<string>(), seen: now };
    if (mine.names.size >= this.limits.maxNamesPerPeer) return 'per-peer';
    if (this.#owner.size >= this.limits.maxNames) return 'full';
    const key = sourceKey(source);
    let c = this.#claims.get(key);
    if (c === undefined || now - c.since >= this.limits.nameClaimWindowMs) {
      if (c === undefined && this.#claims.size >= 100_000) this.#claims.delete(this.#claims.keys().next().value as string);
      c = { count: 0, since: now };
      this.#claims.delete(key);
      this.#claims.set(key, c);
    }
    if (c.count >= this.limits.nameClaimsPerSource) return 'per-source';
    c.count++;
    mine.names.add(name);
    mine.seen = now;
    this.#of.set(peerId, mine);
    this.#owner.set(name, peerId);
    return undefined;
  }

  /** Releases the names of owners unseen for `nameTtlMs`; runs at most once a minute. */
  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + Math.min(60_000, this.limits.nameTtlMs);
    for (const [peerId, e] of this.#of) {
      if (now - e.seen < this.limits.nameTtlMs) continue;
      for (const n of e.names) this.#owner.delete(n);
      this.#of.delete(peerId);
    }
    for (const [k, c] of this.#claims) if (now - c.since >= this.limits.nameClaimWindowMs) this.#claims.delete(k);
  }
}
