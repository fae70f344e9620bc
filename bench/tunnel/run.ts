/**
 * Tunnel benchmark: bytes through `nat connect` -> peer link -> `nat expose` -> a TCP sink, on a
 * direct loopback path and relayed through nat-server's TURN, against plain TCP on loopback and
 * the raw transport alone (udx-native streams between two sockets, no shim, no encryption).
 * Prints MB/s, CPU seconds per GB (every process involved: the bench's own TCP ends, both nat
 * processes, and nat-server for the relayed run) and the ratios the targets are stated in.
 * Traffic stays on 127.0.0.1; every process started here is killed on the way out.
 *
 *   pnpm bench:tunnel [-- --mb 200 --runs 1 --json --targets tcp,udx,direct,relay --profile DIR]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type AddressInfo, type Server, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, usageError } from '../harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const NAT = join(ROOT, 'apps/cli/dist/main.js');
const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');
const HOST = '127.0.0.1';
const CLK_TCK = 100;
const ALL_TARGETS = ['tcp', 'udx', 'direct', 'relay'] as const;

const USAGE = `pnpm bench:tunnel [-- options]     (or: tsx bench/tunnel/run.ts [options])

Bytes one way through nat connect -> peer link -> nat expose on loopback, against plain TCP and
udx-native alone.

Options:
  --mb N          megabytes sent one way per target and run (default 200)
  --runs N        runs of every target; the best of them is reported (default 1)
  --targets LIST  comma-separated subset of ${ALL_TARGETS.join(',')} (default all)
  --profile DIR   the nat and nat-server processes write V8 CPU profiles into DIR
  --json          one JSON object instead of the table
  -h, --help`;

const args = parseBenchArgs('tunnel', USAGE, {
  mb: { type: 'string', default: '200' },
  runs: { type: 'string', default: '1' },
  targets: { type: 'string', default: ALL_TARGETS.join(',') },
  json: { type: 'boolean', default: false },
  profile: { type: 'string' },
});
const usage = (message: string): never => usageError('tunnel', USAGE, message);
if (!(Number(args.mb) > 0)) usage(`--mb: expected a positive number, got ${JSON.stringify(args.mb)}`);
if (!(Number.isInteger(Number(args.runs)) && Number(args.runs) >= 1)) usage(`--runs: expected an integer >= 1, got ${JSON.stringify(args.runs)}`);
const BYTES = Number(args.mb) * 1024 * 1024;
const RUNS = Number(args.runs);
const TARGETS = new Set(
  args.targets
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== ''),
);
for (const t of TARGETS)
  if (!(ALL_TARGETS as readonly string[]).includes(t)) usage(`--targets: unknown target ${JSON.stringify(t)} (choose from ${ALL_TARGETS.join(', ')})`);
if (TARGETS.size === 0) usage('--targets: name at least one target');

const children = new Set<ChildProcess>();
const tmp = mkdtempSync(join(tmpdir(), 'nat-bench-tunnel-'));
const cleanup = (): void => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** utime + stime of a process, seconds (Linux /proc). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
const selfCpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, HOST, r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function start(cmd: string, argv: string[]): { child: ChildProcess; lines: AsyncIterator<string>; stderr: () => string } {
  const prof = args.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(args.profile)];
  const child = spawn(process.execPath, [...prof, cmd, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let err = '';
  child.stderr!.on('data', (d) => (err += String(d)));
  const queue: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += String(d);
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else queue.push(line);
    }
  });
  const lines: AsyncIterator<string> = {
    next: () =>
      new Promise((r) => {
        const l = queue.shift();
        if (l !== undefined) r({ value: l, done: false });
        else waiters.push((x) => r({ value: x, done: false }));
      }),
  };
  return { child, lines, stderr: () => err };
}

async function waitEvent(p: ReturnType<typeof start>, event: string, ms = 20_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${event} event; stderr: ${p.stderr()}`);
    const r = await Promise.race([p.lines.next(), new Promise<undefined>((res) => setTimeout(res, left))]);
    if (r === undefined) throw new Error(`no ${event} event; stderr: ${p.stderr()}`);
    const j = JSON.parse(r.value as string) as Record<string, unknown>;
    if (j.event === event) return j;
  }
}

/** A TCP sink that counts bytes and resolves when `BYTES` arrived. */
async function sink(): Promise<{ server: Server; port: number; done: () => Promise<void> }> {
  let resolveDone!: () => void;
  let got = 0;
  const server = createServer((s) => {
    s.on('data', (d) => {
      got += d.length;
      if (got >= BYTES) resolveDone();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    done: () => {
      got = 0;
      return new Promise<void>((r) => (resolveDone = r));
    },
  };
}

/** Pushes BYTES into host:port; resolves with seconds until the sink had them all. */
async function push(port: number, arrived: Promise<void>): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const s = connect({ host: HOST, port });
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('error', j);
  });
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((r) => {
    const pump = (): void => {
      while (sent < BYTES) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      r();
    };
    pump();
  });
  await arrived;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return secs;
}

