/**
 * The tunnel end to end on loopback, in-process: `nat expose` (two services from a config file)
 * and `nat connect` meet at our rendezvous service; TCP connections to connect's local port
 * reach the services over one peer link. 50 MB up and 8 MB down verified by SHA-256, 100 concurrent
 * connections, half-close both ways, an unlisted peer refused, names bound to keys.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type Server, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '@nat/cli';
import { generateIdentity, loadOrCreateIdentity } from '@nat/client';
import { type RendezvousServer, type StunServer, restApiSecrets, startRendezvous, startStunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture, cliRunner, roundTrip, sha256, startHashService } from './helpers.js';

const SECRET = 'tunnel-test-secret';
let stun: StunServer;
let rv: RendezvousServer;
let dir: string;
let hashService: Awaited<ReturnType<typeof startHashService>>;
let source: Server;
let sourcePort: number;
const SOURCE = randomBytes(50 << 20);
/** What the download service sends. */
const DOWN = SOURCE.subarray(0, 8 << 20);

const { start, stopAll } = cliRunner();

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: { realm: 'tunnel.test', auth: restApiSecrets([SECRET]), peers: { allow: ['127.0.0.0/8'] } },
  });
  const turnPort = stun.listeners.find((l) => l.transport === 'udp')!.address.port;
  rv = await startRendezvous({
    host: '127.0.0.1',
    port: 0,
    turn: { urls: [`stun:127.0.0.1:${turnPort}`, `turn:127.0.0.1:${turnPort}`], secret: SECRET, ttl: 300 },
  });
  dir = await mkdtemp(join(tmpdir(), 'nat-tunnel-'));
  hashService = await startHashService();
  // a download service: sends SOURCE and closes
  source = createServer((s) => {
    s.on('error', () => {});
    s.end(DOWN);
  });
  await new Promise<void>((r) => source.listen(0, '127.0.0.1', r));
  sourcePort = (source.address() as { port: number }).port;
});

