/** The flags of shared state in Redis (config keys in config.ts of this folder). */
import { type Command, InvalidArgumentError } from 'commander';

/** The flags' values as commander gives them. */
export interface ClusterFlags {
  redis?: string;
  nodeId?: string;
  redisUserdb?: string;
  redisUserdbCacheTtl?: number;
  quotaLease?: number;
  alternateOver?: number;
}

const numberArg = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
};

/** Adds the cluster options group. */
export function withClusterOptions(program: Command): Command {
  return program
    .optionsGroup('Several nodes (one network served by several nat-servers sharing Redis):')
    .option(
      '--redis <url>',
      'share state with the other nodes in this Redis (redis://[[user]:password@]host:port[/db]): rendezvous presence, names, signalling between nodes, the relay scope, TURN quotas and load, public ports per user and their owners (default none: one node, all in memory)',
    )
    .option('--node-id <id>', "this node's id among the nodes sharing --redis (default: the host name and the rendezvous port)")
    .option(
      '--redis-userdb <connection>',
      'TURN users and REST secrets from coturn\'s Redis user database (as turnadmin -N writes it): a redis:// URL or coturn\'s string "host=H port=P dbname=N password=S"',
    )
    .option('--redis-userdb-cache-ttl <seconds>', 'how long a user read from --redis-userdb (or its absence) is reused (default 5)', numberArg)
    .option(
      '--quota-lease <seconds>',
      "with --redis: how long a dead node's TURN quota reservations and public ports still count, and its port owners are still told (default 15)",
      numberArg,
    )
    .option(
      '--alternate-over <n>',
      'with --redis: from this many allocations, send new Allocates to the least loaded node (300 Try Alternate; default off)',
      numberArg,
    );
}

/** The flags' values under their config keys (undefined: not given). */
export function clusterFlagValues(o: ClusterFlags): Record<string, unknown> {
  return {
    redis: o.redis,
    nodeId: o.nodeId,
    redisUserdb: o.redisUserdb,
    redisUserdbCacheTtl: o.redisUserdbCacheTtl,
    quotaLease: o.quotaLease,
    alternateOver: o.alternateOver,
  };
}
