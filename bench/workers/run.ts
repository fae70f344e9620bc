/**
 * `nat-server --workers N` against coturn with the same number of relay threads (`turnserver -m
 * N`), in one run: STUN Binding responses/s, relayed ChannelData packets/s, and the server's CPU
 * microseconds per packet (all its processes' utime + stime from /proc/PID/stat over the measured
 * window: the steadiest figure on a small shared machine, where the load generators take cores
 * too). Ratios against coturn at the same N are printed.
 *
 * STUN: one bench/stun load generator (64 sockets) at the server's port; every worker (coturn:
 * every relay thread) answers on it. Relay: one bench/turn load generator (one pair of TURN
 * clients, ChannelData) per worker or thread. nat-server's generators allocate at each worker's
 * own TURN port with a user that worker owns (the generator does not follow 300 Try Alternate:
 * the redirect itself is tested in tests/turn/workers.test.ts); coturn's all use its one port.
 *
 * Bounded: every measurement is --warmup + --duration seconds; every process started here is
 * killed on the way out. Traffic stays on 127.0.0.0/8.
 *
 *   pnpm bench:workers [-- --workers 1,2 --duration 5 --phases stun,relay --json]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shardOf } from '../../apps/server/dist/workers/plan.js';
import {
  LISTEN_IP,
  ROOT,
  type Started,
  TICKS_PER_SECOND,
  parseBenchArgs,
  usageError,
  freePort,
  killChildrenOnExit,
  onPath,
  sleep,
  start,
  stop,
  waitForStun,
} from '../harness.js';

const BUILD = join(ROOT, 'bench/.build');
const STUN_GEN = { src: join(ROOT, 'bench/stun/loadgen.c'), bin: join(BUILD, 'loadgen') };
const TURN_GEN = { src: join(ROOT, 'bench/turn/loadgen.c'), bin: join(BUILD, 'turn-loadgen') };
const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');
const PASSWORD = 'bench';
const REALM = 'bench';

interface Options {
  workers: number[];
  phases: string[];
  duration: number;
  warmup: number;
  json: boolean;
}

const USAGE = `pnpm bench:workers [-- options]     (or: tsx bench/workers/run.ts [options])

nat-server --workers N against coturn --relay-threads N, on 127.0.0.0/8: STUN responses/s,
relayed ChannelData packets/s, the server's CPU microseconds per packet.

  --workers LIST     worker (relay thread) counts to measure, each 1-8 (default 1,2)
  --phases LIST      stun,relay (default both)
  --duration S       measured seconds per measurement, at most 60 (default 5)
  --warmup S         seconds before measuring, at most 10 (default 1)
  --json             one JSON object instead of the table
  -h, --help`;

function options(): Options {
  const a = parseBenchArgs('workers', USAGE, {
    workers: { type: 'string', default: '1,2' },
    phases: { type: 'string', default: 'stun,relay' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  });
  const o: Options = {
    workers: a.workers.split(',').map(Number),
    phases: a.phases.split(','),
    duration: Number(a.duration),
    warmup: Number(a.warmup),
    json: a.json,
  };
  if (o.workers.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) usageError('workers', USAGE, `--workers: expected whole numbers 1-8, got ${a.workers}`);
  if (o.phases.some((p) => p !== 'stun' && p !== 'relay')) usageError('workers', USAGE, `--phases: expected stun and/or relay, got ${a.phases}`);
  if (!(o.duration > 0 && o.duration <= 60)) usageError('workers', USAGE, `--duration: expected seconds in (0, 60], got ${a.duration}`);
  if (!(o.warmup >= 0 && o.warmup <= 10)) usageError('workers', USAGE, `--warmup: expected seconds in [0, 10], got ${a.warmup}`);
  return o;
}

/** A running target: its port, the TURN ports to allocate at (with a user each), and its processes. */
interface Target {
  readonly label: string;
  readonly started: Started;
  readonly port: number;
  readonly relays: readonly { port: number; user: string }[];
  pids(): number[];
}

