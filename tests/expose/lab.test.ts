/**
 * Public exposure through a real kernel NAT: the services and `nat expose --public` run in the
 * client namespace behind the lab's NAT (port-restricted cone, Linux masquerade); nat-server and
 * a plain client that is not our code (bare node:net / node:dgram) are on the "internet" side.
 * The service's own address 198.18.0.2 cannot be reached from there: only the public port can.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Lab, type LabProcess, createLab, labAvailable } from '../lab/index.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = `${repo}apps/server/dist/main.js`;
const NAT_CLI = `${repo}apps/cli/dist/main.js`;
const SERVICES = fileURLToPath(new URL('./fixtures/services.mjs', import.meta.url));
const PLAIN = fileURLToPath(new URL('./fixtures/plain-client.mjs', import.meta.url));

const available = labAvailable();
if (!available.ok) console.warn(`[lab] expose tests skipped: ${available.reason}`);

async function waitFor(p: LabProcess, re: RegExp, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(p.output())) {
    if (p.hasExited() || Date.now() > end) throw new Error(`waited for ${re} in ${p.argv.slice(1, 3).join(' ')}:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!available.ok)('public exposure through a kernel NAT', () => {
  let lab: Lab;
  let server: LabProcess;
  let tcp: LabProcess;
  const startServer = (): LabProcess =>
    lab.spawn('server', [
      process.execPath,
      NAT_SERVER,
      '--listen',
      lab.server.primary,
      '--no-alt-port',
      '--rendezvous-port',
      '8443',
      '--expose-ports',
      '15400-15499',
      // 200 concurrent connections from one plain client below: above the default per-source share (64)
      '--expose-connections-per-source',
      '256',
      '--user',
      'alice:alice-pw',
      '--log-level',
      'warn',
    ]);
  const plain = async (...args: string[]): Promise<Record<string, unknown>> => {
    const r = await lab.exec('server', [process.execPath, PLAIN, ...args], { timeoutMs: 30_000 });
    try {
      return JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`plain client ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    }
  };
  const url = (): string => `ws://${lab.server.primary}:8443/`;
  /** Echo through port 15441 until `n` connections succeed at once, for up to `ms`. */
  const echoUntilOk = async (n: number, ms: number): Promise<unknown> => {
    const end = Date.now() + ms;
    for (;;) {
      const r = await plain('echo', lab.server.primary, '15441', String(n));
      if (r.ok === n || Date.now() > end) return r.ok;
      await new Promise((res) => setTimeout(res, 300));
    }
  };

  beforeAll(async () => {
    lab = await createLab({ behaviour: 'port-restricted-cone', name: 'expose' });
    server = startServer();
    const services = lab.spawn('client', [process.execPath, SERVICES, lab.client.lanAddress, '7000']);
    await Promise.all([waitFor(server, /expose ws:/), waitFor(services, /ready/)]);
    tcp = lab.spawn('client', [
      process.execPath,
      NAT_CLI,
      'expose',
      `${lab.client.lanAddress}:7000`,
      '--public',
      '--rendezvous',
      url(),
      '--user',
      'alice:alice-pw',
      '--public-port',
      '15441',
      '--json',
    ]);
    await waitFor(tcp, /"event":"exposed".*"port":15441/);
  }, 40_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  test('the service is not reachable directly, only through the public port', async () => {
    const direct = await lab.exec('server', [process.execPath, PLAIN, 'echo', lab.client.lanAddress, '7000', '1'], { timeoutMs: 5000 });
    expect(direct.stdout.includes('"ok":1')).toBe(false);
    expect(await plain('echo', lab.server.primary, '15441', '200')).toMatchObject({ ok: 200, errors: [] });
  });

  test('50 MB through the public port, verified by hash', async () => {
    expect(await plain('bulk', lab.server.primary, '15441', '50')).toMatchObject({ ok: true, bytes: 50 * 1024 * 1024, same: true });
  }, 30_000);

  test('a msgpack request/response service and a UDP service', async () => {
    const mp = lab.spawn('client', [
      process.execPath,
      NAT_CLI,
      'expose',
      `${lab.client.lanAddress}:7001`,
      '--public',
      '--rendezvous',
      url(),
      '--user',
      'alice:alice-pw',
      '--json',
    ]);
    await waitFor(mp, /"event":"exposed"/);
    const port = /"port":(\d+)/.exec(mp.output())![1]!;
    expect(Number(port)).toBeGreaterThanOrEqual(15400);
    expect(Number(port)).toBeLessThanOrEqual(15499);
    expect(await plain('msgpack', lab.server.primary, port, '40')).toEqual({ ok: true, answers: 40 });
    const udp = lab.spawn('client', [
      process.execPath,
      NAT_CLI,
      'expose',
      `${lab.client.lanAddress}:7000`,
      '--public',
      '--udp',
      '--rendezvous',
      url(),
      '--user',
      'alice:alice-pw',
      '--public-port',
      '15442',
      '--json',
    ]);
    await waitFor(udp, /"event":"exposed".*"transport":"udp"|"transport":"udp".*"event":"exposed"/);
    const u = await plain('udp', lab.server.primary, '15442', '10');
    expect(u.answers).toBe(10);
    await Promise.all([mp.stop(), udp.stop()]);
  });

  test('the NAT forgets its mappings (conntrack flush): new connections work again after the client reconnects', async () => {
    await lab.flushMappings();
    expect(await echoUntilOk(5, 20_000)).toBe(5);
  }, 30_000);

  test('the server restarts: the client reconnects and gets port 15441 back', async () => {
    await server.stop();
    server = startServer();
    await waitFor(server, /expose ws:/);
    await waitFor(tcp, /reconnected|"event":"exposed"[^\n]*\n[\s\S]*"event":"exposed"/, 15_000);
    expect(await echoUntilOk(3, 15_000)).toBe(3);
  }, 40_000);
});
