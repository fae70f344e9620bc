/**
 * TURN relay benchmark: nat-server vs coturn vs node-turn vs a bare node:dgram forwarder, side by
 * side in one run, with one load generator (bench/turn/loadgen.c).
 *
 * Phases (each target started fresh, pinned to one core; the load generator on another):
 *   throughput  two TURN clients relay ChannelData to each other through the target
 *   indication  the same with Send indications from the clients (node-turn takes no ChannelData)
 *   latency     one packet in flight per direction: unloaded one-way latency, and loopback alone
 *   memory      10,000 concurrent allocations: the target's RSS before and after
 * Traffic stays on 127.0.0.0/8; every process started here is killed on the way out.
 *
 *   pnpm bench:turn [-- --runs 3 --phases throughput,memory --json ...]   (--help lists every option)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import {
  type CpuSample,
  parseBenchArgs,
  LISTEN_IP,
  ROOT,
  type Started,
  TICKS_PER_SECOND,
  alive,
  cpuList,
  killAll,
  cpuShares,
  freePort,
  haveTaskset,
  killChildrenOnExit,
  onPath,
  pinned,
  sampleCpu,
  sleep,
  start,
  stop,
  waitForStun,
} from '../harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(ROOT, 'bench/.build');
const LOADGEN_SRC = join(HERE, 'loadgen.c');
const LOADGEN_BIN = join(BUILD, 'turn-loadgen');
const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');
const BARE = join(HERE, 'bare-forwarder.ts');
const NODE_TURN = join(HERE, 'node-turn-server.ts');
const USER = 'bench';
const PASSWORD = 'bench';
const REALM = 'bench';

const TARGETS = ['nat-server', 'coturn', 'node-turn', 'bare-node'] as const;
type Target = (typeof TARGETS)[number];
const PHASES = ['throughput', 'indication', 'latency', 'memory'] as const;
type Phase = (typeof PHASES)[number];
/** Targets with a Send indication path (the bare forwarder only knows ChannelData). */
const INDICATION_TARGETS: readonly Target[] = ['nat-server', 'coturn', 'node-turn'];
const MEMORY_TARGETS: readonly Target[] = ['nat-server', 'coturn', 'node-turn'];

/** What the load generator prints in relay, bare and direct modes, plus CPU figures added here. */
interface RelayResult {
  label: string;
  mode: string;
  send: string;
  pairs: number;
  window: number;
  size: number;
  seconds: number;
  control_ms: number;
  delivered: number;
  packets_per_second: number;
  payload_mbps: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  sent: number;
  lost: number;
  late: number;
  bad: number;
  loadgen_cpu: number;
  /** Cores' worth of CPU the server used during the measured interval (1 = one core). */
  server_cpu?: number | null;
  /** Server CPU time per delivered packet, microseconds (user + system). */
  cpu_us_per_packet?: number | null;
  /** Share of the server's core taken by anything else. */
  other_cpu?: number | null;
  /** Share of the load generator's core taken by anything else. */
  loadgen_other_cpu?: number | null;
  /** A short check that a target relays at all (node-turn and ChannelData), not a measurement. */
  probe?: boolean;
  /** Which round of --runs it belongs to. */
  round?: number;
}

/** What the load generator prints in alloc mode, plus the memory figures read here. */
interface MemoryResult {
  label: string;
  requested: number;
  allocated: number;
  failed: number;
  first_error: number;
  seconds: number;
  allocations_per_second: number;
  rss_before_kb: number | null;
  rss_after_kb: number | null;
  hwm_kb: number | null;
  fds_after: number | null;
}

interface Options {
  duration: number;
  warmup: number;
  window: number;
  pairs: number;
  size: number;
  timeout: number;
  runs: number;
  targets: Target[];
  phases: Phase[];
  allocations: number;
  latencyDuration: number;
  nodeTurnDir: string;
  serverCpu: string;
  clientCpu: string;
  profile: string | undefined;
  bareDnsLookup: boolean;
  quietWait: number;
  json: boolean;
}

