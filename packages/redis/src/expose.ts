/**
 * The public ports of every node (`ExposeCluster` of @nat/server): each user's ports counted on
 * all the nodes together, and the owner advertisements every node's owner lookup reads.
 *
 * Keys (prefix default `nat:`):
 * - `expose:ports:user:<user>`: a sorted set, a member `<node>/<run>/<reservation>` per public
 *   port (`run`: random per start), scored with the time (ms, Redis's clock) its lease ends. One
 *   Lua script drops the expired members, checks the count against the quota and adds the port,
 *   atomically: two nodes can never both take a user's last port.
 * - `expose:owner:<ip>/<transport>/<port>`: `<node>/<run> <peer id> <address>` while the owner is
 *   attached and advertised, with the lease as its TTL.
 *
 * Each node renews its entries every `leaseMs / 3`; a node that dies stops renewing, and its
 * ports stop counting (and its owners stop being told) within `leaseMs`.
 */
import { randomBytes } from 'node:crypto';
import type { ExposeCluster, ExposeOwnerRecord, ExposePortAddress } from '@nat/server';
import type { Redis } from 'ioredis';
import { LUA_NOW_MS } from './lua.js';
import { Script } from './scripts.js';

/** Options of {@link RedisExposeCluster}. */
export interface RedisExposeClusterInit {
  /** This node's id: unique among the nodes sharing the Redis. Required. */
  readonly nodeId: string;
  /** How long a port counts, and an owner is told, without renewal, ms. Default 15,000 (nat-server: `--quota-lease`). */
  readonly leaseMs?: number;
  /** Key prefix. Default `nat:`. */
  readonly prefix?: string;
  /** Counts each Redis error (for logs and metrics). Default none. */
  readonly onError?: (e: unknown) => void;
}

/** KEYS: the user's set. ARGV: member, lease ms, quota. Returns `ok` or `over`. */
const RESERVE = new Script(
  `${LUA_NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 'over' end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 'ok'`,
  1,
);

/**
 * KEYS: the users' sets (one per port), then the owner keys. ARGV: lease ms, the number of ports,
 * the ports' members, then the owner values. A port's member is renewed only while present (a
 * released one is never added back); an owner key only while absent or still this node's.
 */
const RENEW_SOURCE = `${LUA_NOW_MS}
local lease = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[2 + i])
  redis.call('PEXPIRE', KEYS[i], lease * 2)
end
for i = n + 1, #KEYS do
  local v = ARGV[2 + i]
  local old = redis.call('GET', KEYS[i])
  if not old or old == v then redis.call('SET', KEYS[i], v, 'PX', lease) end
end
return #KEYS`;

/** KEYS: an owner key. ARGV: the value this node wrote. Deletes it unless another node's replaced it. */
const WITHDRAW_SOURCE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
const WITHDRAW = new Script(WITHDRAW_SOURCE, 1);

/** Entries renewed per script call. */
const RENEW_BATCH = 500;

/** The public ports of every node in Redis (see the module comment). {@link close} releases this node's entries. */
export class RedisExposeCluster implements ExposeCluster {
  readonly #redis: Redis;
  readonly #init: RedisExposeClusterInit;
  readonly #lease: number;
  readonly #prefix: string;
  readonly #run = randomBytes(4).toString('hex');
  /** This node's reservations: id -> the user's key. */
  readonly #held = new Map<number, string>();
  /** This node's advertisements: owner key -> the value written. */
  readonly #owners = new Map<string, string>();
  readonly #timer: NodeJS.Timeout;
  #renewing = false;

  constructor(redis: Redis, init: RedisExposeClusterInit) {
    this.#redis = redis;
    this.#init = init;
    this.#lease = init.leaseMs ?? 15_000;
    this.#prefix = init.prefix ?? 'nat:';
    this.#timer = setInterval(() => void this.renew(), Math.max(100, Math.floor(this.#lease / 3)));
    this.#timer.unref();
  }

