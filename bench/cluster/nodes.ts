/**
 * What `pnpm bench:cluster` starts and reads: nat-server nodes (one process each, rendezvous on a
 * free port of 127.0.0.1, with `--redis URL --node-id ID` in the cluster mode), load generator
 * processes (peers.ts, forked), and the figures of a process from /proc (RSS, CPU ticks) and of
 * redis-server from INFO.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisServer } from '../../tests/cluster/redis.js';
import { LISTEN_IP, ROOT, type Started, TICKS_PER_SECOND, alive, sampleCpu, sleep, start } from '../harness.js';
import type { OfferedReport, OffersCommand, RegisterCommand, RegisteredReport } from './peers.js';

const NAT_SERVER = join(ROOT, 'apps/server/dist/main.js');

export interface Node {
  readonly id: string;
  readonly started: Started;
  readonly pid: number;
  /** Its rendezvous WebSocket URL. */
  readonly url: string;
}

/** Starts one nat-server node and waits for its rendezvous line (`rendezvous ws://...`). */
export async function startNode(id: string, redisUrl: string | undefined): Promise<Node> {
  const args = ['--listen', LISTEN_IP, '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0', '--workers', '1', '--log-level', 'warn'];
  if (redisUrl !== undefined) args.push('--redis', redisUrl, '--node-id', id);
  const started = start(process.execPath, [NAT_SERVER, ...args]);
  let err = '';
  started.child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /^rendezvous (ws:\/\/\S+)/m.exec(err);
    if (m) return { id, started, pid: started.child.pid!, url: m[1]! };
    if (!alive(started)) throw new Error(`nat-server node ${id} exited before its rendezvous listened:\n${started.output()}`);
    if (Date.now() > deadline) throw new Error(`nat-server node ${id}: no rendezvous line within 30 s:\n${started.output()}`);
    await sleep(50);
  }
}

/** Resident set size of a process, bytes (VmRSS of /proc/PID/status). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** CPU seconds (utime + stime, all threads) a process has used (NaN once it is gone). */
export function cpuSecondsOf(pid: number): number {
  return (sampleCpu(pid, []).process ?? NaN) / TICKS_PER_SECOND;
}

/** What redis-server says about itself: commands processed (in all and per command), memory, CPU seconds. */
export interface RedisSample {
  commands: number;
  perCommand: Map<string, number>;
  usedMemory: number;
  cpuSeconds: number;
}

export async function sampleRedis(redis: RedisServer): Promise<RedisSample> {
  const info = await redis.info('all');
  const perCommand = new Map<string, number>();
  for (const [k, v] of info) {
    const m = /^cmdstat_(.+)$/.exec(k);
    const calls = /(?:^|,)calls=(\d+)/.exec(v);
    if (m && calls) perCommand.set(m[1]!, Number(calls[1]));
  }
  return {
    commands: Number(info.get('total_commands_processed')),
    perCommand,
    usedMemory: Number(info.get('used_memory')),
    cpuSeconds: Number(info.get('used_cpu_sys')) + Number(info.get('used_cpu_user')),
  };
}

/**
 * Kills redis-server (SIGKILL, its pid from INFO server) if the runner exits before stopping it:
 * killChildrenOnExit exits at once on Ctrl-C. Returns the function that drops the guard.
 */
export async function killOnExit(redis: RedisServer): Promise<() => void> {
  const pid = Number((await redis.info('server')).get('process_id'));
  const kill = (): void => {
    try {
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', kill);
  return () => process.off('exit', kill);
}

/** A forked load generator (peers.ts) and its two requests. */
export interface Generator {
  readonly child: ChildProcess;
  register(c: Omit<RegisterCommand, 'type'>): Promise<RegisteredReport>;
  offers(c: Omit<OffersCommand, 'type'>): Promise<OfferedReport>;
  close(): Promise<void>;
}

export function forkGenerator(perSource: number): Generator {
  const child = fork(join(ROOT, 'bench/cluster/peers.ts'), ['--per-source', String(perSource)], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.on('exit', () => child.kill('SIGKILL'));
  const ask = <T>(command: RegisterCommand | OffersCommand, want: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: { type: string; message?: string }): void => {
        child.off('exit', onExit);
        child.off('message', onMessage);
        if (m.type === want) resolve(m as T);
        else reject(new Error(`load generator: ${m.message ?? m.type}`));
      };
      const onExit = (code: number | null): void => reject(new Error(`load generator exited (${code}) during ${command.type}`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(command);
    });
  return {
    child,
    register: (c) => ask<RegisteredReport>({ type: 'register', ...c }, 'registered'),
    offers: (c) => ask<OfferedReport>({ type: 'offers', ...c }, 'offered'),
    async close() {
      if (child.connected) child.send({ type: 'close' });
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
