/**
 * What the benchmark runners share: argument parsing (every runner and child script: a leading
 * `--` from pnpm skipped, `--help`), and for the STUN and TURN runners child processes that are
 * killed on every exit path, CPU pinning, a free loopback port, waiting for a STUN server to
 * answer, and CPU accounting from /proc (the process's own ticks and its cores' busy ticks).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** The repository root (children run there). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Every benchmark listens and sends on this address only. */
export const LISTEN_IP = '127.0.0.1';
const MAGIC_COOKIE = 0x2112a442;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked so that it is killed on any exit path.

const children = new Set<ChildProcess>();

/** SIGKILLs every child still running. */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Kills every child on exit and on SIGINT/SIGTERM/SIGHUP (then prints `bench:NAME: SIG, <what>`). */
export function killChildrenOnExit(name: string, what: string): void {
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.stderr.write(`\nbench:${name}: ${sig}, ${what}\n`);
      process.exit(130);
    });
  }
}

export interface Started {
  child: ChildProcess;
  /** The last few kilobytes of its stdout and stderr, for error messages. */
  output(): string;
  exited: Promise<void>;
}

export function start(command: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): Started {
  const child = spawn(command, args, { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => {
    child.once('exit', () => r());
    child.once('error', (e) => {
      tail += `\n${e.message}`;
      r();
    });
  });
  void exited.then(() => children.delete(child));
  return { child, output: () => tail, exited };
}

export const alive = (s: Started): boolean => s.child.exitCode === null && s.child.signalCode === null;

export async function stop(s: Started): Promise<void> {
  if (!alive(s)) return;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 3000);
  await s.exited;
  clearTimeout(timer);
}

/** True when `cmd` is on PATH (asked of the shell, so nothing is started). */
export const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', 'command -v "$0"', cmd], { stdio: 'ignore' }).status === 0;
export const haveTaskset = onPath('taskset');

/** `command args` pinned to the CPUs of `cpu` (a taskset list) when taskset is installed. */
export function pinned(cpu: string, command: string, args: string[]): [string, string[]] {
  return haveTaskset ? ['taskset', ['-c', cpu, command, ...args]] : [command, args];
}

// ---------------------------------------------------------------------------------------------
// Servers.

/** A UDP port on LISTEN_IP that is free right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise<number>((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, LISTEN_IP, () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

/** Sends Binding requests until one is answered with a Binding success response. */
export async function waitForStun(port: number, s: Started, what: string, deadlineMs = 15_000): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, LISTEN_IP, () => r()));
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0);
  request.writeUInt32BE(MAGIC_COOKIE, 4);
  for (let i = 8; i < 20; i++) request[i] = (Math.random() * 256) | 0;
  let answered = false;
  socket.on('message', (m) => {
    if (m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(request.subarray(8, 20))) answered = true;
  });
  socket.on('error', () => {}); // ICMP port unreachable before the server binds
  let dead = false; // also when it could not be spawned at all ('error' without 'exit')
  void s.exited.then(() => (dead = true));
  const until = Date.now() + deadlineMs;
  try {
    while (!answered) {
      if (dead) throw new Error(`${what} exited before answering:\n${s.output()}`);
      if (Date.now() > until) throw new Error(`${what} did not answer a Binding request within ${deadlineMs / 1000} s:\n${s.output()}`);
      socket.send(request, port, LISTEN_IP);
      await sleep(100);
    }
  } finally {
    socket.close();
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting.

/** CPU time (clock ticks) a process has used, all threads: utime + stime of /proc/PID/stat. */
function processTicks(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** CPUs named by a taskset list such as "0", "0,2" or "0-3". */
export function cpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) continue;
    for (let c = a; c <= (b !== undefined && Number.isInteger(b) ? b : a); c++) out.push(c);
  }
  return out;
}

/** Busy ticks (everything but idle and iowait) of the given CPUs, from /proc/stat. */
export function cpuBusyTicks(cpus: number[]): number | undefined {
  try {
    let busy = 0;
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+) (.*)$/.exec(line);
      if (!m || !cpus.includes(Number(m[1]))) continue;
      const v = m[2]!.trim().split(/\s+/).map(Number);
      busy += v.reduce((x, y) => x + y, 0) - (v[3] ?? 0) - (v[4] ?? 0);
    }
    return busy;
  } catch {
    return undefined;
  }
}

export const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface CpuSample {
  at: number;
  /** CPU ticks of the process. */
  process: number | undefined;
  /** Busy ticks of the cores it is pinned to. */
  cores: number | undefined;
}

export function sampleCpu(pid: number | undefined, cpus: number[]): CpuSample {
  return { at: performance.now(), process: processTicks(pid), cores: cpuBusyTicks(cpus) };
}

/**
 * Cores' worth of CPU a process used between two samples, and the share of its cores used by
 * everything else (other processes, interrupts): a check that the run was clean.
 */
export function cpuShares(a: CpuSample, b: CpuSample, ncpus: number): { used: number | null; other: number | null } {
  const wall = (b.at - a.at) / 1000;
  if (wall <= 0) return { used: null, other: null };
  const used = a.process !== undefined && b.process !== undefined ? (b.process - a.process) / TICKS_PER_SECOND / wall : null;
  const cores = a.cores !== undefined && b.cores !== undefined ? (b.cores - a.cores) / TICKS_PER_SECOND / wall / ncpus : null;
  return { used, other: cores !== null && used !== null ? Math.max(0, cores - used / ncpus) : null };
}

// ---------------------------------------------------------------------------------------------
// Arguments: every runner and every child script that takes flags parses them here.

type BenchOptions = NonNullable<ParseArgsConfig['options']>;
type BenchValues<O extends BenchOptions> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

/**
 * The script's arguments without the `--` that pnpm passes on: `pnpm bench:tunnel -- --mb 100`
 * runs `tsx bench/tunnel/run.ts -- --mb 100` (pnpm 12 keeps the separator), and node:util's
 * parseArgs would take every flag after it for a positional.
 */
export function benchArgv(argv: readonly string[] = process.argv.slice(2)): string[] {
  return argv[0] === '--' ? argv.slice(1) : [...argv];
}

/** Bad usage: prints `bench:NAME: message` and the usage on stderr, exits 2. */
export function usageError(name: string, usage: string, message: string): never {
  process.stderr.write(`bench:${name}: ${message}\n\n${usage}\n`);
  process.exit(2);
}

/**
 * node:util parseArgs with the benchmarks' conventions: a leading `--` skipped (benchArgv),
 * unknown flags and positionals refused, `-h`/`--help` prints `usage` on stdout and exits 0, and
 * a bad argument prints `bench:NAME: <what was wrong>` and `usage` on stderr and exits 2.
 */
export function parseBenchArgs<const O extends BenchOptions>(name: string, usage: string, options: O, argv?: readonly string[]): BenchValues<O> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: benchArgv(argv),
      options: { ...options, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    usageError(name, usage, (e as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values as BenchValues<O>;
}