/** A user that `nat-server --workers n` keeps on worker k. */
function userOf(n: number, k: number): string {
  for (let i = 0; ; i++) if (shardOf(`bench${i}`, n) === k) return `bench${i}`;
}

async function startNat(n: number): Promise<Target> {
  const port = await freePort();
  const users = Array.from({ length: n }, (_, k) => userOf(n, k));
  const args = ['--workers', String(n), '--listen', LISTEN_IP, '--port', String(port), '--no-alt-port', '--no-tcp', '--realm', REALM];
  for (const u of users) args.push('--user', `${u}:${PASSWORD}`);
  args.push('--allow-peer', '127.0.0.0/8', '--rate-limit', '0', '--user-quota', '1000', '--source-quota', '1000', '--log-level', 'warn');
  const started = start(process.execPath, [NAT_SERVER, ...args]);
  let err = '';
  started.child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await waitForStun(port, started, `nat-server --workers ${n}`, 30_000);
  const deadline = Date.now() + 30_000;
  while (n > 1 && (err.match(/worker \d+ pid/g) ?? []).length < n && Date.now() < deadline) await sleep(50);
  const workers = [...err.matchAll(/worker (\d+) pid (\d+): TURN allocations on udp [\d.]+:(\d+)/g)].map((m) => ({
    k: Number(m[1]),
    pid: Number(m[2]),
    port: Number(m[3]),
  }));
  const relays = n === 1 ? [{ port, user: users[0]! }] : workers.map((w) => ({ port: w.port, user: users[w.k]! }));
  return { label: `nat-server --workers ${n}`, started, port, relays, pids: () => [started.child.pid!, ...workers.map((w) => w.pid)] };
}

async function startCoturn(n: number, tmp: string): Promise<Target> {
  const port = await freePort();
  const args = ['-n', '-m', String(n), '--no-cli', '--no-tls', '--no-dtls', '--no-tcp', '-L', LISTEN_IP, '--relay-ip', LISTEN_IP, '-p', String(port)];
  args.push('--lt-cred-mech', '--user', `bench:${PASSWORD}`, '--realm', REALM, '--allow-loopback-peers', '--min-port', '40000', '--max-port', '49999');
  args.push(
    '--pidfile',
    join(tmp, `turnserver-${port}.pid`),
    '--userdb',
    join(tmp, `turndb-${port}`),
    '--log-file',
    join(tmp, `turn-${port}.log`),
    '--simple-log',
  );
  const started = start('turnserver', args);
  await waitForStun(port, started, `coturn -m ${n}`, 30_000);
  const relays = Array.from({ length: n }, () => ({ port, user: 'bench' }));
  return { label: `coturn --relay-threads ${n}`, started, port, relays, pids: () => [started.child.pid!] };
}

/** utime + stime of these processes (all their threads), in ticks. */
function ticks(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone: counts nothing more
    }
  }
  return total;
}

interface Measured {
  target: string;
  phase: string;
  packetsPerSecond: number;
  cpuCores: number;
  usPerPacket: number;
  lost: number;
}

/** Runs load generators together, samples the server's CPU over their measured window. */
async function measure(t: Target, phase: string, gens: readonly string[][], o: Options): Promise<Measured> {
  const outs = gens.map((args) => {
    const s = start(args[0]!, args.slice(1));
    let out = '';
    s.child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    return { s, out: () => out };
  });
  await sleep(o.warmup * 1000 + 300);
  const t0 = ticks(t.pids());
  const w0 = performance.now();
  await sleep(o.duration * 1000 - 600);
  const cpu = (ticks(t.pids()) - t0) / TICKS_PER_SECOND;
  const wall = (performance.now() - w0) / 1000;
  await Promise.all(outs.map((g) => g.s.exited));
  const results = outs.map((g) => {
    const line = g.out().trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as { responses_per_second?: number; packets_per_second?: number; lost: number };
    } catch {
      throw new Error(`${t.label} ${phase}: the load generator printed no result: ${g.s.output()}`);
    }
  });
  const pps = results.reduce((n, r) => n + (r.responses_per_second ?? r.packets_per_second ?? 0), 0);
  const cores = cpu / wall;
  return {
    target: t.label,
    phase,
    packetsPerSecond: Math.round(pps),
    cpuCores: cores,
    usPerPacket: pps > 0 ? (cores * 1e6) / pps : NaN,
    lost: results.reduce((n, r) => n + r.lost, 0),
  };
}

