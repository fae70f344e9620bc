/**
 * The README's peer recipe, run exactly as written on a machine that has only loopback: a
 * private network namespace (made here, removed after) whose one interface is `lo`, so the
 * README's own addresses and ports (127.0.0.1:8080, 3478) collide with nothing, and nothing but
 * loopback exists to gather candidates on. Both `nat` processes use the default identity (in a
 * temporary config directory), as a newcomer's would.
 *
 *     pnpm nat-server --listen 127.0.0.1 --realm example.org --auth-secret S3CRET --rendezvous-port 8080
 *     pnpm nat listen --rendezvous ws://127.0.0.1:8080/
 *     pnpm nat ping PEER_ID --rendezvous ws://127.0.0.1:8080/ --json
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const NS = `nat-i13-${process.pid}-${randomBytes(3).toString('hex')}`;
const home = mkdtempSync(join(tmpdir(), 'nat-one-machine-'));
const children: ChildProcess[] = [];

function inNs(args: string[]) {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, ...args], {
    cwd: root,
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, 'config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += String(c)));
  child.stderr!.on('data', (c) => (err += String(c)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(() => {
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  execFileSync('ip', ['netns', 'del', NS]);
  rmSync(home, { recursive: true, force: true });
});

it('nat-server, nat listen and nat ping from the README work on a loopback-only machine with the defaults', async () => {
  const server = inNs(['apps/server/dist/main.js', '--listen', '127.0.0.1', '--realm', 'example.org', '--auth-secret', 'S3CRET', '--rendezvous-port', '8080']);
  await until('the rendezvous', () => /rendezvous ws:/.test(server.err()));
  const listen = inNs(['apps/cli/dist/main.js', 'listen', '--rendezvous', 'ws://127.0.0.1:8080/']);
  await until('the peer id', () => /^[a-z2-7]{32}\n/.test(listen.out()));
  const peerId = listen.out().split('\n')[0]!;
  const ping = inNs(['apps/cli/dist/main.js', 'ping', peerId, '--rendezvous', 'ws://127.0.0.1:8080/', '--json']);
  const code = await ping.exited;
  expect(code, `ping: ${ping.out()}${ping.err()}\nlisten: ${listen.err()}`).toBe(0);
  const r = JSON.parse(ping.out().trim()) as { peer: string; path: string; rttMs: number[]; localCandidate: { type: string; address: string } };
  expect(r.peer).toBe(peerId);
  expect(r.path).toBe('direct');
  expect(r.localCandidate.address).toMatch(/^127\./);
  expect(r.rttMs.length).toBeGreaterThan(0);
  // the listener was not replaced by the ping (it would have said so and stopped)
  expect(listen.child.exitCode).toBeNull();
  expect(listen.err()).toMatch(/connection from/);
  listen.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  expect(await listen.exited).toBe(0);
}, 60_000);
