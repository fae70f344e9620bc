/**
 * The Lua scripts of the rendezvous cluster: each runs atomically in Redis, so a registration,
 * a forward or a name claim is one round trip and never races another node's. Keys not passed
 * in KEYS are built from the prefix inside the script (a single Redis, not Redis Cluster).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script run by its SHA-1 (EVALSHA), loaded with EVAL when Redis does not know it yet. */
export class Script {
  readonly #source: string;
  readonly #sha: string;
  readonly #keys: number;

  constructor(source: string, keys: number) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
    this.#keys = keys;
  }

  async run(redis: Redis, args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, this.#keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return redis.eval(this.#source, this.#keys, ...args);
    }
  }
}

/**
 * KEYS: seq counter, the peer's presence key. ARGV: this instance, presence TTL ms, key prefix,
 * peer id. Records the peer here with a new sequence number; tells the previous node (if
 * another) that a newer registration replaced its connection. Returns the sequence number.
 */
export const REGISTER = new Script(
  `local seq = redis.call('INCR', KEYS[1])
local old = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. seq, 'PX', ARGV[2])
if old then
  local inst = string.match(old, '^(%S+) ')
  if inst and inst ~= ARGV[1] then redis.call('PUBLISH', ARGV[3] .. 'to:' .. inst, 'R ' .. ARGV[4] .. ' ' .. seq) end
end
return seq`,
  2,
);

/** KEYS: the peer's presence key. ARGV: the value this node wrote. Deletes it unless a newer registration replaced it. */
export const LEAVE = new Script(
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  1,
);

/**
 * KEYS: the peer's presence key. ARGV: key prefix, the message (empty: only ask). The node the
 * peer is registered on, if it is alive, gets the message. Returns how many subscribers got it
 * (0: the peer is on no live node), or 1 when only asked and the peer is present.
 */
export const FORWARD = new Script(
  `local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local inst = string.match(v, '^(%S+) ')
if not inst or redis.call('EXISTS', ARGV[1] .. 'node:' .. inst) == 0 then return 0 end
if ARGV[2] == '' then return 1 end
return redis.call('PUBLISH', ARGV[1] .. 'to:' .. inst, ARGV[2])`,
  1,
);

/** Lua: refreshes every name of the peer whose name set is KEYS[2] (index KEYS[3], prefix ARGV[1], TTL ARGV[2] ms, now ARGV[3]). */
const TOUCH_BODY = `local names = redis.call('SMEMBERS', KEYS[2])
for _, n in ipairs(names) do
  redis.call('PEXPIRE', ARGV[1] .. 'name:' .. n, ARGV[2])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[2]), n)
end
if #names > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end`;

/** KEYS: (unused), the peer's name set, the name index. ARGV: prefix, name TTL ms, now. */
export const TOUCH_NAMES = new Script(`${TOUCH_BODY}\nreturn #names`, 3);

/**
 * KEYS: the name's key, the peer's name set, the name index (name -> expiry), the source's claim
 * counter. ARGV: prefix, name TTL ms, now, peer id, name, names per peer, names in all, claims
 * per source per window, the window ms. The limits of @nat/server's NameTable, atomically across
 * nodes. Returns `ok`, or the refusal: taken, per-peer, full, per-source.
 */
export const CLAIM_NAME = new Script(
  `local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[4] then return 'taken' end
if not owner then
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[6]) then return 'per-peer' end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return 'full' end
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[8]) then return 'per-source' end
  if redis.call('INCR', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[9]) end
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[5])
end
${TOUCH_BODY}
return 'ok'`,
  4,
);