const HELP = `usage: tsx bench/turn/run.ts [options]     (or: pnpm bench:turn -- [options])
  --duration S        measured seconds per target and phase (default 5)
  --warmup S          unrecorded seconds before that (default 1)
  --window W          packets in flight per direction (default 64)
  --pairs N           client pairs (default 1: two TURN clients)
  --size BYTES        payload bytes per packet (default 100)
  --timeout S         a packet in flight longer than this is lost (default 1)
  --runs N            repeat throughput and indication N times; per target report the median of
                      the clean runs (nothing else took over 10% of either core) (default 1)
  --targets LIST      subset of ${TARGETS.join(',')} (default all)
  --phases LIST       subset of ${PHASES.join(',')} (default all)
  --allocations N     allocations held in the memory phase (default 10000)
  --latency-duration S  measured seconds of the latency phase (default 2)
  --node-turn-dir DIR where node-turn is installed with npm --prefix (default /tmp/node-turn-bench)
  --server-cpu C      CPU list for the servers (taskset; default 0)
  --client-cpu C      CPU list for the load generator (default 1)
  --profile DIR       one more ChannelData run of nat-server and of the bare forwarder with
                      --cpu-prof, not measured; profiles into DIR/<target>
                      (summarise: tsx bench/turn/profile.ts DIR/nat-server)
  --bare-dns-lookup   the bare forwarder resolves each send's address with node:dgram's default
                      dns.lookup (next tick) instead of at once, as nat-server does
  --quiet-wait S      before each measured run, wait up to S seconds for the server's and the
                      load generator's cores to be idle (under 10% busy for half a second);
                      0 = do not wait (default 30)
  --json              print one JSON object instead of the tables
  -h, --help`;

function fail(message: string, code = 2): never {
  process.stderr.write(`bench:turn: ${message}\n`);
  process.exit(code);
}

function parseOptions(argv: string[]): Options {
  const v = parseBenchArgs(
    'turn',
    HELP,
    {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      window: { type: 'string', default: '64' },
      pairs: { type: 'string', default: '1' },
      size: { type: 'string', default: '100' },
      timeout: { type: 'string', default: '1' },
      runs: { type: 'string', default: '1' },
      targets: { type: 'string', default: TARGETS.join(',') },
      phases: { type: 'string', default: PHASES.join(',') },
      allocations: { type: 'string', default: '10000' },
      'latency-duration': { type: 'string', default: '2' },
      'node-turn-dir': { type: 'string', default: '/tmp/node-turn-bench' },
      'server-cpu': { type: 'string', default: '0' },
      'client-cpu': { type: 'string', default: '1' },
      profile: { type: 'string' },
      'bare-dns-lookup': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
    },
    argv,
  );
  const num = (name: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
      fail(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const list = <T extends string>(name: string, text: string, all: readonly T[]): T[] => {
    const items = text
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    for (const t of items) if (!(all as readonly string[]).includes(t)) fail(`--${name}: unknown ${JSON.stringify(t)} (choose from ${all.join(', ')})`);
    if (items.length === 0) fail(`--${name}: name at least one`);
    return all.filter((t) => items.includes(t));
  };
  return {
    duration: num('duration', v.duration, 0.1, 600, false),
    warmup: num('warmup', v.warmup, 0, 60, false),
    window: num('window', v.window, 1, 4096, true),
    pairs: num('pairs', v.pairs, 1, 64, true),
    size: num('size', v.size, 24, 1400, true),
    timeout: num('timeout', v.timeout, 0.01, 10, false),
    runs: num('runs', v.runs, 1, 20, true),
    targets: list('targets', v.targets, TARGETS),
    phases: list('phases', v.phases, PHASES),
    allocations: num('allocations', v.allocations, 1, 30000, true),
    latencyDuration: num('latency-duration', v['latency-duration'], 0.1, 60, false),
    nodeTurnDir: resolve(v['node-turn-dir']),
    serverCpu: v['server-cpu'],
    clientCpu: v['client-cpu'],
    profile: v.profile === undefined ? undefined : resolve(v.profile),
    bareDnsLookup: v['bare-dns-lookup'],
    quietWait: num('quiet-wait', v['quiet-wait'], 0, 600, false),
    json: v.json,
  };
}

killChildrenOnExit('turn', 'every process started here stopped');

// ---------------------------------------------------------------------------------------------
// Targets.

/** Relay port ranges: wide enough for the memory phase, away from the listening ports. */
const RELAY_MIN = 20000;
const RELAY_MAX = 49999;

function serverCommand(target: Target, port: number, o: Options, tmp: string, profile: boolean): [string, string[]] {
  const prof = (name: string): string[] => (profile && o.profile ? ['--cpu-prof', '--cpu-prof-dir', join(o.profile, name)] : []);
  const range = ['--min-port', String(RELAY_MIN), '--max-port', String(RELAY_MAX)];
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
        '--realm',
        REALM,
        '--user',
        `${USER}:${PASSWORD}`,
        '--allow-peer',
        '127.0.0.0/8',
        ...range,
        '--user-quota',
        String(o.allocations + 100),
        '--total-quota',
        String(o.allocations + 100),
        '--log-level',
        'warn',
      ]);
    case 'coturn':
      // One relay thread, no config file, no CLI/TLS/DTLS, state files and log in a temp dir.
      return pinned(o.serverCpu, 'turnserver', [
        '-n',
        '-m',
        '1',
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '-L',
        LISTEN_IP,
        '--relay-ip',
        LISTEN_IP,
        '-p',
        String(port),
        '--lt-cred-mech',
        '--user',
        `${USER}:${PASSWORD}`,
        '--realm',
        REALM,
        '--allow-loopback-peers',
        ...range,
        '--pidfile',
        join(tmp, `turnserver-${port}.pid`),
        '--userdb',
        join(tmp, `turndb-${port}`),
        '--log-file',
        join(tmp, `turnserver-${port}.log`),
        '--simple-log',
      ]);
    case 'node-turn':
      return pinned(o.serverCpu, process.execPath, [
        '--import',
        'tsx',
        NODE_TURN,
        '--module-dir',
        join(o.nodeTurnDir, 'node_modules'),
        '--listen',
        LISTEN_IP,
        '--port',
        String(port),
        ...range,
      ]);
    case 'bare-node':
      return pinned(o.serverCpu, process.execPath, [
        ...prof('bare-node'),
        '--import',
        'tsx',
        BARE,
        '--listen',
        LISTEN_IP,
        '--port',
        String(port),
        '--clients',
        String(2 * o.pairs),
        ...(o.bareDnsLookup ? ['--dns-lookup'] : []),
      ]);
  }
}

