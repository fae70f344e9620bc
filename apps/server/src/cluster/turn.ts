/**
 * TURN across nodes (issue 18), wired from the config: users and REST secrets from coturn's
 * Redis user database (`redisUserdb`), allocation quotas counted in Redis (`redis`), and load
 * published in Redis for ALTERNATE-SERVER redirects (`redis` with `alternateOver`).
 * A node without these keys starts none of it.
 */
import { defaultNodeId } from './rendezvous.js';
import type { TransportAddress } from '@nat/protocol';
import { RedisTurnQuota, TurnLoadBoard, coturnUserDb, redactRedisUrl, redisUrlOf } from '@nat/redis';
import { type AlternateServerOf, type ServerEventHub, type ServerMetrics, type StunServer, type TurnAuthenticator, type TurnClusterQuota } from '@nat/server';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { ConfigError, type ServerConfig } from '../config.js';
import { connectOrExit, redisErrorLog } from './redis-parts.js';
import { advertisedIp, externalOf } from '../external-ip.js';

/** What TURN takes from the cluster (see `toServerInit`). */
export interface TurnClusterParts {
  /** Users and REST secrets from coturn's Redis user database. */
  readonly users?: TurnAuthenticator;
  /** Allocation quotas counted across the nodes. */
  readonly clusterQuota?: TurnClusterQuota;
  /** A less loaded node for new Allocates, once this one is at `alternateOver`. */
  readonly alternate?: AlternateServerOf;
}

/** The running cluster parts of one node. */
export interface TurnCluster {
  readonly parts: TurnClusterParts;
  /** The server is up: publish its load (with `alternateOver`), and add the metrics. */
  attach(stun: StunServer, events: ServerEventHub, metrics: ServerMetrics): void;
  close(): Promise<void>;
}

type Use = 'userdb' | 'quota' | 'load';

/** This node's id: `nodeId`, or the host name and process id. */
export function nodeIdOf(config: Pick<ServerConfig, 'nodeId' | 'rendezvousPort'>): string {
  return config.nodeId ?? defaultNodeId(config);
}

/** Connects what the configuration asks for; undefined when it asks for nothing (one node, no Redis). */
export async function startTurnClusterOf(config: ServerConfig, logger: Logger): Promise<TurnCluster | undefined> {
  if (config.realm === undefined || (config.redis === undefined && config.redisUserdb === undefined)) return undefined;
  const { counts: errors, onError } = redisErrorLog<Use>(logger, ['userdb', 'quota', 'load']);
  const nodeId = nodeIdOf(config);
  const userdbUrl = config.redisUserdb === undefined ? undefined : redisUrlOf(config.redisUserdb);
  if (config.redisUserdb !== undefined && userdbUrl === undefined)
    throw new ConfigError("--redis-userdb: expected a redis:// URL or coturn's connection string (host=... port=... dbname=... password=...)");
  const userdb = userdbUrl === undefined ? undefined : await connectOrExit(userdbUrl, `nat-server ${nodeId} userdb`, '--redis-userdb');
  const shared =
    config.redis === undefined
      ? undefined
      : await connectOrExit(config.redis, `nat-server ${nodeId} turn`, '--redis').catch((e: unknown) => {
          userdb?.disconnect();
          throw e;
        });
  const users = userdb && coturnUserDb(userdb, { cacheTtlMs: config.redisUserdbCacheTtl * 1000, onError: onError('userdb') });
  const quota =
    shared &&
    new RedisTurnQuota(shared, {
      nodeId,
      userQuota: config.userQuota,
      sourceQuota: config.sourceQuota,
      totalQuota: config.totalQuota,
      leaseMs: config.quotaLease * 1000,
      onError: onError('quota'),
    });
  let board: TurnLoadBoard | undefined;
  const alternate: AlternateServerOf = () => board?.alternate();
  logger.info({ node: nodeId, redis: config.redis && redactRedisUrl(config.redis), userdb: userdbUrl && redactRedisUrl(userdbUrl) }, 'cluster state in redis');
  return {
    parts: { ...(users ? { users } : {}), ...(quota ? { clusterQuota: quota } : {}), ...(config.alternateOver === undefined ? {} : { alternate }) },
    attach(stun, events, metrics) {
      let relayedBytes = 0;
      events.subscribe((e) => {
        if (e.type === 'relayed') relayedBytes += e.bytesToPeer + e.bytesToClient;
      });
      if (shared !== undefined) {
        board = new TurnLoadBoard(shared, {
          nodeId,
          address: turnAddressOf(config, stun),
          local: () => ({ allocations: stun.stats().turn?.allocations ?? 0, relayedBytes }),
          alternateOver: config.alternateOver ?? Number.MAX_SAFE_INTEGER,
          onError: onError('load'),
        });
        void board.publish();
      }
      addClusterMetrics(metrics, errors, () => board?.nodes ?? []);
    },
    async close() {
      await board?.close();
      await quota?.close();
      shared?.disconnect();
      userdb?.disconnect();
    },
  };
}

/** Where clients redirected to this node go: its primary UDP listener (its public address behind a 1:1 NAT). */
function turnAddressOf(config: ServerConfig, stun: StunServer): TransportAddress {
  const l = stun.listeners.find((x) => x.transport === 'udp' && x.role === 'PP') ?? stun.listeners[0]!;
  return { ...l.address, address: advertisedIp(externalOf(config), l.address.address) };
}

/** `nat_redis_errors_total{use}` and `nat_cluster_turn_*{node}` (the loads this node last read). */
function addClusterMetrics(
  metrics: ServerMetrics,
  errors: Record<Use, number>,
  nodes: () => readonly { node: string; allocations: number; bytesPerSecond: number; cpu: number }[],
): void {
  const registers = [metrics.registry];
  new Counter<'use'>({
    name: 'nat_redis_errors_total',
    help: 'Redis commands that failed, by use (userdb: TURN users, quota: cluster quotas, load: load board)',
    labelNames: ['use'],
    registers,
    collect(this: Counter<'use'>) {
      this.reset();
      for (const [use, n] of Object.entries(errors)) this.inc({ use }, n);
    },
  });
  const gauge = (name: string, help: string, read: (n: ReturnType<typeof nodes>[number]) => number): void => {
    new Gauge<'node'>({
      name,
      help,
      labelNames: ['node'],
      registers,
      collect(this: Gauge<'node'>) {
        this.reset();
        for (const n of nodes()) this.set({ node: n.node }, read(n));
      },
    });
  };
  gauge('nat_cluster_turn_allocations', 'TURN allocations of each live node, as published in Redis', (n) => n.allocations);
  gauge('nat_cluster_turn_relayed_bytes_per_second', 'Bytes relayed per second by each live node, as published in Redis', (n) => n.bytesPerSecond);
  gauge('nat_cluster_turn_cpu', 'CPU of each live node in cores, as published in Redis', (n) => n.cpu);
}
