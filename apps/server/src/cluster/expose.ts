/**
 * Public exposure across nodes (issue 18), wired from the config: with `redis` and
 * `exposePorts`, each user's public ports count on every node together against
 * `exposePortsPerUser`, and owner advertisements are read by every node's owner lookup
 * (`GET /expose/owner?port=P&host=IP`). Leases: `quotaLease`. A node without `redis` starts none of it.
 */
import type { ExposeCluster, ExposeHandle } from '@nat/server';
import { RedisExposeCluster } from '@nat/redis';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import { connectOrExit, redisErrorLog } from './redis-parts.js';
import { nodeIdOf } from './turn.js';

/** The running expose part of one node. */
export interface ExposeClusterPart {
  readonly cluster: ExposeCluster;
  close(): Promise<void>;
}

/** Connects the expose state in Redis when the configuration asks for it; undefined otherwise. Throws ServerError UNAVAILABLE when Redis does not answer. */
export async function startExposeClusterOf(config: ServerConfig, logger: Logger): Promise<ExposeClusterPart | undefined> {
  if (config.redis === undefined || config.exposePorts === undefined) return undefined;
  const nodeId = nodeIdOf(config);
  const redis = await connectOrExit(config.redis, `nat-server ${nodeId} expose`, '--redis');
  const { onError } = redisErrorLog(logger, ['expose']);
  const cluster = new RedisExposeCluster(redis, {
    nodeId,
    leaseMs: config.quotaLease * 1000,
    onError: onError('expose'),
  });
  return {
    cluster,
    async close() {
      await cluster.close();
      // QUIT waits for the releases still in flight (a restarted node's ports must not count twice).
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** `expose`, whose close() closes `part` too (after the service released its ports). */
export function closingWith(expose: ExposeHandle, part: ExposeClusterPart | undefined): ExposeHandle {
  if (part === undefined) return expose;
  return {
    path: expose.path,
    stats: () => expose.stats(),
    exposures: () => expose.exposures(),
    async close() {
      await expose.close();
      await part.close();
    },
  };
}
