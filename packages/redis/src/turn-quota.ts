/**
 * TURN allocation quotas counted across nodes (`TurnClusterQuota` of @nat/server): the per-user
 * quota, the per-source share and the total, held in Redis.
 *
 * Keys (prefix default `nat:`): sorted sets `turn:quota:user:<user>`, `turn:quota:source:<source>`
 * and `turn:quota:total`; a member `<node>/<run>/<allocation>` per allocation (`run`: random per start), scored with the time (ms,
 * Redis's clock) its lease ends. One Lua script drops the expired members, checks the three
 * counts and adds the allocation to all three, atomically: two nodes can never both take the
 * last slot. Each node renews its members' leases every `leaseMs / 3`; a node that dies stops
 * renewing, and its allocations stop counting within `leaseMs`.
 */
import { randomBytes } from 'node:crypto';
import type { ClusterQuotaHolder, QuotaRefusal, TurnClusterQuota } from '@nat/server';
import type { Redis } from 'ioredis';
import { LUA_NOW_MS } from './lua.js';

/** Options of {@link RedisTurnQuota}. */
export interface RedisTurnQuotaInit {
  /** This node's id: unique among the nodes sharing the Redis. Required. */
  readonly nodeId: string;
  /** Allocations one user may hold across the nodes. Required (nat-server: `--user-quota`). */
  readonly userQuota: number;
  /** Allocations one source (IPv4 address, IPv6 /64) may hold across the nodes. Required (`--source-quota`). */
  readonly sourceQuota: number;
  /** Allocations all the nodes hold together. Required (`--total-quota`). */
  readonly totalQuota: number;
  /** How long a reservation counts without renewal, ms. Default 15,000. */
  readonly leaseMs?: number;
  /** Key prefix. Default `nat:`. */
  readonly prefix?: string;
  /** Counts each Redis error (for metrics). Default none. */
  readonly onError?: (e: unknown) => void;
}

// KEYS: user, source, total. ARGV: member, lease ms, user quota, source quota, total quota.
const RESERVE = `
${LUA_NOW_MS}
local limits = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) }
local names = { 'user', 'source', 'total' }
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) and redis.call('ZCARD', KEYS[i]) >= limits[i] then return names[i] end
end
local lease = tonumber(ARGV[2])
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], lease * 2)
end
return 'ok'
`;

// KEYS: triples of (user, source, total) per member. ARGV: lease ms, then the members.
const RENEW = `
${LUA_NOW_MS}
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  for j = 0, 2 do
    local k = KEYS[(i - 2) * 3 + j + 1]
    redis.call('ZADD', k, 'XX', now + lease, ARGV[i])
    redis.call('PEXPIRE', k, lease * 2)
  end
end
return #ARGV - 1
`;

/** Members renewed per script call. */
const RENEW_BATCH = 500;

/** The cluster-wide TURN quota ledger in Redis (see the module comment). {@link close} releases this node's reservations. */
export class RedisTurnQuota implements TurnClusterQuota {
  readonly #redis: Redis;
  readonly #init: RedisTurnQuotaInit;
  readonly #lease: number;
  readonly #prefix: string;
  /** This node's reservations: allocation id -> the keys it counts in. */
  readonly #held = new Map<number, readonly [string, string, string]>();
  readonly #timer: NodeJS.Timeout;
  #renewing = false;
  readonly #run = randomBytes(4).toString('hex');

  constructor(redis: Redis, init: RedisTurnQuotaInit) {
    this.#redis = redis;
    this.#init = init;
    this.#lease = init.leaseMs ?? 15_000;
    this.#prefix = init.prefix ?? 'nat:';
    this.#timer = setInterval(() => void this.renew(), Math.max(100, Math.floor(this.#lease / 3)));
    this.#timer.unref();
  }

  /** Reservations this node holds. */
  get size(): number {
    return this.#held.size;
  }

  /** `<node>/<run>/<allocation>`: a restarted node (same id, allocation ids from 1 again) never takes over its earlier run's leases. */
  #member(id: number): string {
    return `${this.#init.nodeId}/${this.#run}/${id}`;
  }

  async reserve(id: number, holder: ClusterQuotaHolder): Promise<QuotaRefusal | 'unavailable' | undefined> {
    const p = `${this.#prefix}turn:quota:`;
    const keys = [`${p}user:${holder.user}`, `${p}source:${holder.source}`, `${p}total`] as const;
    const { userQuota, sourceQuota, totalQuota } = this.#init;
    try {
      const r = await this.#redis.eval(RESERVE, 3, ...keys, this.#member(id), this.#lease, userQuota, sourceQuota, totalQuota);
      if (r === 'ok') {
        this.#held.set(id, keys);
        return undefined;
      }
      return r === 'user' || r === 'source' || r === 'total' ? r : 'unavailable';
    } catch (e) {
      this.#init.onError?.(e);
      return 'unavailable';
    }
  }

  release(id: number): void {
    const keys = this.#held.get(id);
    if (keys === undefined) return;
    this.#held.delete(id);
    const member = this.#member(id);
    const m = this.#redis.multi();
    for (const k of keys) m.zrem(k, member);
    // Not released now (Redis down): the lease runs out instead.
    m.exec().catch((e: unknown) => this.#init.onError?.(e));
  }

  /** Renews the leases of this node's reservations (every `leaseMs / 3` by itself). */
  async renew(): Promise<void> {
    if (this.#renewing || this.#held.size === 0) return;
    this.#renewing = true;
    try {
      const entries = [...this.#held];
      for (let i = 0; i < entries.length; i += RENEW_BATCH) {
        const batch = entries.slice(i, i + RENEW_BATCH);
        await this.#redis.eval(RENEW, batch.length * 3, ...batch.flatMap(([, k]) => k), this.#lease, ...batch.map(([id]) => this.#member(id)));
      }
    } catch (e) {
      this.#init.onError?.(e);
    } finally {
      this.#renewing = false;
    }
  }

  /** Stops renewing and releases every reservation of this node (best effort: otherwise their leases run out). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const ids = [...this.#held.keys()];
    if (ids.length === 0) return;
    const m = this.#redis.multi();
    for (const id of ids) for (const k of this.#held.get(id)!) m.zrem(k, this.#member(id));
    this.#held.clear();
    await m.exec().catch((e: unknown) => this.#init.onError?.(e));
  }
}
