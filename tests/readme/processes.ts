/**
 * Processes and services of the README recipe test: spawned commands with their output kept,
 * stopped on every exit path; TCP and UDP echo services standing in for the services the
 * READMEs expose (a ZeroNet fileserver, a UDP echo peer); and readiness checks that do not ask
 * the code under test (a TCP connect, a round trip through the path).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server, type Socket, connect, createServer } from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Proc {
  /** What the README line says, for messages. */
  line: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Exit code (null while running or when killed by a signal). */
  readonly exited: Promise<number | null>;
  running(): boolean;
}

const live = new Set<Proc>();

export interface SpawnOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export function spawnProc(line: string, argv: readonly string[], o: SpawnOptions): Proc {
  const child = spawn(argv[0]!, argv.slice(1), { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | null>((r) => {
    child.once('close', (code) => r(code));
    child.once('error', (e) => {
      err += `\n${e.message}`;
      r(-1);
    });
  });
  const p: Proc = { line, child, stdout: () => out, stderr: () => err, exited, running: () => child.exitCode === null && child.signalCode === null };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

/** Runs a command to its end (SIGKILL after `timeoutMs`). */
export async function runProc(
  line: string,
  argv: readonly string[],
  o: SpawnOptions,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  const p = spawnProc(line, argv, o);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.child.kill('SIGKILL');
  }, timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr(), timedOut };
}

/** SIGTERM (what Ctrl-C does for these commands), SIGKILL after 5 s; resolves with the exit code. */
export async function stopProc(p: Proc): Promise<number | null> {
  if (!p.running()) return p.exited;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

/** Kills every process still running (afterAll, process exit). */
export function killAllProcs(): void {
  for (const p of live) if (p.running()) p.child.kill('SIGKILL');
}
process.once('exit', killAllProcs);

/** Waits until `check` returns a value; fails with `what` and the process's output on timeout or exit. */
export async function waitFor<T>(what: string, p: Proc | undefined, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (p !== undefined && !p.running()) throw new Error(`${what}: \`${p.line}\` exited (${await p.exited}) first:\n${p.stdout()}\n${p.stderr()}`);
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs / 1000} s${p ? `:\n${p.stdout()}\n${p.stderr()}` : ''}`);
    await sleep(100);
  }
}

/** True when a TCP connection to host:port is accepted. */
export function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

/** Sends `data` on a new TCP connection and resolves with what comes back (within 5 s), or undefined. */
export function tcpRoundTrip(host: string, port: number, data: Buffer): Promise<Buffer | undefined> {
  return new Promise((r) => {
    const s = connect({ host, port });
    let got = Buffer.alloc(0);
    const done = (v: Buffer | undefined): void => {
      clearTimeout(timer);
      s.destroy();
      r(v);
    };
    const timer = setTimeout(() => done(undefined), 5000);
    s.once('connect', () => s.write(data));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= data.length) done(got);
    });
    s.once('error', () => done(undefined));
    s.once('close', () => done(got.length > 0 ? got : undefined));
  });
}

/** Sends one datagram from `fromHost` and resolves with the first answer (within 2 s), or undefined. */
export function udpRoundTrip(fromHost: string, host: string, port: number, data: Buffer): Promise<Buffer | undefined> {
  return new Promise((r) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      r(undefined);
    }, 2000);
    s.on('error', () => undefined);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      r(m);
    });
    s.bind(0, fromHost, () => s.send(data, port, host));
  });
}

export interface EchoServices {
  /** A TCP echo service on host:port (kept until closeAll). */
  tcp(host: string, port: number): Promise<void>;
  /** A UDP echo service on host:port. */
  udp(host: string, port: number): Promise<void>;
  closeAll(): Promise<void>;
}

export function echoServices(): EchoServices {
  const tcp = new Map<string, Server>();
  const udp = new Map<string, UdpSocket>();
  const conns = new Set<Socket>();
  return {
    async tcp(host, port) {
      if (tcp.has(`${host}:${port}`)) return;
      const s = createServer((c) => {
        conns.add(c);
        c.on('close', () => conns.delete(c));
        c.on('error', () => undefined);
        c.pipe(c);
      });
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(port, host, () => res());
      });
      tcp.set(`${host}:${port}`, s);
    },
    async udp(host, port) {
      if (udp.has(`${host}:${port}`)) return;
      const s = createSocket('udp4');
      s.on('message', (m, from) => s.send(m, from.port, from.address));
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.bind(port, host, () => res());
      });
      udp.set(`${host}:${port}`, s);
    },
    async closeAll() {
      for (const c of conns) c.destroy();
      await Promise.all([...tcp.values()].map((s) => new Promise((r) => s.close(r))));
      await Promise.all([...udp.values()].map((s) => new Promise((r) => s.close(() => r(undefined)))));
      tcp.clear();
      udp.clear();
    },
  };
}
