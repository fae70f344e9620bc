/**
 * `nat-server --redis URL --node-id ID` as an operator meets it (the built binary): Redis not
 * answering at start is exit 1 naming the flag and the address (never the password); a URL that
 * is not one is exit 2 naming the flag (never echoing the value); a node publishes its record
 * (node id, the rendezvous URL peers dial) with a liveness TTL, and takes it away on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RedisServer, startRedis } from './redis.js';

const bin = fileURLToPath(new URL('../../apps/server/dist/main.js', import.meta.url));
let redis: RedisServer;

function run(args: string[]) {
  const child = spawn(process.execPath, [bin, '--listen', '127.77.1.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (c) => (err += String(c)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, err: () => err };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

it('exits 1 when Redis does not answer, naming the flag and the address but not the password', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const node = run(['--redis', `redis://nat:s3cret-password@127.0.0.1:${port}/0`]);
  expect(await node.exited).toBe(1);
  expect(node.err()).toMatch(/--redis/);
  expect(node.err()).toContain(`127.0.0.1:${port}`);
  expect(node.err()).not.toContain('s3cret-password');
  expect(node.err()).not.toMatch(/^rendezvous /m); // nothing was served
});

it('exits 2 for a URL that is not a redis:// one, without echoing it', async () => {
  const node = run(['--redis', 'http://nat:s3cret-password@127.0.0.1:1/']);
  expect(await node.exited).toBe(2);
  expect(node.err()).toMatch(/--redis: expected a redis:\/\//);
  expect(node.err()).not.toContain('s3cret-password');
});

it('publishes the node record (id, rendezvous URL) with a liveness TTL, and removes it on SIGTERM', async () => {
  const node = run(['--redis', redis.url, '--node-id', 'edge-7']);
  await until('the node', () => /^cluster: node edge-7 /m.test(node.err()) || node.child.exitCode !== null);
  const url = /^rendezvous (ws:\/\/\S+)/m.exec(node.err())![1]!;
  const members = await redis.command('ZRANGE', 'nat:nodes', '0', '-1');
  const instance = /edge-7~[0-9a-f]{8}/.exec(members)?.[0];
  expect(instance).toBeDefined();
  const record = await redis.command('GET', `nat:node:${instance}`);
  expect(JSON.parse(record.split('\r\n')[1]!)).toMatchObject({ nodeId: 'edge-7', url, peers: 0 });
  const ttl = Number(/:(\d+)/.exec(await redis.command('PTTL', `nat:node:${instance}`))?.[1]);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(5000);
  node.child.kill('SIGTERM');
  expect(await node.exited).toBe(0);
  expect(await redis.command('EXISTS', `nat:node:${instance}`)).toBe(':0\r\n');
  expect(await redis.command('ZRANGE', 'nat:nodes', '0', '-1')).not.toContain(instance);
});
