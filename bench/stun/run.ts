/**
 * STUN server benchmark: nat-server vs coturn vs a bare node:dgram responder, side by side.
 *
 * For each target in turn: start the server pinned to one core, wait until it answers a Binding
 * request, flood it from the C load generator (bench/stun/loadgen.c) pinned to the other core,
 * stop the server. Prints a table and the ratios nat-server/bare-node and nat-server/coturn.
 * Traffic stays on 127.0.0.0/8; every process started here is killed on the way out.
 *
 *   pnpm bench:stun [-- --duration 5 --warmup 1 --sockets 8 --window 32 --runs 1
 *                       --targets nat-server,coturn,bare-node --json --profile DIR ...]
 *   (--help lists every option)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CpuSample,
  parseBenchArgs,
  LISTEN_IP,
  ROOT,
  cpuList,
  killAll,
  cpuShares,
  freePort,
  haveTaskset,
  killChildrenOnExit,
  onPath,
  pinned,
  sampleCpu,
  start,
  stop,
  waitForStun,
} from '../harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(ROOT, 'bench/.build');
const LOADGEN_SRC = join(HERE, 'loadgen.c');
const LOADGEN_BIN = join(BUILD, 'loadgen');
const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');
const BARE_SERVER = join(HERE, 'bare-server.ts');

const TARGETS = ['nat-server', 'coturn', 'bare-node'] as const;
type Target = (typeof TARGETS)[number];

/** One load generator result (the JSON line loadgen prints). */
interface LoadResult {
  label: string;
  target: string;
  sockets: number;
  window: number;
  seconds: number;
  responses: number;
  responses_per_second: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  sent: number;
  lost: number;
  late: number;
  bad: number;
  /** Cores' worth of CPU the server process used during the measured interval (1 = one core). */
  server_cpu?: number | null;
  /** Share of the server's cores busy with anything but the server (other work, interrupts). */
  other_cpu?: number | null;
  /** Server CPU time per response in microseconds (user + system, so kernel work included). */
  cpu_us_per_response?: number | null;
  /** Cores' worth of CPU the load generator used during the measured interval. */
  loadgen_cpu?: number | null;
  /** Share of the load generator's cores busy with anything else. */
  loadgen_other_cpu?: number | null;
}

interface Options {
  duration: number;
  warmup: number;
  sockets: number;
  window: number;
  timeout: number;
  runs: number;
  targets: Target[];
  json: boolean;
  profile: string | undefined;
  bareSyncLookup: boolean;
  serverCpu: string;
  clientCpu: string;
}

const HELP = `usage: tsx bench/stun/run.ts [options]     (or: pnpm bench:stun -- [options])
  --duration S      measured seconds per target (default 5)
  --warmup S        unrecorded seconds before that (default 1)
  --sockets N       load generator sockets, each on its own 127.0.2.x address (default 8)
  --window W        requests outstanding per socket (default 32)
  --timeout S       an unanswered request is lost after S seconds (default 1)
  --runs N          repeat the whole round N times; per target report the median of the
                    clean runs (nothing else took over 10% of either core) (default 1)
  --targets LIST    comma-separated subset of ${TARGETS.join(',')} (default all)
  --server-cpu C    CPU list for the servers (taskset; default 0)
  --client-cpu C    CPU list for the load generator (default 1)
  --profile DIR     run the Node targets with --cpu-prof into DIR (slows them down)
  --bare-sync-lookup  give the bare server's socket a synchronous lookup (no dns.lookup and
                    next tick per send): the ceiling for a server that does the same
  --json            print one JSON object instead of the table
  -h, --help`;

function fail(message: string, code = 2): never {
  process.stderr.write(`bench:stun: ${message}\n`);
  process.exit(code);
}

