/**
 * nat-server nodes (the built binary) for the multi-node TURN tests: each on its own loopback
 * alias, with an admin listener, killed at the end (`stop`, or SIGKILL with `kill`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../apps/server/dist/main.js', import.meta.url));

export interface Node {
  readonly ip: string;
  /** The primary UDP/TCP port. */
  readonly port: number;
  /** `ip:port`, for TurnClient. */
  readonly server: string;
  /** The admin listener's /metrics URL. */
  readonly admin: string;
  readonly child: ChildProcess;
  err(): string;
  /** Lines of /metrics starting with `name`. */
  metric(name: string): Promise<string>;
  /** SIGTERM and wait (SIGKILL with `kill: true`: a crash). Idempotent. */
  stop(options?: { kill?: boolean }): Promise<void>;
}

/** A random 127.X.Y.0/24 for one test file's aliases. */
export function randomNet(): string {
  return `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
}

/** Polls `read` every 50 ms until it gives a value; rejects after `ms` with `what` and `context()`. */
export function waitFor<T>(what: string, read: () => T | undefined | Promise<T | undefined>, ms = 30_000, context: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = async (): Promise<void> => {
      let v: T | undefined;
      try {
        v = await read();
      } catch (e) {
        return reject(e instanceof Error ? e : new Error(String(e)));
      }
      if (v !== undefined) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`${what} not seen within ${ms} ms${context() === '' ? '' : `:\n${context()}`}`));
      setTimeout(() => void tick(), 50);
    };
    void tick();
  });
}

/** Starts `nat-server --listen IP --port 0 --admin-port 0 ...args` and waits until it serves. */
export async function startNode(ip: string, args: readonly string[]): Promise<Node> {
  const all = [
    '--listen',
    ip,
    '--port',
    '0',
    '--alt-port',
    '0',
    '--admin-port',
    '0',
    '--admin-listen',
    ip,
    '--rate-limit',
    '0',
    '--log-level',
    'warn',
    ...args,
  ];
  const child = spawn(process.execPath, [BIN, ...all], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (o: { kill?: boolean } = {}): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(o.kill === true ? 'SIGKILL' : 'SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  };
  try {
    const admin = await waitFor(
      `nat-server ${ip}: the admin line`,
      () => {
        if (child.exitCode !== null) throw new Error(`nat-server exited with ${child.exitCode}:\n${err}`);
        return /admin (http:\/\/\S+\/metrics)/.exec(err)?.[1];
      },
      60_000,
      () => err,
    );
    const port = Number(/listening udp [\d.]+:(\d+) \(PP\)/.exec(err)![1]);
    const metric = async (name: string): Promise<string> =>
      (await (await fetch(admin)).text())
        .split('\n')
        .filter((l) => l.startsWith(name))
        .join('\n');
    return { ip, port, server: `${ip}:${port}`, admin, child, err: () => err, metric, stop };
  } catch (e) {
    await stop({ kill: true });
    throw e;
  }
}