  /** Reservations and advertisements this node holds. */
  get size(): { ports: number; owners: number } {
    return { ports: this.#held.size, owners: this.#owners.size };
  }

  /** `<node>/<run>`: a restarted node (same id) never takes over its earlier run's entries. */
  get #self(): string {
    return `${this.#init.nodeId}/${this.#run}`;
  }

  #ownerKey(at: ExposePortAddress): string {
    return `${this.#prefix}expose:owner:${at.host}/${at.transport}/${at.port}`;
  }

  #error(e: unknown): void {
    this.#init.onError?.(e);
  }

  async reserve(id: number, user: string, quota: number): Promise<'over-quota' | 'unavailable' | undefined> {
    const key = `${this.#prefix}expose:ports:user:${user}`;
    try {
      const r = await RESERVE.run(this.#redis, [key, `${this.#self}/${id}`, this.#lease, quota]);
      if (r === 'ok') {
        this.#held.set(id, key);
        return undefined;
      }
      return r === 'over' ? 'over-quota' : 'unavailable';
    } catch (e) {
      this.#error(e);
      return 'unavailable';
    }
  }

  release(id: number): void {
    const key = this.#held.get(id);
    if (key === undefined) return;
    this.#held.delete(id);
    // Not released now (Redis down): the lease runs out instead.
    this.#redis.zrem(key, `${this.#self}/${id}`).catch((e: unknown) => this.#error(e));
  }

  advertise(at: ExposePortAddress, owner: ExposeOwnerRecord): void {
    const key = this.#ownerKey(at);
    const value = `${this.#self} ${owner.peer} ${owner.address}`;
    this.#owners.set(key, value);
    this.#redis.set(key, value, 'PX', this.#lease).catch((e: unknown) => this.#error(e));
  }

  withdraw(at: ExposePortAddress): void {
    const key = this.#ownerKey(at);
    const value = this.#owners.get(key);
    if (value === undefined) return;
    this.#owners.delete(key);
    WITHDRAW.run(this.#redis, [key, value]).catch((e: unknown) => this.#error(e));
  }

  async owner(at: ExposePortAddress): Promise<ExposeOwnerRecord | 'unavailable' | undefined> {
    let v: string | null;
    try {
      v = await this.#redis.get(this.#ownerKey(at));
    } catch (e) {
      this.#error(e);
      return 'unavailable';
    }
    const [, peer, address] = v?.split(' ') ?? [];
    return peer === undefined || address === undefined ? undefined : { peer, address };
  }

  /** Renews the leases of this node's ports and advertisements (every `leaseMs / 3` by itself). */
  async renew(): Promise<void> {
    if (this.#renewing || this.#held.size + this.#owners.size === 0) return;
    this.#renewing = true;
    try {
      const ports = [...this.#held];
      const owners = [...this.#owners];
      for (let i = 0; i < Math.max(ports.length, owners.length); i += RENEW_BATCH) {
        const p = ports.slice(i, i + RENEW_BATCH);
        const o = owners.slice(i, i + RENEW_BATCH);
        const keys = [...p.map(([, k]) => k), ...o.map(([k]) => k)];
        const args = [this.#lease, p.length, ...p.map(([id]) => `${this.#self}/${id}`), ...o.map(([, v]) => v)];
        await this.#redis.eval(RENEW_SOURCE, keys.length, ...keys, ...args);
      }
    } catch (e) {
      this.#error(e);
    } finally {
      this.#renewing = false;
    }
  }

  /** Stops renewing and releases every entry of this node (best effort: otherwise their leases run out). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#held.size + this.#owners.size === 0) return;
    const m = this.#redis.multi();
    for (const [id, key] of this.#held) m.zrem(key, `${this.#self}/${id}`);
    for (const [key, value] of this.#owners) m.eval(WITHDRAW_SOURCE, 1, key, value);
    this.#held.clear();
    this.#owners.clear();
    await m.exec().catch((e: unknown) => this.#error(e));
  }
}
