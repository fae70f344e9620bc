/**
 * How `nat-server --workers N` divides one configuration among N worker processes (pure).
 *
 * - TURN users are sharded: every allocation of a user (the REST API expiry stripped, as the
 *   quota counts it) lives on worker `shardOf(user, N)`, so a user's quota (and an anonymous
 *   peer's) is counted in one place and holds exactly across workers.
 * - Every other cap is a pool of the whole server: it is divided (worker k gets `shareOf`), so
 *   the sum over workers never exceeds the configured figure: totalQuota, sourceQuota, the
 *   anonymous tier's totals, TCP/TLS connections (overall and per source), the per-source STUN
 *   rate. A source whose users shard to one worker can meet its share there before the
 *   configured figure is reached on the server as a whole (never after).
 * - The relay port range is cut into N slices, one per worker: workers never race for a port.
 */
import { availableParallelism } from 'node:os';
import { quotaUser } from '@nat/server';
import type { ServerConfig } from '../config.js';

/** Most workers (`--workers`). */
export const MAX_WORKERS = 64;

/** Worker k's share of a pool of `total` divided among `n` workers: the shares add up to `total`. */
export function shareOf(total: number, n: number, k: number): number {
  return Math.floor(total / n) + (k < total % n ? 1 : 0);
}

/** The worker that owns `username`'s allocations (FNV-1a of the quota user, modulo `n`). */
export function shardOf(username: string, n: number): number {
  const user = quotaUser(username);
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % n;
}

const isLoopback = (ip: string): boolean => ip === '::1' || ip.startsWith('127.');

/**
 * The number of workers a configuration runs: `workers` when a number; `auto` (the default) is
 * one per core, except on a loopback-only server (a demo, a test, a readme recipe), which stays
 * one process: nothing there gains from more cores, and its start-up and output stay as they were.
 */
export function workerCount(
  config: Pick<ServerConfig, 'workers' | 'listen' | 'tlsPort' | 'rendezvousPort'> & Partial<Pick<ServerConfig, 'alternateOver'>>,
  cores: number = availableParallelism(),
): number {
  if (config.workers !== 'auto') return config.workers;
  if (config.listen.every(isLoopback)) return 1;
  // Load spreading between nodes (--alternate-over) runs in one process per node for now (cluster/config.ts).
  if (config.alternateOver !== undefined) return 1;
  // The TLS port also carries the rendezvous (one port for restrictive networks), which lives in
  // one process: until the workers hand such connections to it, the server stays one process.
  if (oneTlsPort(config)) return 1;
  return Math.max(1, Math.min(cores, MAX_WORKERS));
}

/** Whether the TLS port serves the rendezvous (wss:) and expose control as well as TURN. */
export const oneTlsPort = (c: Pick<ServerConfig, 'tlsPort' | 'rendezvousPort'>): boolean => c.tlsPort !== undefined && c.rendezvousPort !== undefined;

/** Worker k's configuration: the pools divided, the relay ports sliced (see the module comment). */
export function workerConfig(c: ServerConfig, n: number, k: number): ServerConfig {
  const span = c.maxPort - c.minPort + 1;
  const minPort = c.minPort + Math.floor((span * k) / n);
  const maxPort = c.minPort + Math.floor((span * (k + 1)) / n) - 1;
  const rate =
    c.rateLimit.perSecond === 0
      ? c.rateLimit
      : { perSecond: c.rateLimit.perSecond / n, burst: Math.max(1, (c.rateLimit.burst ?? c.rateLimit.perSecond * 2) / n) };
  return {
    ...c,
    minPort,
    maxPort: Math.max(minPort, maxPort),
    totalQuota: shareOf(c.totalQuota, n, k),
    sourceQuota: shareOf(c.sourceQuota, n, k),
    anonymousRelayTotal: shareOf(c.anonymousRelayTotal, n, k),
    anonymousRelayTotalBandwidth: c.anonymousRelayTotalBandwidth === 0 ? 0 : Math.max(1, shareOf(c.anonymousRelayTotalBandwidth, n, k)),
    maxConnections: Math.max(1, shareOf(c.maxConnections, n, k)),
    maxConnectionsPerSource: Math.max(1, shareOf(c.maxConnectionsPerSource, n, k)),
    rateLimit: rate,
  };
}
