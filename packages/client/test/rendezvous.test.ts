/**
 * RendezvousClient against a small rendezvous server written here on `ws` and node:crypto
 * (independent of @nat/server, which this package does not depend on), on loopback, port 0;
 * and the identity file helpers in a temporary directory.
 */
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { EncodeError, type SignallingMessage, peerIdFromPublicKey, registerSigningPayload } from '@nat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { RendezvousError, isStunClientError } from '../src/errors.js';
import {
  RendezvousClient,
  type RendezvousInbound,
  IdentityFileError,
  defaultIdentityPath,
  generateIdentity,
  loadOrCreateIdentity,
  peerIdOf,
} from '../src/rendezvous/index.js';

interface FakeOptions {
  /** What to do with a register: 'ok' (verify and accept), 'refuse', 'wrong-id', 'silent'. */
  mode?: 'ok' | 'refuse' | 'wrong-id' | 'silent';
  noChallenge?: boolean;
  autoPong?: boolean;
}

/** A minimal rendezvous server: challenge, Ed25519 check, relaying, peer-offline. */
async function fakeServer(options: FakeOptions = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: options.autoPong ?? true });
  await new Promise((r) => wss.once('listening', r));
  const peers = new Map<string, WebSocket>();
  const verified: string[] = [];
  wss.on('connection', (ws) => {
    const nonce = Buffer.alloc(32, 7).toString('base64url');
    let me: string | undefined;
    if (!options.noChallenge) ws.send(JSON.stringify({ v: 1, type: 'challenge', nonce }));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data as Buffer)) as SignallingMessage;
      if (m.type === 'register') {
        const id = peerIdFromPublicKey(Buffer.from(m.publicKey, 'base64url'));
        const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: m.publicKey }, format: 'jwk' });
        const good = verify(null, registerSigningPayload(nonce, id), key, Buffer.from(m.signature, 'base64url'));
        if (options.mode === 'silent') return;
        if (!good || options.mode === 'refuse') {
          ws.send(JSON.stringify({ v: 1, type: 'error', code: 'unauthorized', message: 'no', ...(m.id ? { ref: m.id } : {}) }));
          return;
        }
        verified.push(id);
        me = id;
        peers.set(id, ws);
        const peerId = options.mode === 'wrong-id' ? 'a'.repeat(32) : id;
        ws.send(
          JSON.stringify({
            v: 1,
            type: 'registered',
            ref: m.id,
            peerId,
            iceServers: [{ urls: 'turn:127.0.0.1:3478', username: `1:${id}`, credential: 'pw' }],
            ttl: 600,
          }),
        );
      } else if (m.type === 'ping') {
        ws.send(JSON.stringify({ v: 1, type: 'pong', ref: m.id }));
      } else if ('to' in m && me !== undefined) {
        const target = peers.get(m.to);
        if (target) target.send(String(data as Buffer));
        else ws.send(JSON.stringify({ v: 1, type: 'error', code: 'peer-offline', message: 'offline', ref: m.id }));
      }
    });
    ws.on('close', () => me && peers.get(me) === ws && peers.delete(me));
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  const server = {
    url,
    wss,
    verified,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
  servers.push(server);
  return server;
}

const servers: { close(): Promise<void> }[] = [];
const clients: RendezvousClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function connect(url: string, extra: Partial<Parameters<typeof RendezvousClient.connect>[0]> = {}): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ url, identity: generateIdentity(), ...extra });
  clients.push(c);
  return c;
}

const SESSION = 'c2Vzc2lvbi1pZC0xMjM0NTY';
const PWD = 'abcdefghijklmnopqrstuvwx';

