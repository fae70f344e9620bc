/**
 * The config keys of TURN across nodes (issue 18): shared state in Redis. Spread into the
 * ServerConfig schema (config.ts); their flags are in flags.ts.
 */
import { z } from 'zod';

/** coturn's `--redis-userdb` string (`host=... port=... dbname=... password=...`) or a redis:// URL. */
const redisConnection = z.string().refine((s) => /^rediss?:\/\//.test(s.trim()) || /^(\s*[a-z_]+=\S*)+\s*$/.test(s), {
  message: "not a redis:// URL or coturn's connection string (host=... port=... dbname=... password=...)",
});

export const CLUSTER_KEYS = {
  /** The Redis the nodes of a cluster share (rendezvous presence, names, signalling, relay scope; TURN quotas and load). Default none: one node on its own. */
  redis: z
    .string()
    .regex(/^rediss?:\/\/[^\s]+$/, { message: 'not a redis:// or rediss:// URL' })
    .optional()
    .describe('a redis://[[user]:password@]host:port[/db] URL (rediss:// for TLS)'),
  /** This node's id among the nodes sharing `redis`. Default: the host name and the rendezvous port. */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,64}$/, { message: 'not 1-64 characters of A-Z a-z 0-9 . _ : -' })
    .optional()
    .describe('1-64 characters of A-Z a-z 0-9 . _ : - (default: the host name and the rendezvous port)'),
  /** coturn's Redis user database (TURN users and REST secrets, as turnadmin -N writes them). */
  redisUserdb: redisConnection.optional().describe("a redis:// URL or coturn's --redis-userdb string (host=... port=... dbname=... password=...)"),
  /** How long a user read from redisUserdb (or its absence) is reused, seconds. */
  redisUserdbCacheTtl: z.number().min(0.1).max(3600).default(5).describe('seconds, a number from 0.1 to 3600'),
  /** With `redis`: how long a node's quota reservations, public ports and owner advertisements outlive it, seconds. */
  quotaLease: z.number().int().min(3).max(3600).default(15).describe('seconds, a whole number from 3 to 3600'),
  /** With `redis`: allocations from which this node sends new Allocates to a less loaded node (300). Default none. */
  alternateOver: z.number().int().min(1).optional().describe('a whole number of at least 1'),
} as const;

/** The cluster keys' cross-checks, for ServerConfig's superRefine. */
export function clusterProblems(c: {
  redis?: string | undefined;
  redisUserdb?: string | undefined;
  alternateOver?: number | undefined;
  realm?: string | undefined;
  workers: number | 'auto';
}): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  if (c.alternateOver !== undefined && c.redis === undefined)
    out.push({ path: 'alternateOver', message: 'the nodes publish their load in Redis: set --redis (config key redis) too' });
  if (c.redisUserdb !== undefined && c.realm === undefined) out.push({ path: 'redisUserdb', message: 'the user database is for TURN: set --realm too' });
  if (c.alternateOver !== undefined && typeof c.workers === 'number' && c.workers > 1)
    out.push({ path: 'alternateOver', message: 'load spreading between nodes runs on one process per node for now: use --workers 1 (or auto)' });
  return out;
}
