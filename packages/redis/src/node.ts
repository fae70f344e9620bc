/**
 * One nat-server node's share of a Redis cluster: two connections (commands, subscriptions), the
 * rendezvous cluster and the relay scope mirror on them, closed together.
 */
import type { RelayScope } from '@nat/server';
import type { Redis } from 'ioredis';
import { connectRedis } from './connection.js';
import { type RedisRendezvousInit, RedisRendezvousCluster } from './rendezvous.js';
import { RedisRelayScope } from './scope.js';

/** Options of {@link openRedisNode}: the rendezvous cluster's, plus the connection's. */
export interface RedisNodeInit extends RedisRendezvousInit {
  /** How long the first connection may take, ms. Default 5,000. */
  readonly connectTimeoutMs?: number;
  /** How long one command may wait for its answer, ms. Default 2,000. */
  readonly commandTimeoutMs?: number;
}

/** A node's part of the cluster (see {@link openRedisNode}). */
export interface RedisNode {
  /** Presence, names and signalling between nodes (give it to the rendezvous as `cluster`). */
  readonly rendezvous: RedisRendezvousCluster;
  /** The relay scope mirror over `inner` (the scope this node's TURN reads); made once. */
  relayScope(inner: RelayScope): RedisRelayScope;
  /** Stops the heartbeat, drains what is in flight (at most a second) and closes the connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Connects to Redis at `url` (twice: commands, subscriptions) and joins the cluster as `init.nodeId`.
 * Rejects with RedisUnavailableError (naming the redacted URL and `--redis`) when Redis does not answer.
 */
export async function openRedisNode(url: string, init: RedisNodeInit): Promise<RedisNode> {
  const timeouts = {
    ...(init.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: init.connectTimeoutMs }),
    ...(init.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: init.commandTimeoutMs }),
  };
  const commands = await connectRedis(url, { name: `nat-server:${init.nodeId}`, ...timeouts });
  let subscriber: Redis;
  try {
    subscriber = await connectRedis(url, { name: `nat-server:${init.nodeId}:sub`, ...timeouts });
  } catch (e) {
    commands.disconnect();
    throw e;
  }
  const rendezvous = new RedisRendezvousCluster({ commands, subscriber }, init);
  let scope: RedisRelayScope | undefined;
  let closing: Promise<void> | undefined;
  return {
    rendezvous,
    relayScope(inner) {
      scope ??= new RedisRelayScope(
        inner,
        { commands, subscriber },
        { instance: rendezvous.instance, ...(init.prefix === undefined ? {} : { prefix: init.prefix }) },
      );
      return scope;
    },
    close() {
      closing ??= (async () => {
        await rendezvous.close();
        subscriber.disconnect();
        await commands.quit().catch(() => commands.disconnect());
      })();
      return closing;
    },
  };
}