function parseOptions(argv: string[]): Options {
  const v = parseBenchArgs(
    'stun',
    HELP,
    {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      sockets: { type: 'string', default: '8' },
      window: { type: 'string', default: '32' },
      timeout: { type: 'string', default: '1' },
      runs: { type: 'string', default: '1' },
      targets: { type: 'string', default: TARGETS.join(',') },
      'server-cpu': { type: 'string', default: '0' },
      'client-cpu': { type: 'string', default: '1' },
      profile: { type: 'string' },
      json: { type: 'boolean', default: false },
      'bare-sync-lookup': { type: 'boolean', default: false },
    },
    argv,
  );
  const num = (name: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
      fail(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const targets = v.targets
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  for (const t of targets)
    if (!(TARGETS as readonly string[]).includes(t)) fail(`--targets: unknown target ${JSON.stringify(t)} (choose from ${TARGETS.join(', ')})`);
  if (targets.length === 0) fail('--targets: name at least one target');
  return {
    duration: num('duration', v.duration, 0.1, 600, false),
    warmup: num('warmup', v.warmup, 0, 60, false),
    sockets: num('sockets', v.sockets, 1, 250, true),
    window: num('window', v.window, 1, 4096, true),
    timeout: num('timeout', v.timeout, 0.01, 10, false),
    runs: num('runs', v.runs, 1, 20, true),
    targets: targets as Target[],
    json: v.json,
    profile: v.profile === undefined ? undefined : resolve(v.profile),
    bareSyncLookup: v['bare-sync-lookup'],
    serverCpu: v['server-cpu'],
    clientCpu: v['client-cpu'],
  };
}

killChildrenOnExit('stun', 'servers stopped');

function serverCommand(target: Target, port: number, o: Options, tmp: string): [string, string[]] {
  // One directory per target: Node names each thread's profile itself (tsx adds a loader thread).
  const prof = (name: string): string[] => (o.profile ? ['--cpu-prof', '--cpu-prof-dir', join(o.profile, name)] : []);
  switch (target) {
    case 'nat-server':
      return pinned(o.serverCpu, process.execPath, [
        ...prof('nat-server'),
        NAT_SERVER,
        '--listen',
        LISTEN_IP,
        '--port',
        String(port),
        '--no-alt-port',
        '--no-tcp',
        '--rate-limit',
        '0',
        '--log-level',
        'warn',
      ]);
    case 'bare-node':
      return pinned(o.serverCpu, process.execPath, [
        ...prof('bare-node'),
        '--import',
        'tsx',
        BARE_SERVER,
        '--listen',
        LISTEN_IP,
        '--port',
        String(port),
        ...(o.bareSyncLookup ? ['--sync-lookup'] : []),
      ]);
    case 'coturn':
      // STUN only, one relay thread, no config file, no CLI/TLS/DTLS/TCP, state files in a temp dir.
      return pinned(o.serverCpu, 'turnserver', [
        '-n',
        '-S',
        '-m',
        '1',
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '--no-tcp',
        '-L',
        LISTEN_IP,
        '-p',
        String(port),
        '--pidfile',
        join(tmp, 'turnserver.pid'),
        '--userdb',
        join(tmp, 'turndb'),
        '--log-file',
        'stdout',
        '--simple-log',
      ]);
  }
}

async function runLoadgen(target: Target, port: number, o: Options, serverPid: number | undefined): Promise<LoadResult> {
  const [cmd, args] = pinned(o.clientCpu, LOADGEN_BIN, [
    '--target',
    `${LISTEN_IP}:${port}`,
    '--sockets',
    String(o.sockets),
    '--window',
    String(o.window),
    '--duration',
    String(o.duration),
    '--warmup',
    String(o.warmup),
    '--timeout',
    String(o.timeout),
    '--label',
    target,
  ]);
  const lg = start(cmd, args);
  let out = '';
  lg.child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  // Sample CPU use over the measured interval (after the warm-up, before the drain), of the
  // server and its core, and of the load generator and its core.
  const serverCpus = cpuList(o.serverCpu);
  const clientCpus = cpuList(o.clientCpu);
  const sample = (): [CpuSample, CpuSample] => [sampleCpu(serverPid, serverCpus), sampleCpu(lg.child.pid, clientCpus)];
  let first: [CpuSample, CpuSample] | undefined;
  let last: [CpuSample, CpuSample] | undefined;
  const t1 = setTimeout(() => (first = sample()), o.warmup * 1000 + 100);
  const t2 = setTimeout(() => (last = sample()), (o.warmup + o.duration) * 1000 - 100);
  await lg.exited;
  clearTimeout(t1);
  clearTimeout(t2);
  if (lg.child.exitCode !== 0) throw new Error(`load generator failed (exit ${lg.child.exitCode ?? lg.child.signalCode}):\n${lg.output()}`);
  const line = out.trim().split('\n').pop() ?? '';
  const result = JSON.parse(line) as LoadResult;
  const none = { used: null, other: null };
  const server = first && last ? cpuShares(first[0], last[0], Math.max(1, serverCpus.length)) : none;
  const client = first && last ? cpuShares(first[1], last[1], Math.max(1, clientCpus.length)) : none;
  const cpu_us_per_response = server.used !== null && result.responses > 0 ? (server.used * result.seconds * 1e6) / result.responses : null;
  return { ...result, server_cpu: server.used, other_cpu: server.other, cpu_us_per_response, loadgen_cpu: client.used, loadgen_other_cpu: client.other };
}

async function benchOne(target: Target, o: Options, tmp: string): Promise<LoadResult> {
  // The free port may be taken between our check and the server's bind: then try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const [cmd, args] = serverCommand(target, port, o, tmp);
    const server = start(cmd, args);
    try {
      try {
        await waitForStun(port, server, target);
      } catch (e) {
        if (attempt < 3 && (server.child.exitCode !== null || server.child.signalCode !== null)) continue;
        throw e;
      }
      const result = await runLoadgen(target, port, o, server.child.pid);
      if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`${target} died during the run:\n${server.output()}`);
      return result;
    } finally {
      await stop(server);
    }
  }
}

