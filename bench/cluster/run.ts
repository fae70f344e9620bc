/**
 * `pnpm bench:cluster`: the signalling load of issue 18 on this machine. --peers simulated peers
 * (peers.ts: real WebSockets, real Ed25519 registration, no ICE) register across --nodes
 * nat-server nodes that share one redis-server (`--redis URL --node-id ID`), then --rate offers/s
 * go between random pairs of peers on different nodes for --duration seconds. Then the same on
 * one node without Redis. Printed side by side, with the ratio cluster / single:
 *
 * - signalling latency p50/p99: offer handed to the sender's socket -> read at the target's
 *   (both in one load generator process, one clock);
 * - memory per registered peer: the nodes' RSS (/proc/PID/status) after registering minus
 *   before, divided by the peers; Redis: INFO used_memory the same way;
 * - Redis commands per offer: INFO total_commands_processed (and commandstats) over the offer
 *   phase, divided by the offers sent (presence refreshes in that window are counted too);
 * - CPU: cores' worth used by the nodes, the load generators and redis-server in the offer phase,
 *   and the nodes' CPU microseconds per offer.
 *
 * The nodes run with their default limits: each generator spreads its peers over loopback
 * source addresses 127.(100+G).X.Y, --per-source peers each (the default share is 64 per
 * address). Bounded: every phase has a deadline, every process is killed on the way out, and
 * all traffic stays on 127.0.0.0/8.
 *
 *   pnpm bench:cluster [-- --peers 10000 --rate 1000 --duration 30 --nodes 3 --json]
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type RedisServer, startRedis } from '../../tests/cluster/redis.js';
import { killChildrenOnExit, parseBenchArgs, stop, usageError } from '../harness.js';
import { type Generator, type Node, type RedisSample, cpuSecondsOf, forkGenerator, killOnExit, rssOf, sampleRedis, startNode } from './nodes.js';
import type { OfferedReport } from './peers.js';
import { type TurnResult, runTurnMode } from './allocations.js';
import { type ModeResult, printTable, printTurn } from './report.js';

const USAGE = `pnpm bench:cluster [-- options]     (or: tsx bench/cluster/run.ts [options])

Simulated peers (WebSockets, Ed25519 registration, no ICE) on --nodes nat-server nodes sharing
one redis-server, then on one node without Redis: offers between random pairs on different
nodes, signalling latency p50/p99, memory per peer, Redis commands per offer. 127.0.0.0/8 only.

  --peers N          simulated peers, 2-20000 (default 10000; 10000 is one node's cap)
  --rate N           offers per second, all generators together, 1-20000 (default 1000)
  --duration S       seconds of offering, at most 120 (default 30)
  --nodes N          nodes of the cluster run, 2-8 (default 3)
  --modes LIST       cluster,single,turn (default cluster,single; cluster needs nat-server --redis;
                     turn: --allocations TURN allocations on one node, memory per allocation)
  --allocations K    TURN allocations of the turn mode, 1-10000 (default 5000)
  --generators N     load generator processes, 1-8 (default 2: 5000 sockets each at 10000 peers)
  --per-source N     peers per loopback source address, 1-64 (default 32)
  --json             one JSON object instead of the table
  -h, --help`;

export interface Options {
  peers: number;
  rate: number;
  duration: number;
  nodes: number;
  modes: ('cluster' | 'single' | 'turn')[];
  allocations: number;
  generators: number;
  perSource: number;
  json: boolean;
}

function options(): Options {
  const a = parseBenchArgs('cluster', USAGE, {
    peers: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '30' },
    nodes: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'cluster,single' },
    allocations: { type: 'string', default: '5000' },
    generators: { type: 'string', default: '2' },
    'per-source': { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  });
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) usageError('cluster', USAGE, `--${name}: expected a whole number ${min}-${max}, got ${text}`);
    return n;
  };
  const modes = a.modes.split(',');
  if (modes.some((m) => m !== 'cluster' && m !== 'single' && m !== 'turn'))
    usageError('cluster', USAGE, `--modes: expected some of cluster, single and turn, got ${a.modes}`);
  const duration = Number(a.duration);
  if (!(duration > 0 && duration <= 120)) usageError('cluster', USAGE, `--duration: expected seconds in (0, 120], got ${a.duration}`);
  return {
    peers: int('peers', a.peers, 2, 20_000),
    rate: int('rate', a.rate, 1, 20_000),
    duration,
    nodes: int('nodes', a.nodes, 2, 8),
    modes: modes as Options['modes'],
    allocations: int('allocations', a.allocations, 1, 10_000),
    generators: int('generators', a.generators, 1, 8),
    perSource: int('per-source', a['per-source'], 1, 64),
    json: a.json,
  };
}

/** Splits `total` into `parts` whole shares that differ by at most one. */
const shares = (total: number, parts: number): number[] => Array.from({ length: parts }, (_, k) => Math.floor(total / parts) + (k < total % parts ? 1 : 0));

/** The offers of every generator together: latencies sorted, offers sent, errors by code. */
function sumOffers(off: readonly OfferedReport[]): { latencies: Float64Array; sent: number; errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  for (const r of off) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return { latencies: Float64Array.from(off.flatMap((r) => r.latencies)).sort(), sent: off.reduce((s, r) => s + r.sent, 0), errors };
}

