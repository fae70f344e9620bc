/** What each part of a node that keeps state in Redis (TURN, exposure) needs the same way. */
import { RedisStateError, connectRedis } from '@nat/redis';
import { ServerError } from '@nat/server';
import type { Logger } from 'pino';

/** A Redis connection, or ServerError (exit 1) naming the flag when nothing answers. */
export async function connectOrExit(url: string, name: string, flag: string): Promise<Awaited<ReturnType<typeof connectRedis>>> {
  try {
    return await connectRedis(url, { name });
  } catch (e) {
    if (e instanceof RedisStateError) throw new ServerError('UNAVAILABLE', `${flag}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Counts failed Redis commands by use and logs them, one line per 10 s at most (a Redis that is
 * down fails every command: the log must not follow it).
 */
export function redisErrorLog<U extends string>(logger: Logger, uses: readonly U[]): { counts: Record<U, number>; onError: (use: U) => (e: unknown) => void } {
  const counts = Object.fromEntries(uses.map((u) => [u, 0])) as Record<U, number>;
  let lastLog = 0;
  const onError =
    (use: U) =>
    (e: unknown): void => {
      counts[use]++;
      const now = Date.now();
      if (now - lastLog < 10_000) return;
      lastLog = now;
      logger.warn({ use, err: e instanceof Error ? e.message : String(e), errors: { ...counts } }, 'redis error');
    };
  return { counts, onError };
}
