/**
 * Outbound connections through the server across a real kernel NAT: `nat expose --public
 * --outbound-socks` runs in the client namespace behind the lab's NAT (Linux masquerade), an HTTP
 * tracker (a bare node:http script) on the internet side records the source address of each
 * request, and curl in the client namespace is the SOCKS client. Through the proxy the tracker
 * sees the server's address; directly, the NAT's.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Lab, type LabProcess, createLab, labAvailable } from '../lab/index.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = `${repo}apps/server/dist/main.js`;
const NAT_CLI = `${repo}apps/cli/dist/main.js`;
const SERVICES = fileURLToPath(new URL('./fixtures/services.mjs', import.meta.url));
const TRACKER = fileURLToPath(new URL('./fixtures/tracker.mjs', import.meta.url));

const available = labAvailable();
if (!available.ok) console.warn(`[lab] expose outbound tests skipped: ${available.reason}`);

async function waitFor(p: LabProcess, re: RegExp, ms = 15_000): Promise<RegExpExecArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(p.output());
    if (m) return m;
    if (p.hasExited() || Date.now() > end) throw new Error(`waited for ${re} in ${p.argv.slice(1, 3).join(' ')}:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!available.ok)('outbound connections from the server, for a client behind a kernel NAT', () => {
  let lab: Lab;
  let socksPort: number;
  // The tracker is on the internet side at the lab server's second address; nat-server listens on the first.
  const tracker = (): string => `http://${lab.server.secondary}:6969/announce?port=15441`;

  beforeAll(async () => {
    lab = await createLab({ behaviour: 'port-restricted-cone', name: 'outbound' });
    const server = lab.spawn('server', [
      process.execPath,
      NAT_SERVER,
      '--listen',
      lab.server.primary,
      '--no-alt-port',
      '--rendezvous-port',
      '8443',
      '--expose-ports',
      '15400-15499',
      '--expose-outbound',
      // the lab's "internet" is a documentation range, which the peer policy refuses by default
      '--allow-peer',
      `${lab.server.secondary}/32`,
      '--user',
      'alice:alice-pw',
      '--log-level',
      'warn',
    ]);
    const services = lab.spawn('client', [process.execPath, SERVICES, lab.client.lanAddress, '7000']);
    const trackerProc = lab.spawn('server', [process.execPath, TRACKER, lab.server.secondary, '6969']);
    await Promise.all([waitFor(server, /expose ws:/), waitFor(services, /ready/), waitFor(trackerProc, /ready/)]);
    const nat = lab.spawn('client', [
      process.execPath,
      NAT_CLI,
      'expose',
      `${lab.client.lanAddress}:7000`,
      '--public',
      '--rendezvous',
      `ws://${lab.server.primary}:8443/`,
      '--user',
      'alice:alice-pw',
      '--public-port',
      '15441',
      '--outbound-socks',
      '127.0.0.1:0',
      '--json',
    ]);
    socksPort = Number((await waitFor(nat, /"event":"outbound-socks","address":"127\.0\.0\.1:(\d+)"/))[1]);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  test("the tracker records the server's address through the proxy, the NAT's without it", async () => {
    const direct = await lab.exec('client', ['curl', '--silent', '--show-error', '--max-time', '10', tracker()], { timeoutMs: 15_000 });
    expect(JSON.parse(direct.stdout)).toMatchObject({ ip: lab.router.wan });
    const via = await lab.exec('client', ['curl', '--silent', '--show-error', '--max-time', '10', '--socks5', `127.0.0.1:${socksPort}`, tracker()], {
      timeoutMs: 15_000,
    });
    expect(via.stderr).toBe('');
    expect(JSON.parse(via.stdout)).toMatchObject({ ip: lab.server.primary });
    // a target the server's policy refuses (the client's own LAN, a private range): SOCKS reply 0x02, curl exit 97
    const lan = await lab.exec(
      'client',
      ['curl', '--silent', '--max-time', '10', '--socks5', `127.0.0.1:${socksPort}`, `http://${lab.client.lanAddress}:7000/`],
      {
        timeoutMs: 15_000,
      },
    );
    expect(lan.code).toBe(97);
  }, 30_000);
});
