/**
 * The user an allocation counts against. A TURN REST API username is `EXPIRY:USER` (or a bare
 * `EXPIRY`): its expiry changes every second, so counting per username would make a new "user"
 * each second. As coturn does, the expiry is stripped: `1700000000:alice` counts as `alice`, a
 * bare `1700000000` as the empty user (every expiry-only credential shares one quota).
 */
export function quotaUser(username: string): string {
  const colon = username.indexOf(':');
  const first = colon < 0 ? username : username.slice(0, colon);
  if (!/^\d{1,12}$/.test(first)) return username;
  return colon < 0 ? '' : username.slice(colon + 1);
}

/** Limits of {@link TurnQuotas}. */
export interface TurnQuotaInit {
  /** Allocations (and reserved ports) one user may hold. */
  readonly userQuota: number;
  /** Allocations (and reserved ports) all clients at one source address (IPv6: one /64) may hold. */
  readonly sourceQuota: number;
  /** Allocations (and reserved ports) the server holds. */
  readonly totalQuota: number;
}

/**
 * The limits of a trust tier (e.g. the anonymous relay tier), applied by the same ledger: its
 * users are counted once, under the tier's name, against `perUser` (instead of the server's
 * user quota), and all of them together against `total`.
 */
export interface TierQuota {
  readonly tier: string;
  /** Allocations (and reserved ports) one user of the tier may hold. */
  readonly perUser: number;
  /** Allocations (and reserved ports) all users of the tier may hold together. */
  readonly total: number;
}

/** Which limit refused an allocation: the user's (or the tier user's) quota, the source's share, the tier's total, the server's total. */
export type QuotaRefusal = 'user' | 'source' | 'tier' | 'total';

interface Holder {
  /** The user's key in the ledger: the tier's name and the user for a tier's user. */
  readonly user: string;
  readonly source: string;
  readonly tier: string | undefined;
}

/** How long a RESERVATION-TOKEN's port counts: the driver holds it 30 s (RFC 8656 section 7.2), plus one sweep. */
export const RESERVATION_COUNTED_MS = 31_000;

/**
 * Allocation quotas per user, per source, per tier and in total, sans I/O: the one ledger of
 * allocation slots (a tier's policy gives its limits, it keeps no count of its own). A reserved port (EVEN-PORT with
 * the R bit) counts like an allocation until an Allocate with its RESERVATION-TOKEN uses it
 * (the count passes to that allocation) or it expires. Every check and take happens in one
 * synchronous call: two requests can never both pass a check for the last slot.
 */
export class TurnQuotas {
  readonly #init: TurnQuotaInit;
  readonly #perUser = new Map<string, number>();
  readonly #perSource = new Map<string, number>();
  readonly #perTier = new Map<string, number>();
  readonly #held = new Map<number, Holder>();
  readonly #reservations = new Map<string, Holder & { expiresAt: number }>();
  #total = 0;

  constructor(init: TurnQuotaInit) {
    this.#init = init;
  }

  /** Allocations and reservations counted now. */
  get total(): number {
    return this.#total;
  }

  /** Reservations counted now. */
  get reservations(): number {
    return this.#reservations.size;
  }

  /** Slots `user` holds (of `tier`, when a tier's user). */
  count(user: string, tier?: string): number {
    return this.#perUser.get(userKey(user, tier)) ?? 0;
  }

  /** Slots all users of `tier` hold. */
  tierCount(tier: string): number {
    return this.#perTier.get(tier) ?? 0;
  }

  /**
   * Takes the slots of allocation `id` for `user` at `source`: one, or two when `reserve` names
   * the token of a port + 1 reservation to count until `reserveUntil`. With `consume`, the
   * reservation under that token (if still counted) is used: its slot passes to this allocation.
   * With `tier`, the user is a tier's: counted under the tier, against its limits.
   * Returns the limit that refused (nothing taken), or undefined (everything taken).
   */
  take(
    id: number,
    user: string,
    source: string,
    opts: { reserve?: string; reserveUntil?: number; consume?: string; tier?: TierQuota } = {},
  ): QuotaRefusal | undefined {
    const tier = opts.tier;
    const holder: Holder = { user: userKey(user, tier?.tier), source, tier: tier?.tier };
    const used = opts.consume === undefined ? undefined : this.#reservations.get(opts.consume);
    const slots = opts.reserve === undefined ? 1 : 2;
    const held = (map: Map<string, number>, key: string | undefined, usedKey: string | undefined): number =>
      key === undefined ? 0 : (map.get(key) ?? 0) - (used !== undefined && usedKey === key ? 1 : 0);
    if (held(this.#perUser, holder.user, used?.user) + slots > (tier?.perUser ?? this.#init.userQuota)) return 'user';
    if (tier !== undefined && held(this.#perTier, tier.tier, used?.tier) + slots > tier.total) return 'tier';
    if (held(this.#perSource, source, used?.source) + slots > this.#init.sourceQuota) return 'source';
    if (this.#total - (used ? 1 : 0) + slots > this.#init.totalQuota) return 'total';
    if (used !== undefined) {
      this.#reservations.delete(opts.consume!);
      this.#count(used, -1);
    }
    this.#held.set(id, holder);
    this.#count(holder, 1);
    if (opts.reserve !== undefined) {
      this.#reservations.set(opts.reserve, { ...holder, expiresAt: opts.reserveUntil ?? 0 });
      this.#count(holder, 1);
    }
    return undefined;
  }

  /** The allocation is gone: its slot is free. */
  release(id: number): void {
    const h = this.#held.get(id);
    if (h === undefined) return;
    this.#held.delete(id);
    this.#count(h, -1);
  }

  /** The reservation under `token` will never exist (its allocation failed): its slot is free. */
  cancelReservation(token: string): void {
    const r = this.#reservations.get(token);
    if (r === undefined) return;
    this.#reservations.delete(token);
    this.#count(r, -1);
  }

  /** Frees the slots of reservations past their time. */
  sweep(now: number): void {
    for (const [token, r] of this.#reservations) if (r.expiresAt <= now) this.cancelReservation(token);
  }

  #count(h: Holder, delta: number): void {
    this.#total += delta;
    bump(this.#perUser, h.user, delta);
    bump(this.#perSource, h.source, delta);
    if (h.tier !== undefined) bump(this.#perTier, h.tier, delta);
  }
}

/** A tier's users are counted apart from operator users of the same name. */
function userKey(user: string, tier: string | undefined): string {
  return tier === undefined ? user : `${tier}\0${user}`;
}

function bump(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/** The map key of a RESERVATION-TOKEN. */
export function tokenKey(token: Uint8Array): string {
  return Buffer.from(token).toString('hex');
}