afterAll(async () => {
  await stopAll();
  hashService?.server.close();
  source?.close();
  await rv?.close();
  await stun?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('nat expose / nat connect on loopback', () => {
  let connectPort = 0;
  let connectRun: ReturnType<typeof start>;
  let exposeRun: ReturnType<typeof start>;

  it('exposes two services from a config file and connects by name', async () => {
    const connector = await loadOrCreateIdentity(join(dir, 'connect.pem'));
    const config = join(dir, 'services.json');
    await writeFile(
      config,
      JSON.stringify({
        rendezvous: rv.url,
        services: [
          { name: 'hash-svc', target: `127.0.0.1:${hashService.port}`, allow: [connector.id] },
          { name: 'source-svc', target: `127.0.0.1:${sourcePort}`, allowAny: true },
        ],
      }),
    );
    exposeRun = start(['expose', '--config', config, '--identity', join(dir, 'expose.pem'), '--host-address', '127.0.0.1', '--json']);
    const ready = await exposeRun.waitFor((l) => l.event === 'ready');
    expect(ready.services).toHaveLength(2);
    connectRun = start([
      'connect',
      'hash-svc',
      '--listen',
      '127.0.0.1:0',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'connect.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    const listening = await connectRun.waitFor((l) => l.event === 'listening');
    expect(listening.peer).toBe(ready.id);
    connectPort = Number(String(listening.listen).split(':')[1]);
    await connectRun.waitFor((l) => l.event === 'link');
    const path = await connectRun.waitFor((l) => l.event === 'path');
    expect(path.path).toBe('direct');
    // on a direct pair the streams leave the shim on both sides, once each told the other
    const direct = (l: Record<string, unknown>): boolean => (l.event === 'route' || l.event === 'link') && l.route === 'direct';
    await connectRun.waitFor(direct);
    await exposeRun.waitFor(direct);
  });

  it('carries 50 MB up, verified by hash, and half-closes (the service answers after our end)', async () => {
    const reply = await roundTrip(connectPort, SOURCE);
    expect(reply).toBe(sha256(SOURCE));
  }, 60_000);

  it('carries 8 MB down from another service of the same peer (by peer id and --service)', async () => {
    const ready = await exposeRun.waitFor((l) => l.event === 'ready');
    const down = start([
      'connect',
      String(ready.id),
      '--service',
      'source-svc',
      '--listen',
      '127.0.0.1:0',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'down.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    const l = await down.waitFor((e) => e.event === 'listening');
    const port = Number(String(l.listen).split(':')[1]);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect({ host: '127.0.0.1', port });
      s.on('data', (d) => chunks.push(d));
      s.on('end', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
    });
    expect(got.length).toBe(DOWN.length);
    expect(sha256(got)).toBe(sha256(DOWN));
    down.stop.abort();
    expect(await down.done).toBe(0);
  }, 60_000);

  it('100 concurrent connections share the one link, each intact', async () => {
    const before = hashService.connections();
    const payloads = Array.from({ length: 100 }, (_, i) => randomBytes(32_000 + i * 97));
    const replies = await Promise.all(payloads.map((p) => roundTrip(connectPort, p)));
    replies.forEach((r, i) => expect(r).toBe(sha256(payloads[i]!)));
    expect(hashService.connections() - before).toBe(100);
    // still one link: connect reported one `link` event and no reconnection
    expect(connectRun.events().filter((e) => e.event === 'link' || e.event === 'reconnected')).toHaveLength(1);
  }, 60_000);

  it('refuses a peer that no service allows, and a service the peer may not use', async () => {
    const stranger = start([
      'connect',
      'hash-svc',
      '--listen',
      '127.0.0.1:0',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'stranger.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    const l = await stranger.waitFor((e) => e.event === 'listening');
    const port = Number(String(l.listen).split(':')[1]);
    // the link itself comes up (source-svc allows any peer) but hash-svc refuses this key
    const reply = await roundTrip(port, Buffer.from('let me in')).catch(() => '');
    expect(reply).toBe('');
    await stranger.waitFor((e) => e.event === 'stream-refused' && String(e.reason).includes('does not allow'));
    await exposeRun.waitFor((e) => e.event === 'refused' && e.reason === 'not-allowed');
    stranger.stop.abort();
    await stranger.done;
  });

  it('exits 1 when the exposing peer refuses this key outright', async () => {
    const only = start([
      'expose',
      `127.0.0.1:${hashService.port}`,
      '--name',
      'private-svc',
      '--allow',
      'a'.repeat(32),
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'private.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    await only.waitFor((l) => l.event === 'ready');
    const io = capture();
    const code = await runCli(
      [
        'connect',
        'private-svc',
        '--listen',
        '127.0.0.1:0',
        '--rendezvous',
        rv.url,
        '--identity',
        join(dir, 'stranger.pem'),
        '--host-address',
        '127.0.0.1',
        '--json',
      ],
      io.io,
    );
    expect(code, io.err()).toBe(1);
    expect(io.err()).toMatch(/--allow list/);
    await only.waitFor((l) => l.event === 'refused' && l.reason === 'not-allowed');
    only.stop.abort();
    expect(await only.done).toBe(0);
  });

  it('will not let another key claim a name in use', async () => {
    const thief = start([
      'expose',
      `127.0.0.1:${hashService.port}`,
      '--name',
      'hash-svc',
      '--allow-any',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'thief.pem'),
      '--json',
    ]);
    expect(await thief.done).toBe(1);
    expect(thief.err()).toMatch(/name-taken/);
  });

  it('answers bad usage with exit 2 and a hint', async () => {
    const io = capture();
    expect(await runCli(['expose', '127.0.0.1:1', '--name', 'x', '--rendezvous', rv.url], io.io)).toBe(2);
    expect(io.err()).toMatch(/--allow PEER_ID/);
    expect(await runCli(['connect', 'Bad Name', '--listen', '127.0.0.1:0', '--rendezvous', rv.url], io.io)).toBe(2);
    expect(generateIdentity()).toBeDefined();
  });

  it('stops cleanly on Ctrl-C', async () => {
    connectRun.stop.abort();
    exposeRun.stop.abort();
    expect(await connectRun.done).toBe(0);
    expect(await exposeRun.done).toBe(0);
  });
});
