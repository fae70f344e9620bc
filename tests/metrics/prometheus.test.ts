/**
 * nat-server's metrics scraped by a real Prometheus (Debian's, started by the test): the
 * PromQL answers must match what the test did to the server through its TURN port (allocations
 * held, one wrong password, relayed bytes), and the status of the scrape target must be `up`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TurnClient, isStunClientError } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Prometheus, startPrometheus } from './prometheus.js';

const ROOT = join(import.meta.dirname, '../..');
const TOKEN = 'metrics-test-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'nat-metrics-'));
let server: ChildProcess;
let stderr = '';
let turnUrl = '';
let adminTarget = '';
let prometheus: Prometheus | undefined;
const clients: TurnClient[] = [];

beforeAll(async () => {
  writeFileSync(join(dir, 'admin-token'), `${TOKEN}\n`, { mode: 0o600 });
  const args = ['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--realm', 'metrics.test', '--user', 'alice:alice-pw', '--allow-peer', '127.0.0.0/8'];
  server = spawn(process.execPath, [join(ROOT, 'apps/server/dist/main.js'), ...args, '--admin-port', '0', '--admin-token-file', join(dir, 'admin-token')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const deadline = Date.now() + 20_000;
  while (!/admin http:\/\/(\S+)\/metrics/.test(stderr) || !/listening udp (\S+) \(PP\)/.test(stderr)) {
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`nat-server did not start (exit ${server.exitCode}):\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  adminTarget = /admin http:\/\/(\S+)\/metrics/.exec(stderr)![1]!;
  turnUrl = /listening udp (\S+) \(PP\)/.exec(stderr)![1]!;
}, 30_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await prometheus?.stop();
  if (server?.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const allocate = (password = 'alice-pw'): Promise<TurnClient> =>
  TurnClient.connect({ server: turnUrl, username: 'alice', password, transport: 'udp', signal: AbortSignal.timeout(10_000) });

describe('nat-server metrics scraped by Prometheus', () => {
  it('the admin listener refuses a scrape without the token', async () => {
    const r = await fetch(`http://${adminTarget}/metrics`);
    expect(r.status).toBe(401);
    expect((await r.text()).length).toBeLessThan(64);
  });

  it('3 allocations held and 1 wrong password read back through PromQL', { timeout: 90_000 }, async () => {
    for (let i = 0; i < 3; i++) clients.push(await allocate());
    const wrong = await allocate('not-the-password').then(
      (c) => {
        clients.push(c);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(isStunClientError(wrong, 'ERROR_RESPONSE')).toBe(true);
    // bytes relayed between two of the allocations, both ways
    const [a, b] = clients as [TurnClient, TurnClient];
    await a.createPermission(b.relayedAddress);
    await b.createPermission(a.relayedAddress);
    const got = new Promise<void>((resolve) => b.on('data', () => resolve()));
    for (let i = 0; i < 5; i++) a.send(b.relayedAddress, new Uint8Array(100));
    await got;

    prometheus = await startPrometheus(adminTarget, { token: TOKEN });
    const up = await prometheus.waitFor('up{job="nat"}', (v) => v === 1);
    expect(up, `target: ${JSON.stringify(await prometheus.target())}\n${prometheus.output()}`).toBe(1);
    expect(await prometheus.waitFor('nat_turn_allocations_active', (v) => v === 3)).toBe(3);
    expect(await prometheus.waitFor('sum(nat_auth_failures_total{service="turn",reason="bad-integrity"})', (v) => v === 1)).toBe(1);
    expect(await prometheus.waitFor('sum(nat_turn_allocations_created_total)', (v) => v === 3)).toBe(3);
    const bytes = await prometheus.waitFor('sum(nat_turn_relayed_bytes_total{direction="to_peer"})', (v) => (v ?? 0) >= 100);
    expect(bytes).toBeGreaterThanOrEqual(100);
    expect(bytes).toBeLessThanOrEqual(500);
    expect(await prometheus.query('nat_process_resident_memory_bytes')).toBeGreaterThan(10_000_000);

    // one allocation released: the gauge follows
    await clients.shift()!.close();
    expect(await prometheus.waitFor('nat_turn_allocations_active', (v) => v === 2)).toBe(2);
  });
});
