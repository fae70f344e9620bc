#!/usr/bin/env node
/**
 * `pnpm demo`: starts nat-server (the monorepo's apps/server build, as a child process) on
 * loopback (127.0.0.1 and 127.0.0.2, ports 3478/3479, or free ports when those are taken), runs
 * `nat detect` against it and prints the report, then keeps serving until Ctrl-C so that
 * `pnpm nat ...` can be tried against it. `--once` exits after the report.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runCli } from './cli.js';

/** nat-server listens on UDP and TCP, each with these four RFC 5780 roles: ready when all are printed. */
const ROLES = ['PP', 'PA', 'AP', 'AA'] as const;
const LISTENING = /^listening (udp|tcp) +(\S+):(\d+) \((PP|PA|AP|AA)\)$/;
const READY_TIMEOUT_MS = 30_000;
/** Set once the demo stops nat-server: its goodbye on stderr is then not news. */
let stopping = false;

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

/** nat-server's entry point: the `nat-server` bin of @nat/server-app, beside this package in the monorepo. */
function serverBin(): string {
  const pkgUrl = new URL('../../server/package.json', import.meta.url);
  let bin: string | undefined;
  try {
    const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { name?: string; bin?: Record<string, string> };
    if (pkg.name === '@nat/server-app') bin = pkg.bin?.['nat-server'];
  } catch {
    bin = undefined;
  }
  if (bin === undefined) fail(`the demo runs nat-server from a checkout of the repository (apps/server) and found none at ${fileURLToPath(pkgUrl)}`);
  const file = fileURLToPath(new URL(bin, pkgUrl));
  if (!existsSync(file)) fail(`nat-server is not built (${file} is missing): run pnpm demo, which builds first, or pnpm turbo run build`);
  return file;
}

type Started =
  { readonly child: ChildProcess; readonly port: number; readonly lines: readonly string[] } | { readonly exit: number; readonly lines: readonly string[] };

/** Starts nat-server; resolves once it has printed all its listeners, or with its exit code when it stopped first. */
function startServer(bin: string, args: readonly string[]): Promise<Started> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  process.once('exit', () => child.kill('SIGTERM'));
  child.stdout.pipe(process.stdout);
  const lines: string[] = [];
  const seen = new Set<string>();
  let port: number | undefined;
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: Started): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      finish({ exit: 1, lines: [...lines, `(no listeners printed within ${READY_TIMEOUT_MS / 1000} s)`] });
    }, READY_TIMEOUT_MS);
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (done) {
        if (!stopping) process.stderr.write(`${line}\n`);
        return;
      }
      lines.push(line);
      const m = LISTENING.exec(line);
      if (m === null) return;
      if (m[1] === 'udp' && m[4] === 'PP') port = Number(m[3]);
      seen.add(`${m[1]} ${m[4]}`);
      if (port !== undefined && ['udp', 'tcp'].every((t) => ROLES.every((r) => seen.has(`${t} ${r}`)))) finish({ child, port, lines });
    });
    child.once('exit', (code) => finish({ exit: code ?? 1, lines }));
  });
}

/** Stops nat-server (SIGTERM) and waits for it to exit. */
function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  stopping = true;
  child.kill('SIGTERM');
  return exited;
}

const once = process.argv.includes('--once');
const bin = serverBin();
const base = ['--listen', '127.0.0.1', '--alternate', '127.0.0.2', '--log-level', 'warn'];
let started = await startServer(bin, [...base, '--port', '3478', '--alt-port', '3479']);
// Exit 1 is nat-server's "cannot listen" (exit 2 would be a bad flag): try free ports instead.
if ('exit' in started && started.exit === 1) {
  const why = started.lines.filter((l) => l.startsWith('nat-server:')).join('; ') || `nat-server exited ${started.exit}`;
  process.stderr.write(`ports 3478/3479 are taken (${why}); using free ports instead\n`);
  started = await startServer(bin, [...base, '--port', '0', '--alt-port', '0']);
}
if ('exit' in started) {
  process.stderr.write(started.lines.map((l) => `${l}\n`).join(''));
  fail(`nat-server exited ${started.exit} before it was listening`);
}
const { child, port } = started;
process.stdout.write(`nat-server is listening (${bin}):\n${started.lines.map((l) => `  ${l}\n`).join('')}\n`);
process.stdout.write(`$ nat detect --server 127.0.0.1:${port}\n`);
const code = await runCli(['detect', '--server', `127.0.0.1:${port}`]);
if (once || code !== 0) {
  await stopServer(child);
  process.exit(code);
}
process.stdout.write(
  `\nThe server keeps running. In another terminal, try:\n  pnpm nat stun 127.0.0.1:${port}\n  pnpm nat detect --server 127.0.0.1:${port} --json\nCtrl-C stops it.\n`,
);
child.once('exit', (c, signal) => {
  if (!stopping) fail(`nat-server stopped by itself (${signal ?? `exit ${c}`})`);
});
const stop = (): void => {
  void stopServer(child).then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
