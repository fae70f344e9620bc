/**
 * nat-server on a cloud VM behind its provider's 1:1 NAT (tests/lab/cloud-nat-lab.ts), started
 * with `--external-ip PUBLIC` and nothing else about the NAT: peers on the "internet" know only
 * the public address. `nat turn` relays through it to an echoing peer; two `nat ping
 * --relay-only` peers meet at its rendezvous and talk through two of its allocations; a `nat
 * expose --public` port is reached by a plain TCP client at the public address.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUD_NAT, type CloudNatLab, createCloudNatLab } from './cloud-nat-lab.js';
import { NAT_CLI, NAT_SERVER, jsonLines, waitFor } from './ice-lab.js';
import { labAvailable, listLabNamespaces } from './netns.js';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] cloud NAT lab skipped: ${availability.reason}`);

const PUBLIC = CLOUD_NAT.vmPublic;
const RENDEZVOUS = `ws://${PUBLIC}:8080/`;
const USER = 'alice:alice-pw';

/** A UDP echo server that prints each datagram's source as `from IP:PORT`. */
const UDP_ECHO = `const d = require('node:dgram').createSocket('udp4');
d.on('message', (m, r) => { console.log('from ' + r.address + ':' + r.port); d.send(m, r.port, r.address); });
d.bind(9000, process.argv[1], () => console.log('echo ready'));`;
/** A TCP service that greets and closes. */
const TCP_BANNER = `require('node:net').createServer((s) => s.end('hello from peer a\\n')).listen(9100, '127.0.0.1', () => console.log('banner ready'));`;
/** A plain TCP client: prints what it reads from argv[1]:argv[2]. */
const TCP_READ = `const c = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let got = ''; c.on('data', (d) => (got += d)); c.on('end', () => { process.stdout.write(got); process.exit(0); });
c.on('error', (e) => { console.error(e.message); process.exit(1); }); setTimeout(() => process.exit(2), 10000);`;

describe.skipIf(!availability.ok)('nat-server behind a cloud 1:1 NAT (--external-ip)', () => {
  let lab: CloudNatLab;

  beforeAll(async () => {
    lab = await createCloudNatLab();
    const server = lab.spawn('vm', [
      process.execPath,
      NAT_SERVER,
      ...['--listen', CLOUD_NAT.vmPrivate, '--external-ip', PUBLIC, '--no-alt-port'],
      ...['--realm', 'lab', '--user', USER, '--auth-secret', 'lab-secret', '--allow-peer', '203.0.113.0/24'],
      ...['--rendezvous-port', '8080', '--expose-ports', '20000-20099', '--log-level', 'warn'],
    ]);
    await waitFor(
      () => /expose ws:/.test(server.output()) || server.hasExited(),
      20_000,
      'nat-server',
      () => server.output(),
    );
    if (server.hasExited()) throw new Error(`nat-server exited:\n${server.output()}`);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
    expect(listLabNamespaces().filter((n) => n.startsWith(lab.id))).toEqual([]);
  });

  it('relays a peer on the internet to another through the public address (nat turn --echo)', async () => {
    const echo = lab.spawn('b', [process.execPath, '-e', UDP_ECHO, CLOUD_NAT.peerB]);
    await waitFor(
      () => /echo ready/.test(echo.output()),
      10_000,
      'the echo peer',
      () => echo.output(),
    );
    const r = await lab.exec(
      'a',
      [process.execPath, NAT_CLI, 'turn', '--server', PUBLIC, '--user', USER, '--peer', `${CLOUD_NAT.peerB}:9000`, '--echo', '-n', '3', '--json'],
      { timeoutMs: 30_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { relayedAddress: string; mappedAddress: string; sent: number; received: number };
    expect(out.relayedAddress).toMatch(new RegExp(`^${PUBLIC.replace(/\./g, '\\.')}:\\d+$`));
    expect(out.mappedAddress).toMatch(new RegExp(`^${CLOUD_NAT.peerA.replace(/\./g, '\\.')}:`));
    expect(out).toMatchObject({ sent: 3, received: 3 });
    // The echoing peer saw the relay's datagrams come from the relayed address it was told.
    expect(echo.output()).toContain(`from ${out.relayedAddress}`);
    await echo.stop();
  }, 60_000);

  it('two relay-only peers meet at its rendezvous and ping through two of its allocations', async () => {
    const listener = lab.spawn('b', [
      process.execPath,
      NAT_CLI,
      'listen',
      '--rendezvous',
      RENDEZVOUS,
      '--json',
      '--relay-only',
      '--identity',
      join(lab.tmpDir, 'b.key'),
    ]);
    await waitFor(
      () => /^\{"id":/m.test(listener.output()) || listener.hasExited(),
      20_000,
      'nat listen id',
      () => listener.output(),
    );
    const { id } = jsonLines(listener).find((l) => typeof l.id === 'string') as { id: string };
    const r = await lab.exec('a', [process.execPath, NAT_CLI, 'ping', id, '--rendezvous', RENDEZVOUS, '--relay-only', '--json', '-n', '2'], {
      timeoutMs: 45_000,
    });
    expect(r.code, `${r.stdout}\n${r.stderr}\n${listener.output()}`).toBe(0);
    const ping = JSON.parse(r.stdout) as {
      path: string;
      localCandidate: { type: string; address: string };
      remoteCandidate: { type: string; address: string };
      rttMs: number[];
    };
    expect(ping.path).toBe('relay');
    expect(ping.localCandidate).toMatchObject({ type: 'relay' });
    expect(ping.localCandidate.address.startsWith(`${PUBLIC}:`)).toBe(true);
    expect(ping.remoteCandidate.address.startsWith(`${PUBLIC}:`)).toBe(true);
    expect(ping.rttMs.length).toBe(2);
    await listener.stop();
  }, 90_000);

  it('a nat expose --public port is reached by a plain TCP client at the public address', async () => {
    const banner = lab.spawn('a', [process.execPath, '-e', TCP_BANNER]);
    await waitFor(
      () => /banner ready/.test(banner.output()),
      10_000,
      'the TCP service',
      () => banner.output(),
    );
    const expose = lab.spawn('a', [process.execPath, NAT_CLI, 'expose', '127.0.0.1:9100', '--public', '--rendezvous', RENDEZVOUS, '--user', USER, '--json']);
    await waitFor(
      () => jsonLines(expose).some((l) => l.event === 'exposed') || expose.hasExited(),
      20_000,
      'nat expose',
      () => expose.output(),
    );
    const exposed = jsonLines(expose).find((l) => l.event === 'exposed') as { address: string; port: number };
    expect(exposed.address).toBe(`${PUBLIC}:${exposed.port}`);
    const r = await lab.exec('b', [process.execPath, '-e', TCP_READ, PUBLIC, String(exposed.port)], { timeoutMs: 20_000 });
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: 'hello from peer a\n', stderr: '' });
    await expose.stop();
    await banner.stop();
  }, 60_000);
});
