/** Shared by the one-port tests: a certificate on disk, the built nat-server, a unique loopback /24. */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadTlsCredentials } from '@nat/server';

export const ROOT = join(import.meta.dirname, '../..');
export const SERVER_BIN = join(ROOT, 'apps/server/dist/main.js');

/** A loopback prefix `127.X.Y.` of this run (hosts .1 and up are free to bind). */
export function loopbackNet(): string {
  return `127.${randomInt(100, 250)}.${randomInt(1, 250)}.`;
}

/** A self-signed certificate for `ips`, written as cert.pem and key.pem in `dir`. */
export async function writeCert(dir: string, ips: string[]): Promise<{ cert: string; key: string; certPem: string }> {
  const c = await loadTlsCredentials({ selfSigned: true, altIps: ips });
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  writeFileSync(cert, c.cert);
  writeFileSync(key, c.key, { mode: 0o600 });
  return { cert, key, certPem: String(c.cert) };
}

/** A port free on `host` right now (for a tool that cannot be told port 0). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface RunningServer {
  readonly child: ChildProcess;
  stderr(): string;
  stdout(): string;
  /** The first match of `re` in stderr, waited for. */
  line(re: RegExp): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** Starts the built nat-server with `args` and waits for `ready` on its stderr. */
export async function startServer(args: string[], ready: RegExp): Promise<RunningServer> {
  const child = spawn(process.execPath, [SERVER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const line = async (re: RegExp): Promise<RegExpExecArray> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const m = re.exec(err);
      if (m) return m;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nat-server: no ${re} (exit ${child.exitCode}):\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const server: RunningServer = {
    child,
    stderr: () => err,
    stdout: () => out,
    line,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
  try {
    await line(ready);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
