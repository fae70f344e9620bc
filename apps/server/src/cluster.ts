/**
 * `nat-server --redis URL`: several nodes share their rendezvous (presence, names, signalling
 * between nodes) and the anonymous tier's relay scope in Redis. Without `--redis` nothing here
 * runs: one node keeps everything in memory.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { type RelayScope, ServerError } from '@nat/server';
import { type RedisNode, RedisStateError, openRedisNode } from '@nat/redis';
import type { Logger } from 'pino';
import type { ServerConfig } from './config.js';

/** The default node id: the host name and the rendezvous port (stable across restarts), in the characters a node id allows. */
export function defaultNodeId(config: Pick<ServerConfig, 'rendezvousPort'>, host: string = hostname()): string {
  const name = host.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50) || 'node';
  return `${name}:${config.rendezvousPort ?? 0}`;
}

/** This node's part of the cluster, or undefined without `redis`. Throws ServerError when Redis does not answer. */
export async function openClusterOf(config: ServerConfig, logger: Logger): Promise<RedisNode | undefined> {
  if (config.redis === undefined) return undefined;
  const nodeId = config.nodeId ?? defaultNodeId(config);
  try {
    const node = await openRedisNode(config.redis, {
      nodeId,
      logger,
      names: {
        maxNamesPerPeer: config.rendezvousNamesPerKey,
        nameClaimsPerSource: config.rendezvousNameClaimsPerHour,
        nameTtlMs: config.rendezvousNameTtlDays * 86_400_000,
      },
    });
    logger.info({ node: nodeId, instance: node.rendezvous.instance }, 'joined the rendezvous cluster in Redis');
    return node;
  } catch (e) {
    if (e instanceof RedisStateError) throw new ServerError('BAD_CONFIG', `--redis: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The relay scope TURN and the rendezvous share: mirrored across nodes with a cluster. */
export function clusterScope(node: RedisNode | undefined, local: RelayScope): RelayScope {
  return node === undefined ? local : node.relayScope(local);
}

/** Several nodes sharing state in Redis. */
export function withClusterOptions(program: Command): Command {
  return program
    .optionsGroup('Several nodes (one network served by several nat-servers sharing Redis):')
    .option(
      '--redis <url>',
      'share rendezvous presence, names, signalling between nodes and the relay scope with the other nodes in this Redis (redis://[[user]:password@]host:port[/db]; default off: one node, all in memory)',
    )
    .option('--node-id <id>', "this node's id in Redis (default: the host name and the rendezvous port)");
}
