/**
 * `pnpm bench:cluster` at CI size: the runner (bench/cluster/run.ts --json) with a few hundred
 * simulated peers for a few seconds, started as pnpm starts it. Its figures must come out: every
 * peer registered, every offer sent delivered (none refused, none lost), finite latencies, memory
 * per peer and per TURN allocation read from the node's /proc. The servers are the real built
 * nat-server (and Debian's redis-server in the cluster mode), on 127.0.0.0/8.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX_CLI = createRequire(import.meta.url).resolve('tsx/cli');

/** What the test reads of the runner's ModeResult (bench/cluster/report.ts). */
interface ModeResult {
  mode: string;
  nodes: number;
  registered: number;
  registerFailed: number;
  sent: number;
  delivered: number;
  lost: number;
  closed: number;
  errors: Record<string, number>;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  rssPerPeer: number;
  redisCommandsPerOffer?: number;
  redisBytesPerPeer?: number;
  cpu: { nodeMicrosPerOffer: number };
}

/** ... and of its TurnResult (bench/cluster/allocations.ts). */
interface TurnResult {
  allocations: number;
  failed: number;
  rssPerAllocation: number;
}

interface Report {
  results: ModeResult[];
  turn?: TurnResult;
}

/** Runs the runner with `args` (after pnpm's `--`) and parses its one JSON line. */
function runBench(args: readonly string[]): Promise<Report> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [TSX_CLI, 'bench/cluster/run.ts', '--', ...args, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    // A cut-off, not a speed check: on a loaded machine (other test files, builds) registering
    // 300 peers and allocating 200 took over 50 s once; on a quiet one the runs take 6-15 s.
    const timer = setTimeout(() => child.kill('SIGTERM'), 150_000);
    child.once('error', rej);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return rej(new Error(`bench:cluster exited ${code}:\n${stderr}\n${stdout}`));
      try {
        res(JSON.parse(stdout) as Report);
      } catch (e) {
        rej(new Error(`bench:cluster printed no JSON (${(e as Error).message}):\n${stdout}\n${stderr}`));
      }
    });
  });
}

function expectAllDelivered(r: ModeResult, peers: number): void {
  expect(r.registered).toBe(peers);
  expect(r.registerFailed).toBe(0);
  expect(r.sent).toBeGreaterThan(0);
  expect(r.delivered).toBe(r.sent);
  expect(r.lost).toBe(0);
  expect(r.errors).toEqual({});
  expect(r.closed).toBe(0);
  for (const q of ['p50', 'p90', 'p99', 'max'] as const) expect(Number.isFinite(r.latencyMs[q]) && r.latencyMs[q] >= 0).toBe(true);
  expect(r.latencyMs.p50).toBeLessThanOrEqual(r.latencyMs.p99);
  expect(r.latencyMs.p99).toBeLessThanOrEqual(r.latencyMs.max);
  expect(Number.isFinite(r.rssPerPeer)).toBe(true);
  expect(Number.isFinite(r.cpu.nodeMicrosPerOffer) && r.cpu.nodeMicrosPerOffer > 0).toBe(true);
}

test.concurrent(
  'one node: 300 peers, 100 offers/s for 2 s, all delivered; 200 TURN allocations',
  async () => {
    const report = await runBench([
      '--modes',
      'single,turn',
      '--peers',
      '300',
      '--rate',
      '100',
      '--duration',
      '2',
      '--generators',
      '1',
      '--allocations',
      '200',
    ]);
    expect(report.results.map((r) => r.mode)).toEqual(['single']);
    const single = report.results[0]!;
    expectAllDelivered(single, 300);
    expect(single.sent).toBe(200);
    expect(single.nodes).toBe(1);
    expect(single.redisCommandsPerOffer).toBeUndefined();
    expect(report.turn?.allocations).toBe(200);
    expect(report.turn?.failed).toBe(0);
    expect(Number.isFinite(report.turn?.rssPerAllocation)).toBe(true);
  },
  170_000,
);

test.concurrent(
  'three nodes sharing a redis-server: 300 peers, 100 offers/s between nodes for 2 s, all delivered, Redis commands counted',
  async () => {
    const report = await runBench(['--modes', 'cluster', '--nodes', '3', '--peers', '300', '--rate', '100', '--duration', '2', '--generators', '1']);
    expect(report.results.map((r) => r.mode)).toEqual(['cluster']);
    const cluster = report.results[0]!;
    expectAllDelivered(cluster, 300);
    expect(cluster.sent).toBe(200);
    expect(cluster.nodes).toBe(3);
    // Every offer went between nodes, through Redis: at least one command each.
    expect(cluster.redisCommandsPerOffer).toBeGreaterThanOrEqual(1);
    expect(Number.isFinite(cluster.redisBytesPerPeer) && cluster.redisBytesPerPeer! > 0).toBe(true);
  },
  170_000,
);