// ---------------------------------------------------------------------------------------------

function buildLoadgen(): void {
  mkdirSync(BUILD, { recursive: true });
  if (existsSync(LOADGEN_BIN) && statSync(LOADGEN_BIN).mtimeMs >= statSync(LOADGEN_SRC).mtimeMs) return;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', LOADGEN_BIN, LOADGEN_SRC], { stdio: 'inherit' });
  if (r.error || r.status !== 0) fail(`could not compile ${LOADGEN_SRC} with gcc${r.error ? `: ${r.error.message}` : ''}`, 1);
}

const CLEAN_LIMIT = 0.1;

/** The median run by responses/s; of an even number, the upper middle one (noise only slows runs). */
function median(results: LoadResult[]): LoadResult {
  const sorted = [...results].sort((a, b) => a.responses_per_second - b.responses_per_second);
  return sorted[sorted.length >> 1]!;
}

function table(rows: { target: Target; r: LoadResult; runs: LoadResult[] }[]): string {
  const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${Math.round(x * 100)}%`);
  const us = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : x.toFixed(1));
  const head = ['target', 'responses/s', 'p50 us', 'p90 us', 'p99 us', 'max us', 'sent', 'lost', 'bad', 'server cpu', 'cpu us/resp', 'other cpu'];
  const body = rows.map(({ target, r }) => [
    target,
    r.responses_per_second.toFixed(0),
    String(r.p50_us),
    String(r.p90_us),
    String(r.p99_us),
    String(r.max_us),
    String(r.sent),
    String(r.lost),
    String(r.bad),
    pct(r.server_cpu),
    us(r.cpu_us_per_response),
    pct(r.other_cpu),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const notes: string[] = [];
  if (!haveTaskset) notes.push('taskset not found (util-linux): processes are not pinned to cores');
  if (o.targets.includes('nat-server') && !existsSync(NAT_SERVER))
    fail(`${NAT_SERVER} is missing: run \`npx turbo run build\` first (pnpm bench:stun does)`, 1);
  if (o.targets.includes('coturn') && !onPath('turnserver')) {
    notes.push('coturn skipped: turnserver not found (apt-get install coturn)');
    o.targets = o.targets.filter((t) => t !== 'coturn');
  }
  if (o.targets.length === 0) fail('no target left to run', 1);
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  buildLoadgen();

  const tmp = mkdtempSync(join(tmpdir(), 'bench-stun-'));
  const runs = new Map<Target, LoadResult[]>(o.targets.map((t) => [t, []]));
  try {
    for (let round = 1; round <= o.runs; round++) {
      for (const target of o.targets) {
        if (!o.json) process.stderr.write(`run ${round}/${o.runs}: ${target} (${o.warmup} s warm-up + ${o.duration} s)...\n`);
        const r = await benchOne(target, o, tmp);
        runs.get(target)!.push(r);
        if (!o.json) process.stderr.write(`  ${r.responses_per_second.toFixed(0)} responses/s, p99 ${r.p99_us} us, lost ${r.lost}\n`);
      }
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  // A run is clean when nothing else took more than 10% of either core while it was measured;
  // the reported run of a target is the median of its clean runs (of all runs if none was clean).
  const clean = (r: LoadResult): boolean => (r.other_cpu ?? 0) <= CLEAN_LIMIT && (r.loadgen_other_cpu ?? 0) <= CLEAN_LIMIT;
  const pickable = (all: LoadResult[]): LoadResult[] => (all.some(clean) ? all.filter(clean) : all);
  const rows = o.targets.map((target) => {
    const all = runs.get(target)!;
    return { target, runs: all, clean: all.filter(clean).length, r: median(pickable(all)) };
  });
  const ratiosOf = (pick: (all: LoadResult[]) => number | undefined): Record<string, number | null> => {
    const rps = (t: Target): number | undefined => {
      const all = runs.get(t);
      return all && all.length > 0 ? pick(all) : undefined;
    };
    const ratio = (a: Target, b: Target): number | null => {
      const x = rps(a);
      const y = rps(b);
      return x !== undefined && y !== undefined && y > 0 ? x / y : null;
    };
    return { 'nat-server/bare-node': ratio('nat-server', 'bare-node'), 'nat-server/coturn': ratio('nat-server', 'coturn') };
  };
  const ratios = ratiosOf((all) => median(pickable(all)).responses_per_second);
  // Interference only ever slows a run down, so on a shared machine the best run is the one to trust.
  const bestRatios = ratiosOf((all) => Math.max(...all.map((x) => x.responses_per_second)));
  // Responses per second of server CPU (1 / cpu us per response, median over all runs): what one
  // fully available core would give. Interference mostly takes CPU time away rather than making
  // each request dearer, so this is the steadiest comparison on a busy machine.
  const cpuRatios = ratiosOf((all) => {
    const costs = all
      .map((x) => x.cpu_us_per_response)
      .filter((x): x is number => typeof x === 'number' && x > 0)
      .sort((a, b) => a - b);
    return costs.length > 0 ? 1e6 / costs[(costs.length - 1) >> 1]! : undefined; // lower middle cost
  });
  for (const { target, r } of rows) if (r.bad > 0) notes.push(`${target}: ${r.bad} answers were not a Binding success with the right XOR-MAPPED-ADDRESS`);
  for (const [target, all] of runs) {
    all.forEach((r, i) => {
      if (clean(r)) return;
      notes.push(
        `${target} run ${i + 1} disturbed: other work took ${Math.round((r.other_cpu ?? 0) * 100)}% of the server's core and ${Math.round((r.loadgen_other_cpu ?? 0) * 100)}% of the load generator's`,
      );
    });
    if (!all.some(clean)) notes.push(`${target}: no clean run, the median of all runs is shown`);
  }

  if (o.json) {
    const config = {
      duration: o.duration,
      warmup: o.warmup,
      sockets: o.sockets,
      window: o.window,
      timeout: o.timeout,
      runs: o.runs,
      serverCpu: o.serverCpu,
      clientCpu: o.clientCpu,
      pinned: haveTaskset,
      bareSyncLookup: o.bareSyncLookup,
    };
    const results = Object.fromEntries(rows.map(({ target, r, runs: all }) => [target, { ...r, runs: all.map((x) => ({ ...x, clean: clean(x) })) }]));
    process.stdout.write(`${JSON.stringify({ config, results, ratios, bestRatios, cpuRatios, notes })}\n`);
    return;
  }
  const out: string[] = [];
  out.push(
    `STUN Binding over UDP, ${o.sockets} sockets x ${o.window} outstanding, ${o.duration} s after ${o.warmup} s warm-up; server on CPU ${o.serverCpu}, load generator on CPU ${o.clientCpu}${o.bareSyncLookup ? '; bare-node with --sync-lookup' : ''}${o.runs > 1 ? `; per target the median of its clean runs (${rows.map((x) => `${x.target} ${x.clean}/${o.runs}`).join(', ')})` : ''}`,
  );
  out.push('');
  out.push(table(rows));
  if (o.runs > 1) {
    out.push('');
    for (const { target, runs: all } of rows)
      out.push(`${target.padEnd(10)} runs: ${all.map((x) => `${x.responses_per_second.toFixed(0)}${clean(x) ? '' : '*'}`).join(', ')} responses/s`);
    out.push("(* disturbed: other work took over 10% of the server's or the load generator's core)");
  }
  out.push('');
  for (const [k, v] of Object.entries(ratios)) {
    if (v === null) continue;
    const best = bestRatios[k];
    const cpu = cpuRatios[k];
    const extra = [
      o.runs > 1 && best !== null && best !== undefined ? `best runs: ${best.toFixed(2)}` : undefined,
      cpu !== null && cpu !== undefined ? `by CPU time per response: ${cpu.toFixed(2)}` : undefined,
    ].filter((x) => x !== undefined);
    out.push(`${k}: ${v.toFixed(2)}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`);
  }
  for (const n of notes) out.push(`note: ${n}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((e: unknown) => {
  killAll();
  process.stderr.write(`bench:stun: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
