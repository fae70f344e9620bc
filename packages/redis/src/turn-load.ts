/**
 * Load spreading between TURN nodes: each node publishes its load in Redis every `intervalMs`
 * and reads every live node's in the same round trip (one Lua script); a node at its threshold
 * answers new Allocates with 300 Try Alternate (ALTERNATE-SERVER) toward the least loaded live
 * node that is under its own threshold and holds fewer allocations than this one.
 *
 * Keys (prefix default `nat:`): `turn:load:<node>`, a JSON string (see {@link TurnNodeLoad})
 * that expires after three intervals; `turn:nodes`, a sorted set of node ids scored with the
 * time (Redis's clock, ms) their load stops counting. A node that stops publishing (dead, or cut
 * from Redis) is no longer a target after three intervals.
 */
import type { TransportAddress } from '@nat/protocol';
import type { Redis } from 'ioredis';
import { LUA_NOW_MS } from './lua.js';

/** What a node publishes. */
export interface TurnNodeLoad {
  readonly node: string;
  /** Live allocations. */
  readonly allocations: number;
  /** Bytes relayed per second (both directions), over the last interval. */
  readonly bytesPerSecond: number;
  /** CPU time of the process over the last interval, in cores (1 = one core busy). */
  readonly cpu: number;
  /** Whether the node is at its threshold (it redirects new Allocates). */
  readonly over: boolean;
  /** The address clients are sent to (ALTERNATE-SERVER): the node's TURN listener. */
  readonly address: TransportAddress;
}

/** What the board reads of this node, synchronously, each interval. */
export interface LocalTurnLoad {
  readonly allocations: number;
  /** Bytes relayed since the start (a counter). */
  readonly relayedBytes: number;
}

/** Options of {@link TurnLoadBoard}. */
export interface TurnLoadBoardInit {
  /** This node's id: unique among the nodes sharing the Redis. Required. */
  readonly nodeId: string;
  /** Where clients redirected to this node go. Required. */
  readonly address: TransportAddress;
  /** This node's load, read each interval and for each Allocate. Required. */
  readonly local: () => LocalTurnLoad;
  /** Allocations from which this node redirects new Allocates elsewhere. Required. */
  readonly alternateOver: number;
  /** How often the load is published and read, ms. Default 1,000. */
  readonly intervalMs?: number;
  /** Key prefix. Default `nat:`. */
  readonly prefix?: string;
  /** Counts each Redis error (for metrics). Default none. */
  readonly onError?: (e: unknown) => void;
}

// KEYS: this node's load key, the node set. ARGV: node id, load JSON, ttl ms, load key prefix.
const PUBLISH_AND_READ = `
${LUA_NOW_MS}
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
local nodes = redis.call('ZRANGE', KEYS[2], 0, 255)
local out = {}
for i = 1, #nodes do
  local v = redis.call('GET', ARGV[4] .. nodes[i])
  if v then out[#out + 1] = v end
end
return out
`;

const isLoad = (v: unknown): v is TurnNodeLoad => {
  const l = v as TurnNodeLoad;
  return typeof l === 'object' && l !== null && typeof l.node === 'string' && typeof l.allocations === 'number' && typeof l.address?.address === 'string';
};

/** Publishes this node's TURN load and picks where to redirect Allocates (see the module comment). */
export class TurnLoadBoard {
  readonly #redis: Redis;
  readonly #init: TurnLoadBoardInit;
  readonly #interval: number;
  readonly #prefix: string;
  readonly #timer: NodeJS.Timeout;
  #others: readonly TurnNodeLoad[] = [];
  #last: { at: number; bytes: number; cpu: NodeJS.CpuUsage };
  #mine: TurnNodeLoad | undefined;
  #publishing = false;

  constructor(redis: Redis, init: TurnLoadBoardInit) {
    this.#redis = redis;
    this.#init = init;
    this.#interval = init.intervalMs ?? 1000;
    this.#prefix = init.prefix ?? 'nat:';
    this.#last = { at: Date.now(), bytes: init.local().relayedBytes, cpu: process.cpuUsage() };
    this.#timer = setInterval(() => void this.publish(), this.#interval);
    this.#timer.unref();
  }

  /** The live nodes' loads as last read (this node's included). */
  get nodes(): readonly TurnNodeLoad[] {
    return this.#mine === undefined ? this.#others : [this.#mine, ...this.#others];
  }

  /** Publishes this node's load and reads the others' (every `intervalMs` by itself). */
  async publish(): Promise<void> {
    if (this.#publishing) return;
    this.#publishing = true;
    try {
      const now = Date.now();
      const local = this.#init.local();
      const cpu = process.cpuUsage();
      const seconds = Math.max(0.001, (now - this.#last.at) / 1000);
      const mine: TurnNodeLoad = {
        node: this.#init.nodeId,
        allocations: local.allocations,
        bytesPerSecond: Math.round((local.relayedBytes - this.#last.bytes) / seconds),
        cpu: Math.round(((cpu.user - this.#last.cpu.user + cpu.system - this.#last.cpu.system) / 1e6 / seconds) * 1000) / 1000,
        over: local.allocations >= this.#init.alternateOver,
        address: this.#init.address,
      };
      this.#last = { at: now, bytes: local.relayedBytes, cpu };
      const p = `${this.#prefix}turn:load:`;
      const raw = (await this.#redis.eval(
        PUBLISH_AND_READ,
        2,
        `${p}${mine.node}`,
        `${this.#prefix}turn:nodes`,
        mine.node,
        JSON.stringify(mine),
        this.#interval * 3,
        p,
      )) as string[];
      this.#mine = mine;
      this.#others = raw.flatMap((text) => {
        try {
          const v: unknown = JSON.parse(text);
          return isLoad(v) && v.node !== mine.node ? [v] : [];
        } catch {
          return [];
        }
      });
    } catch (e) {
      // Redis down: no other node is known to be alive, so nothing is redirected.
      this.#others = [];
      this.#init.onError?.(e);
    } finally {
      this.#publishing = false;
    }
  }

  /**
   * Where a new Allocate goes instead of this node: undefined while this node is under its
   * threshold, or when no live node is under its own and holds fewer allocations than this one.
   * Synchronous (the TURN core's `alternateServer`): reads the table of the last `publish`.
   */
  alternate(): TransportAddress | undefined {
    const allocations = this.#init.local().allocations;
    if (allocations < this.#init.alternateOver) return undefined;
    let best: TurnNodeLoad | undefined;
    for (const n of this.#others) if (!n.over && n.allocations < allocations && (best === undefined || n.allocations < best.allocations)) best = n;
    return best?.address;
  }

  /** Stops publishing and removes this node's entry. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#redis
      .multi()
      .del(`${this.#prefix}turn:load:${this.#init.nodeId}`)
      .zrem(`${this.#prefix}turn:nodes`, this.#init.nodeId)
      .exec()
      .catch((e: unknown) => this.#init.onError?.(e));
  }
}