interface Row {
  target: string;
  mbps: number;
  cpuSecPerGb: number;
  seconds: number;
  /** CPU s/GB of each process of a tunnel target: where the time goes. */
  cpuSecPerGbBy?: Record<string, number>;
}

const perGb = (cpu: number): number => Math.round((cpu / (BYTES / 2 ** 30)) * 10) / 10;
const row = (target: string, secs: number, cpu: number, by?: Record<string, number>): Row => ({
  target,
  seconds: Math.round(secs * 100) / 100,
  mbps: Math.round((BYTES / 1048576 / secs) * 10) / 10,
  cpuSecPerGb: perGb(cpu),
  ...(by === undefined ? {} : { cpuSecPerGbBy: Object.fromEntries(Object.entries(by).map(([k, v]) => [k, perGb(v)])) }),
});

async function benchTcp(): Promise<Row> {
  const k = await sink();
  const c0 = selfCpu();
  const secs = await push(k.port, k.done());
  const cpu = selfCpu() - c0;
  k.server.close();
  return row('plain TCP (loopback)', secs, cpu);
}

async function benchUdx(): Promise<Row> {
  const require = createRequire(join(ROOT, 'packages/client/package.json'));
  const UDX = require('udx-native') as new () => {
    createSocket(): { bind(p: number, h: string): void; address(): { port: number }; close(): Promise<void> };
    createStream(id: number): {
      connect(s: unknown, id: number, port: number, host: string): void;
      write(b: Buffer): boolean;
      once(e: string, f: () => void): void;
      on(e: string, f: (d: Buffer) => void): void;
      destroy(): void;
    };
  };
  const u = new UDX();
  const a = u.createSocket();
  const b = u.createSocket();
  a.bind(0, HOST);
  b.bind(0, HOST);
  const s1 = u.createStream(1);
  const s2 = u.createStream(2);
  s1.connect(a, 2, b.address().port, HOST);
  s2.connect(b, 1, a.address().port, HOST);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const c0 = selfCpu();
  const t0 = performance.now();
  await new Promise<void>((r) => {
    let got = 0;
    s2.on('data', (d) => {
      got += d.length;
      if (got >= BYTES) r();
    });
    let sent = 0;
    const pump = (): void => {
      while (sent < BYTES) {
        sent += chunk.length;
        if (!s1.write(chunk)) return void s1.once('drain', pump);
      }
    };
    pump();
  });
  const secs = (performance.now() - t0) / 1000;
  const cpu = selfCpu() - c0;
  s1.destroy();
  s2.destroy();
  await Promise.all([a.close(), b.close()]);
  return row('raw transport (udx-native, no shim, no crypto)', secs, cpu);
}

