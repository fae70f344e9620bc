/**
 * A real redis-server (Debian's, installed by scripts/install-test-deps.sh) for the multi-node
 * tests and benchmarks: started on a free loopback port, no persistence (`--save ''
 * --appendonly no`), in a temporary folder, stopped (SIGTERM, then SIGKILL) by `stop()`.
 * Readiness and the figures (`INFO`) are read over a raw RESP connection, never through the code
 * under test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://HOST:PORT` */
  readonly url: string;
  /** Sends one command (inline form) over a fresh connection and returns the raw reply text. */
  command(...args: string[]): Promise<string>;
  /** `INFO section` as key -> value. */
  info(section?: string): Promise<Map<string, string>>;
  /** Total commands processed (INFO stats `total_commands_processed`). */
  commandsProcessed(): Promise<number>;
  /** What redis-server printed. */
  output(): string;
  /** Stops the server (SIGKILL with `kill: true`: a crash). Idempotent. */
  stop(options?: { kill?: boolean }): Promise<void>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Encodes one command as a RESP array of bulk strings. */
function resp(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** One command over a fresh TCP connection; resolves with the reply once it looks complete. */
function rawCommand(host: string, port: number, args: readonly string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`redis ${host}:${port}: no complete reply to ${args[0]} within ${timeoutMs} ms (got ${JSON.stringify(buf.slice(0, 80))})`));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      if (complete(buf)) {
        clearTimeout(t);
        s.end();
        resolve(buf);
      }
    });
    s.write(resp(args));
  });
}

/** Whether a RESP reply (simple, error, integer or one bulk string) is complete. */
function complete(buf: string): boolean {
  if (buf.length < 3 || !buf.includes('\r\n')) return false;
  if (buf[0] !== '$') return true;
  const len = Number(buf.slice(1, buf.indexOf('\r\n')));
  if (len < 0) return true;
  return Buffer.byteLength(buf) >= buf.indexOf('\r\n') + 2 + len + 2;
}

/** Starts redis-server on `host` (default 127.0.0.1) at `port` (default a free one; give one to restart a stopped server there). */
export async function startRedis(options: { host?: string; port?: number } = {}): Promise<RedisServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const dir = mkdtempSync(join(tmpdir(), 'nat-redis-'));
  let out = '';
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let stopped = false;
  const stop = async (o: { kill?: boolean } = {}): Promise<void> => {
    if (stopped) return exited;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(o.kill === true ? 'SIGKILL' : 'SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const command = (...args: string[]): Promise<string> => rawCommand(host, port, args);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`redis-server exited with ${child.exitCode} before it answered PING on ${host}:${port}:\n${out}`);
    }
    const pong = await command('PING').catch(() => '');
    if (pong.startsWith('+PONG')) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not answer PING on ${host}:${port} within 20 s:\n${out}`);
    }
    await sleep(50);
  }
  const info = async (section = 'all'): Promise<Map<string, string>> => {
    const text = await command('INFO', section);
    const m = new Map<string, string>();
    for (const line of text.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1));
    }
    return m;
  };
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    command,
    info,
    commandsProcessed: async () => Number((await info('stats')).get('total_commands_processed') ?? NaN),
    output: () => out,
    stop,
  };
}