/** Sends Binding requests until one is answered with a Binding success response. */
/** Waits for a line of the child's output (the bare forwarder does not speak STUN). */
async function waitForOutput(s: Started, pattern: RegExp, what: string, deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!pattern.test(s.output())) {
    if (!alive(s)) throw new Error(`${what} exited before it was ready:\n${s.output()}`);
    if (Date.now() > until) throw new Error(`${what} not ready within ${deadlineMs / 1000} s:\n${s.output()}`);
    await sleep(50);
  }
}

/** Starts a target on a free port and waits until it is ready; retries when the port was taken. */
async function startTarget(target: Target, o: Options, tmp: string, profile = false): Promise<{ server: Started; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const [cmd, args] = serverCommand(target, port, o, tmp, profile);
    const server = start(cmd, args);
    try {
      if (target === 'bare-node') await waitForOutput(server, /listening udp/, target);
      else await waitForStun(port, server, target);
      return { server, port };
    } catch (e) {
      await stop(server);
      if (attempt < 3 && !alive(server)) continue;
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU and memory readings from /proc.

/** A field of /proc/PID/status in kB (VmRSS, VmHWM), or null. */
function statusKb(pid: number | undefined, field: string): number | null {
  if (pid === undefined) return null;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function fdCount(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/**
 * On a shared machine: waits until the given cores are idle (under 10% busy over half a second),
 * for at most maxSeconds. Returns false when they never were.
 */
async function waitQuiet(cpus: number[], maxSeconds: number): Promise<boolean> {
  const until = performance.now() + maxSeconds * 1000;
  while (performance.now() < until) {
    const a = sampleCpu(undefined, cpus);
    await sleep(500);
    const b = sampleCpu(undefined, cpus);
    const busy =
      a.cores !== undefined && b.cores !== undefined ? (b.cores - a.cores) / TICKS_PER_SECOND / ((b.at - a.at) / 1000) / Math.max(1, cpus.length) : 0;
    if (busy < CLEAN_LIMIT) return true;
  }
  return maxSeconds === 0;
}

// ---------------------------------------------------------------------------------------------
// Load.

/** Runs the load generator to completion and returns its JSON line, with CPU figures. */
async function runRelayLoad(label: string, args: string[], o: Options, serverPid: number | undefined, warmup: number, duration: number): Promise<RelayResult> {
  if (o.quietWait > 0 && !(await waitQuiet([...new Set([...cpuList(o.serverCpu), ...cpuList(o.clientCpu)])], o.quietWait)) && !o.json) {
    process.stderr.write(`  (the cores were still busy with other work after ${o.quietWait} s: measuring anyway)\n`);
  }
  const [cmd, argv] = pinned(o.clientCpu, LOADGEN_BIN, [
    ...args,
    '--label',
    label,
    '--warmup',
    String(warmup),
    '--duration',
    String(duration),
    '--timeout',
    String(o.timeout),
    '--size',
    String(o.size),
  ]);
  const lg = start(cmd, argv);
  let out = '';
  lg.child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const serverCpus = cpuList(o.serverCpu);
  const clientCpus = cpuList(o.clientCpu);
  const sample = (): [CpuSample, CpuSample] => [sampleCpu(serverPid, serverCpus), sampleCpu(lg.child.pid, clientCpus)];
  let first: [CpuSample, CpuSample] | undefined;
  let last: [CpuSample, CpuSample] | undefined;
  // The control plane takes a few milliseconds before the warm-up starts: sample well inside.
  const t1 = setTimeout(() => (first = sample()), warmup * 1000 + 150);
  const t2 = setTimeout(() => (last = sample()), (warmup + duration) * 1000 - 50);
  await lg.exited;
  clearTimeout(t1);
  clearTimeout(t2);
  if (lg.child.exitCode !== 0) throw new Error(`load generator failed (exit ${lg.child.exitCode ?? lg.child.signalCode}):\n${lg.output()}`);
  const result = JSON.parse(out.trim().split('\n').pop() ?? '') as RelayResult;
  const none = { used: null, other: null };
  const server = first && last && serverPid !== undefined ? cpuShares(first[0], last[0], Math.max(1, serverCpus.length)) : none;
  const client = first && last ? cpuShares(first[1], last[1], Math.max(1, clientCpus.length)) : none;
  const cpu_us_per_packet = server.used !== null && result.delivered > 0 ? (server.used * result.seconds * 1e6) / result.delivered : null;
  return { ...result, server_cpu: server.used, cpu_us_per_packet, other_cpu: server.other, loadgen_other_cpu: client.other };
}

function relayArgs(target: Target, port: number, o: Options, send: 'channel' | 'indication', window: number): string[] {
  const mode = target === 'bare-node' ? 'bare' : 'relay';
  return [
    '--server',
    `${LISTEN_IP}:${port}`,
    '--mode',
    mode,
    '--send',
    send,
    '--pairs',
    String(o.pairs),
    '--window',
    String(window),
    '--user',
    USER,
    '--password',
    PASSWORD,
  ];
}

async function benchRelay(
  target: Target,
  o: Options,
  tmp: string,
  send: 'channel' | 'indication',
  window: number,
  warmup: number,
  duration: number,
  profile = false,
): Promise<RelayResult> {
  const { server, port } = await startTarget(target, o, tmp, profile);
  try {
    const r = await runRelayLoad(target, relayArgs(target, port, o, send, window), o, server.child.pid, warmup, duration);
    if (!alive(server)) throw new Error(`${target} died during the run:\n${server.output()}`);
    return r;
  } finally {
    await stop(server);
  }
}

/** The memory phase for one target: RSS before, N allocations held, RSS after. */
async function benchMemory(target: Target, o: Options, tmp: string): Promise<MemoryResult> {
  const { server, port } = await startTarget(target, o, tmp);
  const pid = server.child.pid;
  try {
    await sleep(500);
    const before = statusKb(pid, 'VmRSS');
    const [cmd, argv] = pinned(o.clientCpu, LOADGEN_BIN, [
      '--server',
      `${LISTEN_IP}:${port}`,
      '--mode',
      'alloc',
      '--count',
      String(o.allocations),
      '--concurrency',
      '200',
      '--hold',
      '120',
      '--user',
      USER,
      '--password',
      PASSWORD,
      '--label',
      target,
    ]);
    const lg = start(cmd, argv, 'pipe');
    let out = '';
    lg.child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    try {
      const until = Date.now() + 120_000;
      while (!out.includes('\n')) {
        if (!alive(lg)) throw new Error(`load generator exited (${lg.child.exitCode ?? lg.child.signalCode}):\n${lg.output()}`);
        if (!alive(server)) throw new Error(`${target} died while allocating:\n${server.output()}`);
        if (Date.now() > until) throw new Error(`allocations did not finish within 120 s:\n${lg.output()}`);
        await sleep(50);
      }
      await sleep(1000); // let the server settle (pending sends, timers)
      const r = JSON.parse(out.split('\n')[0]!) as Omit<MemoryResult, 'rss_before_kb' | 'rss_after_kb' | 'hwm_kb' | 'fds_after'>;
      return { ...r, rss_before_kb: before, rss_after_kb: statusKb(pid, 'VmRSS'), hwm_kb: statusKb(pid, 'VmHWM'), fds_after: fdCount(pid) };
    } finally {
      lg.child.stdin?.end();
      const timer = setTimeout(() => lg.child.kill('SIGKILL'), 3000);
      await lg.exited;
      clearTimeout(timer);
    }
  } finally {
    await stop(server);
  }
}

// ---------------------------------------------------------------------------------------------

function buildLoadgen(): void {
  mkdirSync(BUILD, { recursive: true });
  if (existsSync(LOADGEN_BIN) && statSync(LOADGEN_BIN).mtimeMs >= statSync(LOADGEN_SRC).mtimeMs) return;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', LOADGEN_BIN, LOADGEN_SRC, '-lm'], { stdio: 'inherit' });
  if (r.error || r.status !== 0) fail(`could not compile ${LOADGEN_SRC} with gcc${r.error ? `: ${r.error.message}` : ''}`, 1);
  const t = spawnSync(LOADGEN_BIN, ['--self-test'], { encoding: 'utf8' });
  if (t.status !== 0) fail(`the load generator's MD5/SHA-1/HMAC self-test failed: ${t.stdout}${t.stderr}`, 1);
}

/** Installs node-turn into a directory outside the repository (npm --prefix); a note when it cannot. */
function ensureNodeTurn(dir: string, notes: string[]): boolean {
  if (existsSync(join(dir, 'node_modules/node-turn/package.json'))) return true;
  process.stderr.write(`installing node-turn into ${dir} (npm install --prefix, outside the repository)...\n`);
  const r = spawnSync('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', 'node-turn'], { encoding: 'utf8', timeout: 180_000 });
  if (r.status === 0 && existsSync(join(dir, 'node_modules/node-turn/package.json'))) return true;
  notes.push(`node-turn skipped: could not install it into ${dir} (${(r.error?.message ?? r.stderr ?? '').trim().split('\n').pop() ?? 'npm failed'})`);
  return false;
}

function nodeTurnVersion(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'node_modules/node-turn/package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

const CLEAN_LIMIT = 0.1;
const clean = (r: RelayResult): boolean => (r.other_cpu ?? 0) <= CLEAN_LIMIT && (r.loadgen_other_cpu ?? 0) <= CLEAN_LIMIT;

/** The median of the clean runs (of all runs when none was clean), by packets per second. */
function pick(all: RelayResult[]): RelayResult {
  const pool = all.some(clean) ? all.filter(clean) : all;
  const sorted = [...pool].sort((a, b) => a.packets_per_second - b.packets_per_second);
  return sorted[(sorted.length - 1) >> 1]!;
}

function formatTable(head: string[], body: string[][]): string {
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${Math.round(x * 100)}%`);
const fixed = (x: number | null | undefined, d = 1): string => (x === null || x === undefined ? '-' : x.toFixed(d));
const lossText = (r: RelayResult): string =>
  r.sent === 0 ? '-' : r.lost === 0 ? '0%' : r.lost === r.sent ? '100%' : `${((100 * r.lost) / r.sent).toFixed(3)}%`;

function relayTable(rows: { target: string; r: RelayResult; runs: RelayResult[] }[]): string {
  const head = [
    'target',
    'packets/s',
    'forwards/s',
    'Mbit/s',
    'loss',
    'p50 us',
    'p99 us',
    'server cpu',
    'cpu us/pkt',
    'loadgen cpu',
    'other cpu',
    'runs (packets/s)',
  ];
  const body = rows.map(({ target, r, runs }) => [
    target,
    r.packets_per_second.toFixed(0),
    (2 * r.packets_per_second).toFixed(0),
    fixed(r.payload_mbps),
    lossText(r),
    String(r.p50_us),
    String(r.p99_us),
    pct(r.server_cpu),
    fixed(r.cpu_us_per_packet, 2),
    pct(r.loadgen_cpu),
    pct(Math.max(r.other_cpu ?? 0, r.loadgen_other_cpu ?? 0)),
    r.probe ? '(1 s probe)' : runs.map((x) => `${x.packets_per_second.toFixed(0)}${clean(x) ? '' : '*'}`).join(' '),
  ]);
  return formatTable(head, body);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const notes: string[] = [];
  if (!haveTaskset) notes.push('taskset not found (util-linux): processes are not pinned to cores');
  if (o.targets.includes('nat-server') && !existsSync(NAT_SERVER))
    fail(`${NAT_SERVER} is missing: run \`npx turbo run build\` first (pnpm bench:turn does)`, 1);
  if (o.targets.includes('coturn') && !onPath('turnserver')) {
    notes.push('coturn skipped: turnserver not found (apt-get install coturn)');
    o.targets = o.targets.filter((t) => t !== 'coturn');
  }
  if (o.targets.includes('node-turn') && !ensureNodeTurn(o.nodeTurnDir, notes)) o.targets = o.targets.filter((t) => t !== 'node-turn');
  if (o.targets.length === 0) fail('no target left to run', 1);
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  buildLoadgen();
  const say = (s: string): void => {
    if (!o.json) process.stderr.write(`${s}\n`);
  };

  const tmp = mkdtempSync(join(tmpdir(), 'bench-turn-'));
  const throughput = new Map<Target, RelayResult[]>();
  const indication = new Map<Target, RelayResult[]>();
  const latency = new Map<string, RelayResult>();
  const memory = new Map<Target, MemoryResult>();
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e instanceof Error ? e.message : String(e)).split('\n').slice(0, 6).join(' | ')}`);
      say(`  failed: ${failures[failures.length - 1]}`);
    }
  };
  const fmt = (r: RelayResult): string => `${r.packets_per_second.toFixed(0)} packets/s, p99 ${r.p99_us} us, lost ${r.lost}${clean(r) ? '' : ' (disturbed)'}`;
  try {
    for (let round = 1; round <= o.runs; round++) {
      if (o.phases.includes('throughput')) {
        for (const target of o.targets) {
          // node-turn 0.0.6 ignores ChannelData from clients: a one-second probe shows it.
          const probe = target === 'node-turn';
          if (probe && round > 1) continue;
          say(`run ${round}/${o.runs} throughput: ${target} (${probe ? '1 s probe' : `${o.warmup} s warm-up + ${o.duration} s`})...`);
          await attempt(`throughput ${target}`, async () => {
            const r = await benchRelay(target, o, tmp, 'channel', o.window, probe ? 0 : o.warmup, probe ? 1 : o.duration);
            throughput.set(target, [...(throughput.get(target) ?? []), { ...r, round, ...(probe ? { probe: true } : {}) }]);
            say(`  ${fmt(r)}`);
          });
        }
      }
      if (o.phases.includes('indication')) {
        for (const target of o.targets.filter((t) => INDICATION_TARGETS.includes(t))) {
          say(`run ${round}/${o.runs} indication: ${target} (${o.warmup} s warm-up + ${o.duration} s)...`);
          await attempt(`indication ${target}`, async () => {
            const r = await benchRelay(target, o, tmp, 'indication', o.window, o.warmup, o.duration);
            indication.set(target, [...(indication.get(target) ?? []), { ...r, round }]);
            say(`  ${fmt(r)}`);
          });
        }
      }
    }
    if (o.profile) {
      // Profiling slows a target down, so these runs are extra and not in the tables.
      for (const target of o.targets.filter((t) => t === 'nat-server' || t === 'bare-node')) {
        say(`profile: ${target} with --cpu-prof (not measured)...`);
        await attempt(`profile ${target}`, async () => {
          const r = await benchRelay(target, o, tmp, 'channel', o.window, o.warmup, o.duration, true);
          say(`  ${fmt(r)}, ${fixed(r.cpu_us_per_packet, 2)} us of server CPU per packet (profiled)`);
        });
      }
    }
    if (o.phases.includes('latency')) {
      say(`latency: one packet in flight per direction, ${o.latencyDuration} s each...`);
      await attempt('latency direct', async () => {
        latency.set(
          'direct (no relay)',
          await runRelayLoad('direct', ['--mode', 'direct', '--pairs', String(o.pairs), '--window', '1'], o, undefined, 0.5, o.latencyDuration),
        );
      });
      for (const target of o.targets) {
        await attempt(`latency ${target}`, async () => {
          latency.set(target, await benchRelay(target, o, tmp, target === 'node-turn' ? 'indication' : 'channel', 1, 0.5, o.latencyDuration));
        });
      }
    }
    if (o.phases.includes('memory')) {
      for (const target of o.targets.filter((t) => MEMORY_TARGETS.includes(t))) {
        say(`memory: ${target}, ${o.allocations} allocations...`);
        await attempt(`memory ${target}`, async () => {
          const m = await benchMemory(target, o, tmp);
          memory.set(target, m);
          say(
            `  ${m.allocated} allocated in ${m.seconds.toFixed(1)} s, RSS ${((m.rss_before_kb ?? 0) / 1024).toFixed(1)} -> ${((m.rss_after_kb ?? 0) / 1024).toFixed(1)} MB`,
          );
        });
      }
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  // Ratios of packets per second (median of clean runs; best runs too when --runs > 1).
  const rate = (m: Map<Target, RelayResult[]>, t: Target, how: 'median' | 'best'): number | undefined => {
    const all = m.get(t);
    if (!all || all.length === 0) return undefined;
    return how === 'median' ? pick(all).packets_per_second : Math.max(...all.map((x) => x.packets_per_second));
  };
  const ratio = (m: Map<Target, RelayResult[]>, a: Target, b: Target, how: 'median' | 'best'): number | null => {
    const x = rate(m, a, how);
    const y = rate(m, b, how);
    return x !== undefined && y !== undefined && y > 0 ? x / y : null;
  };
  const cpuRatio = (m: Map<Target, RelayResult[]>, a: Target, b: Target): number | null => {
    const cost = (t: Target): number | undefined => {
      const all = m.get(t) ?? [];
      const c = (all.some(clean) ? all.filter(clean) : all)
        .map((x) => x.cpu_us_per_packet)
        .filter((x): x is number => typeof x === 'number' && x > 0)
        .sort((p, q) => p - q);
      return c.length > 0 ? c[(c.length - 1) >> 1] : undefined;
    };
    const x = cost(a);
    const y = cost(b);
    return x !== undefined && y !== undefined ? y / x : null;
  };
  // Runs of one round are a minute apart at most: the median of the per-round ratios (rounds in
  // which both runs were clean) is the least sensitive to the machine getting slower or faster.
  const roundRatio = (m: Map<Target, RelayResult[]>, a: Target, b: Target): number | null => {
    const pairs = (m.get(a) ?? []).flatMap((r) => {
      const other = (m.get(b) ?? []).find((q) => q.round === r.round);
      return other && other.packets_per_second > 0 ? [[r, other] as const] : [];
    });
    // Rounds in which both runs were clean, or all rounds when there is none.
    const usable = pairs.some(([r, q]) => clean(r) && clean(q)) ? pairs.filter(([r, q]) => clean(r) && clean(q)) : pairs;
    const rs = usable.map(([r, q]) => r.packets_per_second / q.packets_per_second).sort((p, q) => p - q);
    return rs.length > 0 && pairs.length > 1 ? rs[(rs.length - 1) >> 1]! : null;
  };
  const ratios: Record<string, { median: number | null; best: number | null; perRound: number | null; byCpu: number | null }> = {};
  const addRatio = (name: string, m: Map<Target, RelayResult[]>, a: Target, b: Target): void => {
    const median = ratio(m, a, b, 'median');
    if (median === null || !Number.isFinite(median)) return;
    ratios[name] = { median, best: ratio(m, a, b, 'best'), perRound: roundRatio(m, a, b), byCpu: cpuRatio(m, a, b) };
  };
  addRatio('nat-server/bare-node (ChannelData)', throughput, 'nat-server', 'bare-node');
  addRatio('nat-server/coturn (ChannelData)', throughput, 'nat-server', 'coturn');
  addRatio('nat-server/coturn (Send indications)', indication, 'nat-server', 'coturn');
  addRatio('nat-server/node-turn (Send indications)', indication, 'nat-server', 'node-turn');

  const nt = throughput.get('node-turn')?.[0];
  if (nt && nt.delivered === 0)
    notes.push(
      `node-turn ${nodeTurnVersion(o.nodeTurnDir) ?? ''} delivered nothing sent as ChannelData (it ignores ChannelData from clients: lib/message.js drops a datagram whose first two bits are not 00); it is compared on Send indications instead`,
    );
  for (const [name, m] of [
    ['throughput', throughput],
    ['indication', indication],
  ] as const) {
    for (const [t, all] of m) {
      all.forEach((r, i) => {
        if (!clean(r) && !r.probe)
          notes.push(
            `${name} ${t} run ${i + 1} disturbed: other work took ${pct(r.other_cpu)} of the server's core and ${pct(r.loadgen_other_cpu)} of the load generator's`,
          );
        if (r.bad > 0) notes.push(`${name} ${t} run ${i + 1}: ${r.bad} packets were not the payload sent`);
      });
    }
  }
  if (o.profile) notes.push(`CPU profiles in ${o.profile} (summarise with: tsx bench/turn/profile.ts ${join(o.profile, 'nat-server')})`);
  for (const f of failures) notes.push(`failed: ${f}`);

  const config = {
    duration: o.duration,
    warmup: o.warmup,
    window: o.window,
    pairs: o.pairs,
    size: o.size,
    timeout: o.timeout,
    runs: o.runs,
    allocations: o.allocations,
    serverCpu: o.serverCpu,
    clientCpu: o.clientCpu,
    pinned: haveTaskset,
    bareDnsLookup: o.bareDnsLookup,
    quietWait: o.quietWait,
    nodeTurn: nodeTurnVersion(o.nodeTurnDir) ?? null,
  };
  const rowsOf = (m: Map<Target, RelayResult[]>): { target: Target; r: RelayResult; runs: RelayResult[] }[] =>
    [...m].map(([target, runs]) => ({ target, r: pick(runs), runs }));
  if (o.json) {
    const obj = (m: Map<Target, RelayResult[]>): Record<string, unknown> =>
      Object.fromEntries(rowsOf(m).map(({ target, r, runs }) => [target, { ...r, runs: runs.map((x) => ({ ...x, clean: clean(x) })) }]));
    process.stdout.write(
      `${JSON.stringify({ config, throughput: obj(throughput), indication: obj(indication), latency: Object.fromEntries(latency), memory: Object.fromEntries(memory), ratios, notes })}\n`,
    );
    return;
  }

  const out: string[] = [];
  const setup = `${o.pairs} pair${o.pairs > 1 ? 's' : ''} of TURN clients, ${o.size}-byte payloads, ${o.window} packets in flight per direction, ${o.duration} s after ${o.warmup} s warm-up; servers on CPU ${o.serverCpu}, load generator on CPU ${o.clientCpu}`;
  if (throughput.size > 0) {
    out.push(`ChannelData relayed between two TURN clients (${setup})`, '', relayTable(rowsOf(throughput)), '');
  }
  if (indication.size > 0) {
    out.push('Send indications from the clients, ChannelData to them', '', relayTable(rowsOf(indication)), '');
  }
  if ([...throughput.values(), ...indication.values()].some((all) => all.some((r) => !clean(r) && !r.probe)))
    out.push("(* disturbed: other work took over 10% of the server's or the load generator's core; the row shows the median of the clean runs)", '');
  if (latency.size > 0) {
    const base = latency.get('direct (no relay)');
    const head = ['unloaded one-way latency', 'p50 us', 'p90 us', 'p99 us', 'max us', 'added p50 us', 'added p99 us', 'packets/s', 'lost', 'other cpu'];
    const body = [...latency].map(([t, r]) => [
      t,
      String(r.p50_us),
      String(r.p90_us),
      String(r.p99_us),
      String(r.max_us),
      base && t !== 'direct (no relay)' ? String(r.p50_us - base.p50_us) : '-',
      base && t !== 'direct (no relay)' ? String(r.p99_us - base.p99_us) : '-',
      r.packets_per_second.toFixed(0),
      String(r.lost),
      `${pct(Math.max(r.other_cpu ?? 0, r.loadgen_other_cpu ?? 0))}${clean(r) ? '' : '*'}`,
    ]);
    out.push('Latency with one packet in flight per direction (node-turn: Send indications)', '', formatTable(head, body), '');
  }
  if (memory.size > 0) {
    const mb = (kb: number | null): string => (kb === null ? '-' : (kb / 1024).toFixed(1));
    const head = ['memory', 'allocations', 'seconds', 'RSS before MB', 'RSS after MB', 'growth MB', 'KB/allocation', 'peak RSS MB', 'open fds'];
    const body = [...memory].map(([t, m]) => {
      const growth = m.rss_after_kb !== null && m.rss_before_kb !== null ? m.rss_after_kb - m.rss_before_kb : null;
      return [
        t,
        `${m.allocated}/${m.requested}`,
        m.seconds.toFixed(1),
        mb(m.rss_before_kb),
        mb(m.rss_after_kb),
        mb(growth),
        growth !== null && m.allocated > 0 ? (growth / m.allocated).toFixed(2) : '-',
        mb(m.hwm_kb),
        String(m.fds_after ?? '-'),
      ];
    });
    out.push(`Memory with ${o.allocations} concurrent allocations (each from its own source address)`, '', formatTable(head, body), '');
  }
  for (const [k, v] of Object.entries(ratios)) {
    const extra = [
      o.runs > 1 && v.best !== null ? `best runs ${v.best.toFixed(2)}` : undefined,
      v.perRound !== null ? `median of per-round ratios ${v.perRound.toFixed(2)}` : undefined,
      v.byCpu !== null ? `by server CPU per packet ${v.byCpu.toFixed(2)}` : undefined,
    ].filter((x) => x !== undefined);
    out.push(`${k}: ${v.median!.toFixed(2)}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`);
  }
  for (const n of notes) out.push(`note: ${n}`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (failures.length > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  killAll();
  process.stderr.write(`bench:turn: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
