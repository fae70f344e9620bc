import { Redis, type RedisOptions } from 'ioredis';
import { RedisUnavailableError } from './errors.js';

/** Options of {@link connectRedis}. */
export interface ConnectRedisInit {
  /** A name shown by `CLIENT LIST` (which node and what for). Default none. */
  readonly name?: string;
  /** How long the first connection may take, ms. Default 5,000. */
  readonly connectTimeoutMs?: number;
  /** How long one command may wait for its answer, ms. Default 2,000. */
  readonly commandTimeoutMs?: number;
  /** Aborts the first connection. */
  readonly signal?: AbortSignal;
}

/** The text of `url` with its password (if any) replaced, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

/**
 * Opens one ioredis connection to `url` (`redis://[[user]:password@]host:port[/db]`) and waits
 * until it is ready. Commands fail fast while the connection is down (no offline queue, one try
 * per command) instead of queueing without bound; ioredis reconnects by itself with a capped
 * backoff. Rejects with {@link RedisUnavailableError} naming the address when Redis does not
 * answer within `connectTimeoutMs`.
 */
export async function connectRedis(url: string, init: ConnectRedisInit = {}): Promise<Redis> {
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: init.connectTimeoutMs ?? 5000,
    commandTimeout: init.commandTimeoutMs ?? 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    ...(init.name === undefined ? {} : { connectionName: init.name }),
  };
  const redis = new Redis(url, options);
  redis.on('error', () => {}); // reported by the failing command or by connect() below
  const onAbort = (): void => redis.disconnect();
  init.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await redis.connect();
    return redis;
  } catch (e) {
    redis.disconnect();
    const cause = e instanceof Error ? e.message : String(e);
    throw new RedisUnavailableError(`no Redis answered at ${redactRedisUrl(url)} (${cause}); is redis-server running there? (--redis URL)`, { cause: e });
  } finally {
    init.signal?.removeEventListener('abort', onAbort);
  }
}