describe('RendezvousClient', () => {
  it('registers by signing the challenge and exposes its id and ICE servers', async () => {
    const s = await fakeServer();
    const identity = generateKeyPairSync('ed25519');
    const c = await connect(s.url, { identity });
    expect(c.id).toBe(peerIdOf(identity));
    expect(s.verified).toEqual([c.id]);
    expect(c.iceServers).toEqual([{ urls: 'turn:127.0.0.1:3478', username: `1:${c.id}`, credential: 'pw' }]);
    expect(Math.abs(c.iceServersExpireAt! - (Date.now() + 600_000))).toBeLessThan(2000);
  });

  it('sends relayed messages with from filled in, and receives them as events and through the iterator', async () => {
    const s = await fakeServer();
    const a = await connect(s.url);
    const b = await connect(s.url);
    const events: RendezvousInbound[] = [];
    b.on('message', (m) => events.push(m));
    const iter = b.messages();
    const id = a.send({ type: 'offer', to: b.id, sessionId: SESSION, ufrag: 'abcd', pwd: PWD, candidates: [] });
    a.send({ type: 'candidate', id: 'c1', to: b.id, sessionId: SESSION, candidate: 'candidate:1 1 udp 1 192.0.2.1 9 typ host' });
    const first = await iter.next();
    expect(first.value).toEqual({ v: 1, type: 'offer', id, from: a.id, to: b.id, sessionId: SESSION, ufrag: 'abcd', pwd: PWD, candidates: [] });
    expect((await iter.next()).value).toMatchObject({ type: 'candidate', id: 'c1', from: a.id });
    expect(events.map((m) => m.type)).toEqual(['offer', 'candidate']);
    await iter.return!();
  });

  it('delivers the server error for a message, with ref to the id send() returned', async () => {
    const s = await fakeServer();
    const a = await connect(s.url);
    const ref = a.send({ type: 'bye', to: peerIdOf(generateIdentity()), sessionId: SESSION });
    for await (const m of a) {
      expect(m).toMatchObject({ type: 'error', code: 'peer-offline', ref });
      break;
    }
  });

  it('measures a protocol ping', async () => {
    const s = await fakeServer();
    const a = await connect(s.url);
    const rtt = await a.ping();
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(1000);
  });

  it('refuses to send an invalid message, and anything after close', async () => {
    const s = await fakeServer();
    const a = await connect(s.url);
    expect(() => a.send({ type: 'candidate', to: a.id, sessionId: SESSION, candidate: 'not a candidate' })).toThrow(EncodeError);
    await a.close();
    await a.close();
    expect(a.closeInfo?.code).toBe(1000);
    expect(() => a.send({ type: 'bye', to: a.id, sessionId: SESSION })).toThrow(/not open/);
  });

  it('reports the server closing the connection, and ends the iterator', async () => {
    const s = await fakeServer();
    const a = await connect(s.url);
    const iter = a.messages();
    const pending = iter.next();
    s.peers.get(a.id)!.close(4000, 'replaced by a newer connection');
    expect(await a.closed).toEqual({ code: 4000, reason: 'replaced by a newer connection' });
    expect(await pending).toEqual({ value: undefined, done: true });
  });

  it('the heartbeat drops a server that stopped answering', async () => {
    const s = await fakeServer({ autoPong: false });
    const a = await connect(s.url, { heartbeatIntervalMs: 100 });
    const t0 = Date.now();
    expect((await a.closed).code).toBe(1006);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('fails with a RendezvousError carrying the refusal code when the server refuses the registration', async () => {
    const s = await fakeServer({ mode: 'refuse' });
    const e = await RendezvousClient.connect({ url: s.url, identity: generateIdentity() }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RendezvousError);
    expect(e).toMatchObject({ name: 'RendezvousError', code: 'unauthorized' });
  });

  it('fails with BAD_RESPONSE when the server registers another id', async () => {
    const s = await fakeServer({ mode: 'wrong-id' });
    const e = await RendezvousClient.connect({ url: s.url, identity: generateIdentity() }).catch((x: unknown) => x);
    expect(isStunClientError(e, 'BAD_RESPONSE')).toBe(true);
  });

  it('times out, and can be aborted, when the server never answers', async () => {
    const s = await fakeServer({ noChallenge: true });
    const t0 = Date.now();
    const e = await RendezvousClient.connect({ url: s.url, identity: generateIdentity(), timeoutMs: 150 }).catch((x: unknown) => x);
    expect(isStunClientError(e, 'TIMEOUT')).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
    const e2 = await RendezvousClient.connect({ url: s.url, identity: generateIdentity(), signal: AbortSignal.timeout(50) }).catch((x: unknown) => x);
    expect(isStunClientError(e2, 'ABORTED')).toBe(true);
  });

  it('fails with BAD_ADDRESS for a non-ws URL and SOCKET for a closed port', async () => {
    const e = await RendezvousClient.connect({ url: 'http://127.0.0.1:1/', identity: generateIdentity() }).catch((x: unknown) => x);
    expect(isStunClientError(e, 'BAD_ADDRESS')).toBe(true);
    const s = await fakeServer();
    await s.close();
    const e2 = await RendezvousClient.connect({ url: s.url, identity: generateIdentity() }).catch((x: unknown) => x);
    expect(isStunClientError(e2, 'SOCKET')).toBe(true);
  });
});

describe('identity files', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  it('creates a PKCS#8 PEM key with mode 0600 (and its directories), then loads the same identity', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nat-identity-'));
    const file = join(dir, 'a', 'b', 'identity.pem');
    const first = await loadOrCreateIdentity(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'a', 'b')).isDirectory()).toBe(true);
    const again = await loadOrCreateIdentity(file);
    expect(again.created).toBe(false);
    expect(again.id).toBe(first.id);
    expect(again.id).toBe(peerIdOf(again));
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('refuses a key file that is not an Ed25519 key', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nat-identity-'));
    const file = join(dir, 'identity.pem');
    writeFileSync(file, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const e = await loadOrCreateIdentity(file).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(IdentityFileError);
    expect((e as IdentityFileError).code).toBe('INVALID');
    expect((e as Error).message).toContain(file);
  });

  it('names the file when it is not a key at all', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nat-identity-'));
    const file = join(dir, 'identity.pem');
    writeFileSync(file, 'garbage\n');
    const e = await loadOrCreateIdentity(file).catch((x: unknown) => x);
    expect((e as IdentityFileError).code).toBe('INVALID');
    expect((e as Error).message).toContain(file);
  });

  it('fails at once, naming the path, where the folder cannot be created (procfs answers ENOENT to mkdir)', async () => {
    const started = Date.now();
    const e = await loadOrCreateIdentity('/proc/nat-test/id.key').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(IdentityFileError);
    expect((e as IdentityFileError).code).toBe('CREATE');
    expect((e as Error).message).toContain('/proc/nat-test/id.key');
    expect(Date.now() - started).toBeLessThan(5000);
    dir = mkdtempSync(join(tmpdir(), 'nat-identity-'));
    writeFileSync(join(dir, 'file'), '');
    const f = await loadOrCreateIdentity(join(dir, 'file', 'sub', 'id.pem')).catch((x: unknown) => x);
    expect(f).toBeInstanceOf(IdentityFileError);
    expect((f as Error).message).toContain(join(dir, 'file', 'sub', 'id.pem'));
  }, 10_000);

  it('puts the default identity in the XDG config directory, else ~/.config', () => {
    expect(defaultIdentityPath({ XDG_CONFIG_HOME: '/x/conf' })).toBe('/x/conf/nat/identity.pem');
    expect(defaultIdentityPath({ XDG_CONFIG_HOME: 'relative' })).toMatch(/\/\.config\/nat\/identity\.pem$/);
    expect(defaultIdentityPath({})).toMatch(/\/\.config\/nat\/identity\.pem$/);
  });
});
