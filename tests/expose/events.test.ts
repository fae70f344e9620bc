/**
 * The expose service's typed events, for real exchanges on loopback aliases 127.0.21.x: a port
 * opened and closed, public connections opened and closed, authentication failures with their
 * reasons (anonymous credentials are the wrong tier, an unlisted key is not allowed, a wrong
 * password fails integrity, an unknown user), refusals with their cause and pool (ports over the
 * user's quota, sessions over the source's share and the cap, connections over the port's share
 * per source and its cap).
 */
import { generateKeyPairSync } from 'node:crypto';
import { type Socket, connect } from 'node:net';
import { exposePublic } from '@nat/client';
import { anonymousRelayCredentials, peerIdFromPublicKey } from '@nat/protocol';
import { type ExposeLimits, type ServerEvent, ServerEventHub, attachExpose, startRendezvous, staticUsers } from '@nat/server';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { echoServer, portBlock } from './harness.js';
import { rawSession, rawUpgrade } from './raw.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
let echo: Awaited<ReturnType<typeof echoServer>> | undefined;
afterAll(() => echo?.server.close());

const HOST = '127.0.21.1';

async function server(limits: ExposeLimits, peerKeys: readonly string[] = []): Promise<{ url: string; events: ServerEvent[] }> {
  const hub = new ServerEventHub();
  const events: ServerEvent[] = [];
  hub.subscribe((e) => events.push(e));
  const rv = await startRendezvous({ host: HOST, port: 0 });
  cleanups.push(() => rv.close());
  const ex = attachExpose(rv.httpServer, {
    host: HOST,
    ports: portBlock(10),
    auth: staticUsers({ alice: 'alice-pw' }),
    ...(peerKeys.length > 0 ? { peerKeys } : {}),
    limits,
    events: hub.sink,
  });
  cleanups.push(() => ex.close());
  return { url: rv.url, events };
}

async function until(events: ServerEvent[], match: (e: ServerEvent) => boolean, n = 1): Promise<void> {
  for (let i = 0; i < 200 && events.filter(match).length < n; i++) await new Promise((r) => setTimeout(r, 25));
  expect(events.filter(match).length).toBeGreaterThanOrEqual(n);
}

/** A TCP connection to the public port from `from`: 'open' once the echo answers, 'reset' when the server refuses it. */
function publicConnection(port: number, from: string): Promise<{ socket: Socket; state: 'open' | 'reset' }> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port, localAddress: from });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => {});
    socket.once('connect', () => socket.write('ping'));
    socket.once('data', () => resolve({ socket, state: 'open' }));
    socket.once('close', () => resolve({ socket, state: 'reset' }));
  });
}