/** Commands per offer by command between two samples (the runner's own INFO left out). */
function perCommandDelta(before: RedisSample, after: RedisSample, sent: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after.perCommand) {
    const d = v - (before.perCommand.get(k) ?? 0);
    if (d > 0 && k !== 'info') out[k] = d / sent;
  }
  return out;
}

const quantile = (sorted: Float64Array, q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);

async function runMode(o: Options, mode: 'cluster' | 'single'): Promise<ModeResult> {
  const nodeCount = mode === 'cluster' ? o.nodes : 1;
  let redis: RedisServer | undefined;
  const redisStops: (() => void)[] = [];
  const nodes: Node[] = [];
  const gens: Generator[] = [];
  try {
    if (mode === 'cluster') {
      redis = await startRedis();
      redisStops.push(await killOnExit(redis));
    }
    for (let k = 0; k < nodeCount; k++) nodes.push(await startNode(`n${k + 1}`, redis?.url));
    const urls = nodes.map((n) => n.url);
    for (let g = 0; g < o.generators; g++) gens.push(forkGenerator(o.perSource));
    const rssBefore = nodes.map((n) => rssOf(n.pid));
    const redisBefore = redis === undefined ? undefined : await sampleRedis(redis);
    const peerShares = shares(o.peers, o.generators);
    const t0 = performance.now();
    const reg = await Promise.all(gens.map((g, k) => g.register({ urls, peers: peerShares[k]!, generator: k, concurrency: 64 })));
    const registerSeconds = (performance.now() - t0) / 1000;
    const registered = reg.reduce((s, r) => s + r.registered, 0);
    if (registered < 2) throw new Error(`only ${registered} peers registered: ${reg.find((r) => r.firstError)?.firstError ?? '?'}`);
    const rssAfter = nodes.map((n) => rssOf(n.pid));
    const redisMid = redis === undefined ? undefined : await sampleRedis(redis);

    const cpu = (): { nodes: number; gens: number } => ({
      nodes: nodes.reduce((s, n) => s + cpuSecondsOf(n.pid), 0),
      gens: gens.reduce((s, g) => s + cpuSecondsOf(g.child.pid!), 0),
    });
    const cpu0 = cpu();
    const load0 = loadavg()[0]!;
    const w0 = performance.now();
    const rates = shares(o.rate, o.generators);
    const off = await Promise.all(gens.map((g, k) => g.offers({ rate: rates[k]!, duration: o.duration, drainMs: 10_000 })));
    const wall = (performance.now() - w0) / 1000;
    const cpu1 = cpu();
    const redisAfter = redis === undefined ? undefined : await sampleRedis(redis);

    const { latencies, sent, errors } = sumOffers(off);
    return {
      mode,
      loadAverage: [load0, loadavg()[0]!],
      nodes: nodeCount,
      peers: o.peers,
      registered,
      registerFailed: reg.reduce((s, r) => s + r.failed, 0),
      registerError: reg.find((r) => r.firstError !== undefined)?.firstError,
      registerSeconds,
      sent,
      delivered: off.reduce((s, r) => s + r.delivered, 0),
      lost: off.reduce((s, r) => s + r.lost, 0),
      closed: off.reduce((s, r) => s + r.closed, 0),
      errors,
      offerSeconds: Math.max(...off.map((r) => r.seconds)),
      latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
      rssPerPeer: rssAfter.reduce((s, v, k) => s + v - rssBefore[k]!, 0) / registered,
      rssPerNode: rssAfter,
      redisBytesPerPeer: redisBefore && redisMid ? (redisMid.usedMemory - redisBefore.usedMemory) / registered : undefined,
      redisCommandsPerOffer: redisMid && redisAfter ? (redisAfter.commands - redisMid.commands - 1) / sent : undefined,
      redisPerCommand: redisMid && redisAfter ? perCommandDelta(redisMid, redisAfter, sent) : undefined,
      cpu: {
        nodesCores: (cpu1.nodes - cpu0.nodes) / wall,
        generatorsCores: (cpu1.gens - cpu0.gens) / wall,
        redisCores: redisMid && redisAfter ? (redisAfter.cpuSeconds - redisMid.cpuSeconds) / wall : undefined,
        nodeMicrosPerOffer: ((cpu1.nodes - cpu0.nodes) / sent) * 1e6,
      },
    };
  } finally {
    await Promise.all(gens.map((g) => g.close()));
    await Promise.all(nodes.map((n) => stop(n.started)));
    await redis?.stop();
    for (const f of redisStops) f();
  }
}

async function main(): Promise<void> {
  const o = options();
  killChildrenOnExit('cluster', 'every node, generator and redis-server stopped');
  const results: ModeResult[] = [];
  let turn: TurnResult | undefined;
  for (const mode of o.modes) {
    if (mode === 'turn') {
      if (!o.json) process.stderr.write(`bench:cluster: turn: ${o.allocations} TURN allocations on one node\n`);
      turn = await runTurnMode(o.allocations, o.perSource);
      continue;
    }
    if (!o.json)
      process.stderr.write(`bench:cluster: ${mode}: ${o.peers} peers on ${mode === 'cluster' ? o.nodes : 1} node(s), ${o.rate} offers/s for ${o.duration} s\n`);
    results.push(await runMode(o, mode));
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ options: o, results, turn })}\n`);
  else {
    if (results.length > 0) printTable(o, results);
    if (turn) printTurn(turn);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cluster: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
