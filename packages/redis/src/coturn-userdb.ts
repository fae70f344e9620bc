/**
 * coturn's Redis user database (`turnserver --redis-userdb`, written by `turnadmin -N`), read
 * as coturn reads it, so that nat-server and coturn can share one:
 *
 * - `turn/realm/<realm>/user/<name>/key`: a long-term user's key, the hex MD5 of
 *   `name:realm:password` (`turnadmin -a`); MD5 only (SHA-256 cannot be derived from it);
 * - `turn/realm/<realm>/user/<name>/password`: a user's password in clear (coturn's other form);
 *   both algorithms;
 * - `turn/realm/<realm>/secret`: a set of TURN REST API shared secrets (`turnadmin -s`), for
 *   usernames `EXPIRY:USER` (never the anonymous relay tier's `EXPIRY:~PEER`).
 *
 * Lookups are cached per user for `cacheTtlMs` (the answer, or that there is none, or that Redis
 * did not answer), in a bounded cache; the TURN driver awaits `prepare` only when a request's
 * user is not cached, so relayed packets never wait for Redis.
 */
import { ParseError, PasswordAlgorithm, anonymousRelayPeer, longTermKey, restApiExpiry, restApiPassword } from '@nat/protocol';
import { type TurnAuthenticator, TurnAuthUnavailableError } from '@nat/server';
import type { Redis } from 'ioredis';

/** Options of {@link coturnUserDb}. */
export interface CoturnUserDbInit {
  /** How long a user's answer (or its absence) is reused, ms. Default 5,000. */
  readonly cacheTtlMs?: number;
  /** How long a failed lookup is remembered (requests meanwhile get 500), ms. Default 1,000. */
  readonly failureTtlMs?: number;
  /** Users cached at once; the oldest go first. Default 10,000. */
  readonly maxCached?: number;
  /** Lookups in flight at once; requests of further uncached users get 500 meanwhile. Default 256. */
  readonly maxInFlight?: number;
  /** Counts each Redis error (for metrics). Default none. */
  readonly onError?: (e: unknown) => void;
}

/** coturn's key names (schema.userdb.redis). */
export const coturnKeys = {
  userKey: (realm: string, user: string): string => `turn/realm/${realm}/user/${user}/key`,
  userPassword: (realm: string, user: string): string => `turn/realm/${realm}/user/${user}/password`,
  secrets: (realm: string): string => `turn/realm/${realm}/secret`,
} as const;

interface Entry {
  readonly expiresAt: number;
  readonly failed: boolean;
  readonly md5Key: Uint8Array | undefined;
  readonly password: string | undefined;
  readonly secrets: readonly string[];
  /** Derived keys by algorithm (derivation stays off the per-request path). */
  readonly derived: Map<number, readonly Uint8Array[]>;
}

function derive(username: string, realm: string, password: string, algorithm: PasswordAlgorithm): Uint8Array | undefined {
  try {
    return longTermKey({ username, realm, password, algorithm });
  } catch (e) {
    if (e instanceof ParseError) return undefined;
    throw e;
  }
}

/** The candidate keys an entry gives a user, for one algorithm. */
function keysOf(e: Entry, username: string, realm: string, algorithm: PasswordAlgorithm, now: number): readonly Uint8Array[] {
  const out: Uint8Array[] = [];
  if (e.md5Key !== undefined && algorithm === PasswordAlgorithm.MD5) out.push(e.md5Key);
  if (e.password !== undefined) {
    const k = derive(username, realm, e.password, algorithm);
    if (k) out.push(k);
  }
  const expiry = restApiExpiry(username);
  if (expiry !== undefined && expiry * 1000 >= now && anonymousRelayPeer(username) === undefined) {
    for (const secret of e.secrets) {
      const k = derive(username, realm, restApiPassword(secret, username), algorithm);
      if (k) out.push(k);
    }
  }
  return out;
}

/** A hex MD5 key as coturn stores it (32 hex digits), or undefined. */
function hexKey(text: string | null): Uint8Array | undefined {
  if (text === null || !/^[0-9a-fA-F]{32}$/.test(text.trim())) return undefined;
  return new Uint8Array(Buffer.from(text.trim(), 'hex'));
}