async function benchTunnel(relay: boolean, n: number): Promise<Row> {
  const turnPort = await freePort();
  const rvPort = await freePort();
  const server = start(NAT_SERVER, [
    '--listen',
    HOST,
    '--port',
    String(turnPort),
    '--no-alt-port',
    '--no-tcp',
    '--rate-limit',
    '0',
    '--realm',
    'bench',
    '--auth-secret',
    'bench-secret',
    '--allow-peer',
    '127.0.0.0/8',
    '--rendezvous-port',
    String(rvPort),
    '--log-level',
    'warn',
  ]);
  const url = `ws://${HOST}:${rvPort}/`;
  // wait for the rendezvous port
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: HOST, port: rvPort });
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) break;
    if (i > 100) throw new Error(`nat-server did not start: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const k = await sink();
  const mode = relay ? ['--relay-only'] : ['--host-address', HOST];
  const name = `bench-${n}`;
  const expose = start(NAT, [
    'expose',
    `${HOST}:${k.port}`,
    '--name',
    name,
    '--allow-any',
    '--rendezvous',
    url,
    '--identity',
    join(tmp, `e${n}.pem`),
    ...mode,
    '--json',
  ]);
  await waitEvent(expose, 'ready');
  const conn = start(NAT, ['connect', name, '--listen', `${HOST}:0`, '--rendezvous', url, '--identity', join(tmp, `c${n}.pem`), ...mode, '--json']);
  const listening = await waitEvent(conn, 'listening');
  const path = await waitEvent(conn, 'path');
  await waitEvent(conn, 'link');
  const port = Number(String(listening.listen).split(':')[1]);
  const pids = [expose.child.pid!, conn.child.pid!, server.child.pid!];
  const before = pids.map(cpuOf);
  const c0 = selfCpu();
  const secs = await push(port, k.done());
  const self = selfCpu() - c0;
  const spent = pids.map((p, i) => cpuOf(p) - before[i]!);
  const cpu = self + spent.reduce((s, v) => s + v, 0);
  const by = { 'bench TCP ends': self, 'nat connect': spent[1]!, 'nat expose': spent[0]!, 'nat-server': spent[2]! };
  await Promise.all(
    [conn, expose, server].map(
      (p) =>
        new Promise<void>((r) => {
          if (p.child.exitCode !== null) return r();
          p.child.once('exit', () => r());
          p.child.kill('SIGINT');
          setTimeout(() => p.child.kill('SIGKILL'), 3000).unref();
        }),
    ),
  );
  k.server.close();
  return row(`tunnel, ${path.path} (${relay ? 'relay-only: through nat-server TURN' : 'host candidates on 127.0.0.1'})`, secs, cpu, by);
}

const results: Row[][] = [];
for (let r = 0; r < RUNS; r++) {
  const rows: Row[] = [];
  if (TARGETS.has('tcp')) rows.push(await benchTcp());
  if (TARGETS.has('udx')) rows.push(await benchUdx());
  if (TARGETS.has('direct')) rows.push(await benchTunnel(false, r * 2));
  if (TARGETS.has('relay')) rows.push(await benchTunnel(true, r * 2 + 1));
  results.push(rows);
}
const best = results[0]!.map((_, i) => results.map((rs) => rs[i]!).sort((a, b) => b.mbps - a.mbps)[0]!);
const find = (prefix: string): Row | undefined => best.find((r) => r.target.startsWith(prefix));
const direct = find('tunnel, direct');
const relayed = find('tunnel, relay');
const udx = find('raw transport');
const ratios = {
  directVsRawTransport: direct && udx ? Math.round((direct.mbps / udx.mbps) * 100) / 100 : null,
  relayVsDirect: direct && relayed ? Math.round((relayed.mbps / direct.mbps) * 100) / 100 : null,
  directVsTcp: direct && find('plain TCP') ? Math.round((direct.mbps / find('plain TCP')!.mbps) * 1000) / 1000 : null,
};
if (args.json) process.stdout.write(`${JSON.stringify({ mb: Number(args.mb), runs: RUNS, results: best, ratios })}\n`);
else {
  process.stdout.write(`${Number(args.mb)} MB one way, best of ${RUNS} run(s)\n\n`);
  process.stdout.write('| what | MB/s | CPU s/GB | s |\n|---|---:|---:|---:|\n');
  for (const r of best) process.stdout.write(`| ${r.target} | ${r.mbps} | ${r.cpuSecPerGb} | ${r.seconds} |\n`);
  for (const r of best) {
    if (r.cpuSecPerGbBy !== undefined)
      process.stdout.write(
        `\n${r.target}, CPU s/GB by process: ${Object.entries(r.cpuSecPerGbBy)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
  }
  process.stdout.write('\n');
  process.stdout.write(
    `\nratios: direct/raw transport ${ratios.directVsRawTransport ?? '-'} (target >= 0.6), relay/direct ${ratios.relayVsDirect ?? '-'} (target >= 0.5), direct/TCP ${ratios.directVsTcp ?? '-'}; target direct >= 100 MB/s\n`,
  );
}
cleanup();
process.exit(0);