function stunGens(t: Target, o: Options): string[][] {
  return [
    [
      STUN_GEN.bin,
      '--target',
      `${LISTEN_IP}:${t.port}`,
      '--sockets',
      '64',
      '--window',
      '4',
      '--duration',
      String(o.duration),
      '--warmup',
      String(o.warmup),
      '--label',
      t.label,
    ],
  ];
}

function relayGens(t: Target, o: Options): string[][] {
  return t.relays.map((r, i) => [
    TURN_GEN.bin,
    ...['--server', `${LISTEN_IP}:${r.port}`, '--mode', 'relay', '--pairs', '1', '--window', '64', '--user', r.user, '--password', PASSWORD],
    ...['--src', `127.0.${40 + i}.1`, '--duration', String(o.duration), '--warmup', String(o.warmup), '--label', t.label],
  ]);
}

function build(gen: { src: string; bin: string }): void {
  mkdirSync(BUILD, { recursive: true });
  if (existsSync(gen.bin) && statSync(gen.bin).mtimeMs >= statSync(gen.src).mtimeMs) return;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', gen.bin, gen.src, '-lm'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`could not compile ${gen.src} with gcc`);
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

async function main(): Promise<void> {
  const o = options();
  killChildrenOnExit('workers', 'every server and load generator killed');
  if (!onPath('turnserver')) throw new Error('turnserver (coturn) is not installed: apt-get install coturn');
  build(STUN_GEN);
  build(TURN_GEN);
  const tmp = mkdtempSync(join(tmpdir(), 'bench-workers-'));
  const rows: Measured[] = [];
  const loads = [`before: ${loadAverage()}`];
  try {
    for (const n of o.workers) {
      for (const make of [() => startNat(n), () => startCoturn(n, tmp)]) {
        const t = await make();
        try {
          if (o.phases.includes('stun')) rows.push(await measure(t, 'stun', stunGens(t, o), o));
          if (o.phases.includes('relay')) rows.push(await measure(t, 'relay', relayGens(t, o), o));
        } finally {
          await stop(t.started);
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  loads.push(`after: ${loadAverage()}`);
  report(rows, loads, o);
}

function report(rows: readonly Measured[], loads: readonly string[], o: Options): void {
  if (o.json) return void process.stdout.write(`${JSON.stringify({ rows, loadAverage: loads })}\n`);
  const coturnOf = (r: Measured): Measured | undefined =>
    rows.find((c) => c.phase === r.phase && c.target.startsWith('coturn') && c.target.endsWith(` ${r.target.split(' ').pop()}`));
  const lines = [`load average (1, 5, 15 min) ${loads.join('; ')}; ${o.duration} s per measurement`, ''];
  lines.push('phase  target                      packets/s   server cores   us/packet   vs coturn (rate, us/packet)');
  for (const r of rows) {
    const c = r.target.startsWith('nat') ? coturnOf(r) : undefined;
    const vs = c ? `${(r.packetsPerSecond / c.packetsPerSecond).toFixed(2)}x, ${(r.usPerPacket / c.usPerPacket).toFixed(2)}x` : '';
    lines.push(
      `${r.phase.padEnd(6)} ${r.target.padEnd(27)} ${String(r.packetsPerSecond).padStart(9)}   ${r.cpuCores.toFixed(2).padStart(12)}   ${r.usPerPacket.toFixed(1).padStart(9)}   ${vs}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