/**
 * A {@link TurnAuthenticator} over coturn's Redis user database on `redis` (see the module
 * comment for the keys). Fails closed: while Redis does not answer, `keys` throws
 * `TurnAuthUnavailableError` and the TURN core answers 500.
 */
export function coturnUserDb(redis: Redis, init: CoturnUserDbInit = {}): TurnAuthenticator {
  const ttl = init.cacheTtlMs ?? 5000;
  const failureTtl = init.failureTtlMs ?? 1000;
  const max = init.maxCached ?? 10_000;
  const maxInFlight = init.maxInFlight ?? 256;
  const cache = new Map<string, Entry>();
  const inFlight = new Map<string, Promise<void>>();
  const put = (k: string, e: Entry): void => {
    cache.delete(k);
    if (cache.size >= max) cache.delete(cache.keys().next().value as string);
    cache.set(k, e);
  };
  const failed = (now: number): Entry => ({
    expiresAt: now + failureTtl,
    failed: true,
    md5Key: undefined,
    password: undefined,
    secrets: [],
    derived: new Map(),
  });

  async function lookup(k: string, username: string, realm: string): Promise<void> {
    try {
      const r = await redis
        .multi()
        .get(coturnKeys.userKey(realm, username))
        .get(coturnKeys.userPassword(realm, username))
        .smembers(coturnKeys.secrets(realm))
        .exec();
      if (r === null || r.some(([err]) => err !== null)) throw r?.find(([err]) => err !== null)?.[0] ?? new Error('transaction aborted');
      const [key, password, secrets] = r.map(([, v]) => v) as [string | null, string | null, string[]];
      put(k, { expiresAt: Date.now() + ttl, failed: false, md5Key: hexKey(key), password: password ?? undefined, secrets, derived: new Map() });
    } catch (e) {
      init.onError?.(e);
      put(k, failed(Date.now()));
    } finally {
      inFlight.delete(k);
    }
  }

  return {
    keys(username, realm, algorithm, now) {
      const e = cache.get(`${realm}\0${username}`);
      if (e === undefined || e.failed) throw new TurnAuthUnavailableError('the Redis user database did not answer');
      let keys = e.derived.get(algorithm);
      if (keys === undefined) {
        keys = keysOf(e, username, realm, algorithm, now);
        // REST usernames expire: their keys are recomputed, not memoised past the expiry check.
        if (restApiExpiry(username) === undefined) e.derived.set(algorithm, keys);
      }
      return keys;
    },
    prepare(username, realm, now) {
      const k = `${realm}\0${username}`;
      const e = cache.get(k);
      if (e !== undefined && e.expiresAt > now) return undefined;
      const running = inFlight.get(k);
      if (running !== undefined) return running;
      if (inFlight.size >= maxInFlight) {
        put(k, failed(now));
        return undefined;
      }
      const p = lookup(k, username, realm);
      inFlight.set(k, p);
      return p;
    },
  };
}

/**
 * coturn's Redis connection string (`--redis-userdb "host=127.0.0.1 port=6379 dbname=2
 * password=..."`, `ip=` for `host=`) as a `redis://` URL; a `redis://` or `rediss://` URL is
 * returned as it is. Undefined when it is neither.
 */
export function redisUrlOf(connection: string): string | undefined {
  const text = connection.trim();
  if (/^rediss?:\/\//.test(text)) return text;
  const fields = new Map<string, string>();
  for (const part of text.split(/\s+/)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    fields.set(part.slice(0, eq).toLowerCase(), part.slice(eq + 1));
  }
  const known = new Set(['host', 'ip', 'port', 'dbname', 'database', 'password', 'connect_timeout', 'user']);
  if (fields.size === 0 || [...fields.keys()].some((k) => !known.has(k))) return undefined;
  const host = fields.get('host') ?? fields.get('ip') ?? '127.0.0.1';
  const port = fields.get('port') ?? '6379';
  const db = fields.get('dbname') ?? fields.get('database') ?? '0';
  if (!/^\d{1,5}$/.test(port) || !/^\d{1,3}$/.test(db)) return undefined;
  const password = fields.get('password');
  const auth = password === undefined ? '' : `${encodeURIComponent(fields.get('user') ?? '')}:${encodeURIComponent(password)}@`;
  return `redis://${auth}${host.includes(':') ? `[${host}]` : host}:${port}/${db}`;
}
