import { availableParallelism } from 'node:os';
import type { TurnResult } from './allocations.js';

/** The figures of one `pnpm bench:cluster` mode, and the side-by-side table of both. */

export interface ModeResult {
  mode: 'cluster' | 'single';
  /** The machine's 1-minute load average when the offer phase began and ended (other work on the cores). */
  loadAverage: [number, number];
  nodes: number;
  peers: number;
  registered: number;
  registerFailed: number;
  registerError: string | undefined;
  registerSeconds: number;
  sent: number;
  delivered: number;
  /** Offers neither delivered nor answered within the drain. */
  lost: number;
  /** Peer connections that closed during the offer phase. */
  closed: number;
  /** Server answers to offers (and `sender-closed`), by code. */
  errors: Record<string, number>;
  offerSeconds: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** Sum over the nodes of (RSS after registering - before), per registered peer, bytes. */
  rssPerPeer: number;
  rssPerNode: number[];
  redisBytesPerPeer: number | undefined;
  redisCommandsPerOffer: number | undefined;
  redisPerCommand: Record<string, number> | undefined;
  cpu: { nodesCores: number; generatorsCores: number; redisCores: number | undefined; nodeMicrosPerOffer: number };
}

const fmt = (v: number | undefined, digits = 1): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

export function printTable(o: { peers: number; rate: number; duration: number }, results: readonly ModeResult[]): void {
  const cpus = availableParallelism();
  const cluster = results.find((r) => r.mode === 'cluster');
  const single = results.find((r) => r.mode === 'single');
  const rows: [string, (r: ModeResult) => number | undefined, number][] = [
    ['peers registered', (r) => r.registered, 0],
    ['registration, s', (r) => r.registerSeconds, 1],
    ['offers sent', (r) => r.sent, 0],
    ['offers delivered', (r) => r.delivered, 0],
    ['offer phase, s', (r) => r.offerSeconds, 1],
    ['latency p50, ms', (r) => r.latencyMs.p50, 2],
    ['latency p90, ms', (r) => r.latencyMs.p90, 2],
    ['latency p99, ms', (r) => r.latencyMs.p99, 2],
    ['latency max, ms', (r) => r.latencyMs.max, 1],
    ['node RSS per peer, KiB', (r) => r.rssPerPeer / 1024, 2],
    ['Redis memory per peer, B', (r) => r.redisBytesPerPeer, 0],
    ['Redis commands per offer', (r) => r.redisCommandsPerOffer, 2],
    ['nodes CPU, cores', (r) => r.cpu.nodesCores, 2],
    ['nodes CPU per offer, us', (r) => r.cpu.nodeMicrosPerOffer, 0],
    ['generators CPU, cores', (r) => r.cpu.generatorsCores, 2],
    ['redis-server CPU, cores', (r) => r.cpu.redisCores, 2],
  ];
  const head = `${'bench:cluster'.padEnd(28)}${cluster ? `${`cluster (${cluster.nodes} + Redis)`.padStart(20)}` : ''}${single ? 'single node'.padStart(16) : ''}${cluster && single ? 'cluster/single'.padStart(16) : ''}`;
  const lines = [`${o.peers} peers, ${o.rate} offers/s for ${o.duration} s`, head];
  for (const [label, get, digits] of rows) {
    const c = cluster ? get(cluster) : undefined;
    const s = single ? get(single) : undefined;
    const ratio = c !== undefined && s !== undefined && s !== 0 ? c / s : undefined;
    lines.push(
      `${label.padEnd(28)}${cluster ? fmt(c, digits).padStart(20) : ''}${single ? fmt(s, digits).padStart(16) : ''}${cluster && single ? fmt(ratio, 2).padStart(16) : ''}`,
    );
  }
  for (const r of results) {
    lines.push(`${r.mode}: load average ${r.loadAverage.map((l) => l.toFixed(1)).join(' -> ')} during the offer phase (${cpus} cores)`);
    const errors = Object.entries(r.errors);
    if (errors.length > 0 || r.lost > 0 || r.closed > 0 || r.registerFailed > 0)
      lines.push(
        `${r.mode}: ${r.registerFailed} registrations failed${r.registerError ? ` (${r.registerError})` : ''}, ${r.lost} offers lost, ${r.closed} connections closed, errors ${JSON.stringify(r.errors)}`,
      );
    if (r.redisPerCommand !== undefined) {
      const top = Object.entries(r.redisPerCommand)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`);
      lines.push(`${r.mode}: Redis commands per offer by command: ${top.join(', ') || '-'}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function printTurn(t: TurnResult): void {
  const mib = (b: number): string => (b / 1048576).toFixed(1);
  const lines = [
    `TURN allocations on one node (each with a channel bound): ${t.allocations} made in ${t.seconds.toFixed(1)} s, ${t.failed} failed${t.firstError ? ` (${t.firstError})` : ''}`,
    `node RSS ${mib(t.rssBefore)} MiB -> ${mib(t.rssAfter)} MiB: ${(t.rssPerAllocation / 1024).toFixed(2)} KiB per allocation`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