describe('expose events', () => {
  it('a port opened and closed, its public connections opened and closed; refused: ports over quota, connections over the share and the cap', async () => {
    const { url, events } = await server({ portsPerUser: 1, connectionsPerPort: 2, connectionsPerSource: 1, graceMs: 0 });
    echo ??= await echoServer();
    const target = { host: '127.0.0.1', port: echo.port };
    const t = exposePublic({ url, credentials: { username: 'alice', password: 'alice-pw' }, target });
    const { port } = await t.ready;
    const second = exposePublic({ url, credentials: { username: 'alice', password: 'alice-pw' }, target });
    await expect(second.ready).rejects.toThrow(/most 1|quota/i);
    await second.close();
    const a = await publicConnection(port, '127.0.21.3');
    expect(a.state).toBe('open');
    expect((await publicConnection(port, '127.0.21.3')).state).toBe('reset');
    expect((await publicConnection(port, '127.0.21.4')).state).toBe('open');
    expect((await publicConnection(port, '127.0.21.5')).state).toBe('reset');
    a.socket.destroy();
    await until(events, (e) => e.type === 'expose-connection' && e.state === 'closed');
    await t.close();
    await until(events, (e) => e.type === 'expose-port-closed');
    const address = { family: 'IPv4', address: HOST, port };
    const name = `tcp:${port}`;
    expect(events.filter((e) => e.type !== 'expose-connection' || e.source !== '127.0.21.4')).toEqual([
      { type: 'expose-port-opened', user: 'alice', name, address, protocol: 'tcp' },
      { type: 'refused', service: 'expose', cause: 'user-quota', source: '127.0.0.1', user: 'alice', pool: 'ports' },
      { type: 'expose-connection', user: 'alice', name, source: '127.0.21.3', state: 'opened' },
      { type: 'refused', service: 'expose', cause: 'source-share', source: '127.0.21.3', user: 'alice', pool: 'connections' },
      { type: 'refused', service: 'expose', cause: 'global-cap', source: '127.0.21.5', user: 'alice', pool: 'connections' },
      { type: 'expose-connection', user: 'alice', name, source: '127.0.21.3', state: 'closed' },
      { type: 'expose-port-closed', user: 'alice', name, address, protocol: 'tcp' },
    ]);
    expect(events.filter((e) => e.type === 'expose-connection' && e.source === '127.0.21.4').map((e) => e.type === 'expose-connection' && e.state)).toEqual([
      'opened',
      'closed',
    ]);
  }, 30_000);

  it('auth-failure: anonymous credentials (wrong-tier), an unlisted key (not-allowed), a wrong password (bad-integrity), an unknown user, none (missing); refused: sessions over the share and the cap', async () => {
    const listed = generateKeyPairSync('ed25519');
    const listedId = peerIdFromPublicKey(Buffer.from(listed.publicKey.export({ format: 'jwk' }).x!, 'base64url'));
    const { url, events } = await server({ maxSessions: 3, sessionsPerSource: 2, authTimeoutMs: 1000 }, [listedId]);
    const anon = anonymousRelayCredentials('some-secret', listedId, 300, Date.now());
    const refusedHello = async (user: string, password: string): Promise<void> => {
      const s = await rawSession(url, user, password, '127.0.21.6');
      cleanups.push(() => s.socket.destroy());
      await s.waitFor((m) => m.type === 'error');
    };
    await refusedHello(anon.username, anon.password);
    await refusedHello('alice', 'not-her-password');
    await refusedHello('mallory', 'whatever');
    // a control connection that never says hello
    const mute = await rawUpgrade(url, '127.0.21.10');
    cleanups.push(() => mute.destroy());
    mute.on('error', () => {});
    mute.resume();
    await new Promise<void>((r) => mute.once('close', () => r()));
    const stranger = generateKeyPairSync('ed25519');
    const strangerId = peerIdFromPublicKey(Buffer.from(stranger.publicKey.export({ format: 'jwk' }).x!, 'base64url'));
    const s = exposePublic({ url, credentials: { identity: stranger }, target: { host: '127.0.0.1', port: 9 } });
    await expect(s.ready).rejects.toThrow();
    await s.close();
    // sessions: two from one source, the third refused; one more from another source, then the cap
    const session = async (from: string): Promise<ReturnType<typeof rawSession>> => {
      const r = rawSession(url, 'alice', 'alice-pw', from);
      void r.then((x) => cleanups.push(() => x.socket.destroy()));
      return r;
    };
    for (const from of ['127.0.21.7', '127.0.21.7']) await (await session(from)).waitFor((m) => m.type === 'welcome');
    const overShare = await session('127.0.21.7');
    await expect(overShare.waitFor((m) => m.type === 'welcome', 3000)).rejects.toThrow(/503/);
    await (await session('127.0.21.8')).waitFor((m) => m.type === 'welcome');
    const overCap = await session('127.0.21.9');
    await expect(overCap.waitFor((m) => m.type === 'welcome', 3000)).rejects.toThrow(/503/);
    expect(events).toEqual([
      { type: 'auth-failure', service: 'expose', reason: 'wrong-tier', source: '127.0.21.6', user: anon.username },
      { type: 'auth-failure', service: 'expose', reason: 'bad-integrity', source: '127.0.21.6', user: 'alice' },
      { type: 'auth-failure', service: 'expose', reason: 'unknown-user', source: '127.0.21.6', user: 'mallory' },
      { type: 'auth-failure', service: 'expose', reason: 'missing', source: '127.0.21.10' },
      { type: 'auth-failure', service: 'expose', reason: 'not-allowed', source: '127.0.0.1', user: `peer:${strangerId}` },
      { type: 'refused', service: 'expose', cause: 'source-share', source: '127.0.21.7', pool: 'sessions' },
      { type: 'refused', service: 'expose', cause: 'global-cap', source: '127.0.21.9', pool: 'sessions' },
    ]);
  }, 30_000);
});
