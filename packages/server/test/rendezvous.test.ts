/**
 * The rendezvous service over real WebSockets on loopback (port 0): challenge/register with
 * Ed25519, relaying, `from` spoofing, peer-offline, rate limit, size cap, registration timeout,
 * heartbeat, replacement, TURN REST credentials (checked by an actual Allocate against the
 * project's TURN server).
 */
import { createSocket } from 'node:dgram';
import { createHmac, sign } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage, longTermKey, registerSigningPayload } from '@nat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { anonymousRelayKey, anonymousRelayUsers, anyOf, restApiSecrets, startStunServer } from '../src/index.js';
import { RENDEZVOUS_CLOSE_CODES, type RendezvousServer, type StartRendezvousOptions, attachRendezvous, startRendezvous } from '../src/rendezvous/index.js';
import { type Identity, Peer, identity } from './rendezvous-helpers.js';

const running: { close(): Promise<void> }[] = [];
const peers: Peer[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.ws.terminate();
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function server(options: Partial<StartRendezvousOptions> = {}): Promise<RendezvousServer> {
  const rv = await startRendezvous({ host: '127.0.0.1', port: 0, ...options });
  running.push(rv);
  return rv;
}

async function open(url: string, options?: WebSocket.ClientOptions): Promise<Peer> {
  const p = await Peer.open(url, options);
  peers.push(p);
  return p;
}

async function registered(url: string): Promise<{ peer: Peer; me: Identity }> {
  const peer = await open(url);
  const me = identity();
  const reply = await peer.register(me);
  expect(reply.type).toBe('registered');
  return { peer, me };
}

const SESSION = 'c2Vzc2lvbi1pZC0xMjM0NTY';
const UFRAG = 'abcd';
const PWD = 'abcdefghijklmnopqrstuvwx';

describe('rendezvous registration', () => {
  it('sends a fresh 32-byte challenge and registers a valid signature with the derived peer id', async () => {
    const rv = await server();
    expect(rv.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
    const a = await open(rv.url);
    const b = await open(rv.url);
    const na = (await a.next('challenge')).nonce;
    const nb = (await b.next('challenge')).nonce;
    expect(Buffer.from(na, 'base64url')).toHaveLength(32);
    expect(na).not.toBe(nb);
    const me = identity();
    const reply = await a.register(me, { id: 'hello' });
    expect(reply).toEqual({ v: 1, type: 'registered', ref: 'hello', peerId: me.id });
    expect(rv.stats()).toMatchObject({ connections: 2, registered: 1, registrations: 1 });
  });

  it('refuses a forged signature (signed by another key) and closes the connection', async () => {
    const rv = await server();
    const a = await open(rv.url);
    const me = identity();
    const reply = await a.register(me, { signer: identity().privateKey });
    expect(reply).toMatchObject({ type: 'error', code: 'unauthorized', ref: 'reg-1' });
    expect((await a.closed).code).toBe(RENDEZVOUS_CLOSE_CODES.unauthorized);
    expect(rv.stats()).toMatchObject({ registered: 0, registrationsRefused: 1 });
  });

  it('refuses a signature over another peer id than the key derives (key and id mismatch)', async () => {
    const rv = await server();
    const a = await open(rv.url);
    const me = identity();
    const other = identity();
    // Signed by me's key, but over other's id: the server derives me.id, so the payload differs.
    const reply = await a.register(me, { signedId: other.id });
    expect(reply).toMatchObject({ type: 'error', code: 'unauthorized' });
    // And other's key with me's signature: the signature does not verify under other's key.
    const b = await open(rv.url);
    const reply2 = await b.register(other, { signer: me.privateKey, signedId: other.id });
    expect(reply2).toMatchObject({ type: 'error', code: 'unauthorized' });
    expect(rv.stats().registered).toBe(0);
  });

  it("refuses a register replayed from another connection's challenge", async () => {
    const rv = await server();
    const victim = await open(rv.url);
    const attacker = await open(rv.url);
    const me = identity();
    const { nonce } = await victim.next('challenge');
    await attacker.next('challenge');
    const signature = sign(null, registerSigningPayload(nonce, me.id), me.privateKey).toString('base64url');
    const register = { v: 1, type: 'register', id: 'r', publicKey: me.b64, signature };
    attacker.send(register);
    expect(await attacker.next('error')).toMatchObject({ code: 'unauthorized', ref: 'r' });
    // The genuine one still works, once.
    victim.send(register);
    expect(await victim.next('registered')).toMatchObject({ peerId: me.id });
    victim.send(register);
    expect(await victim.next('error')).toMatchObject({ code: 'bad-message', ref: 'r' });
  });

  it('closes a connection that does not register in time', async () => {
    const rv = await server({ limits: { registerTimeoutMs: 150 } });
    const started = Date.now();
    const a = await open(rv.url);
    const { code } = await a.closed;
    expect(code).toBe(RENDEZVOUS_CLOSE_CODES.registerTimeout);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(rv.stats().registerTimeouts).toBe(1);
    // A registered one is not closed by the same timer.
    const { peer } = await registered(rv.url);
    await new Promise((r) => setTimeout(r, 300));
    expect(peer.closeInfo).toBeUndefined();
  });

  it('a second connection with the same id replaces the first (newest wins)', async () => {
    const rv = await server();
    const me = identity();
    const first = await open(rv.url);
    expect((await first.register(me)).type).toBe('registered');
    const second = await open(rv.url);
    expect((await second.register(me)).type).toBe('registered');
    expect((await first.closed).code).toBe(RENDEZVOUS_CLOSE_CODES.replaced);
    expect(rv.stats()).toMatchObject({ registered: 1, replaced: 1 });
    // Messages to the id reach the new connection.
    const { peer: b, me: bob } = await registered(rv.url);
    b.send({ v: 1, type: 'bye', from: bob.id, to: me.id, sessionId: SESSION });
    expect(await second.next('bye')).toMatchObject({ from: bob.id });
  });
});

describe('rendezvous relaying', () => {
  it('relays offer, answer, candidates and end-of-candidates unchanged between registered peers', async () => {
    const rv = await server();
    const { peer: a, me: alice } = await registered(rv.url);
    const { peer: b, me: bob } = await registered(rv.url);
    const offer = {
      v: 1,
      type: 'offer',
      id: 'o1',
      from: alice.id,
      to: bob.id,
      sessionId: SESSION,
      ufrag: UFRAG,
      pwd: PWD,
      candidates: ['candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host'],
      app: { noise: 'abc' },
    };
    a.send(offer);
    expect(await b.next('offer')).toEqual(offer);
    expect(b.texts.at(-1)).toBe(JSON.stringify(offer));
    const answer = { v: 1, type: 'answer', from: bob.id, to: alice.id, sessionId: SESSION, ufrag: 'wxyz', pwd: PWD, candidates: [] };
    b.send(answer);
    expect(await a.next('answer')).toEqual(answer);
    const candidate = {
      v: 1,
      type: 'candidate',
      from: alice.id,
      to: bob.id,
      sessionId: SESSION,
      candidate: 'candidate:2 1 udp 1694498815 203.0.113.5 6000 typ srflx raddr 0.0.0.0 rport 0',
    };
    a.send(candidate);
    expect(await b.next('candidate')).toEqual(candidate);
    a.send({ v: 1, type: 'end-of-candidates', from: alice.id, to: bob.id, sessionId: SESSION });
    expect(await b.next('end-of-candidates')).toMatchObject({ from: alice.id });
    expect(rv.stats().relayed).toBe(4);
    expect(a.inbox.filter((m) => m.type === 'error')).toEqual([]);
  });

  it('refuses a spoofed `from` and relays nothing', async () => {
    const rv = await server();
    const { peer: a } = await registered(rv.url);
    const { peer: b, me: bob } = await registered(rv.url);
    const { me: carol } = await registered(rv.url);
    a.send({ v: 1, type: 'candidate', id: 'spoof', from: carol.id, to: bob.id, sessionId: SESSION, candidate: 'candidate:1 1 udp 1 192.0.2.1 1 typ host' });
    expect(await a.next('error')).toMatchObject({ code: 'unauthorized', ref: 'spoof' });
    await new Promise((r) => setTimeout(r, 50));
    expect(b.inbox.filter((m) => m.type === 'candidate')).toEqual([]);
  });

  it('refuses relaying before registration', async () => {
    const rv = await server();
    const { me: bob } = await registered(rv.url);
    const a = await open(rv.url);
    a.send({ v: 1, type: 'bye', id: 'x', from: identity().id, to: bob.id, sessionId: SESSION });
    expect(await a.next('error')).toMatchObject({ code: 'unauthorized', ref: 'x' });
  });

  it('answers peer-offline at once, with ref, for a peer that is not connected', async () => {
    const rv = await server();
    const { peer: a, me: alice } = await registered(rv.url);
    const { peer: b, me: bob } = await registered(rv.url);
    b.ws.close();
    await b.closed;
    await new Promise((r) => setTimeout(r, 20));
    for (const to of [bob.id, identity().id]) {
      const from = a.inbox.length;
      const t0 = performance.now();
      a.send({ v: 1, type: 'offer', id: `o-${to.slice(0, 4)}`, from: alice.id, to, sessionId: SESSION, ufrag: UFRAG, pwd: PWD, candidates: [] });
      const err = await a.next('error', 1000, from);
      expect(performance.now() - t0).toBeLessThan(100);
      expect(err).toMatchObject({ code: 'peer-offline', ref: `o-${to.slice(0, 4)}` });
    }
  });

  it('answers ping with pong and refuses bad, binary and server-only messages', async () => {
    const rv = await server();
    const { peer: a } = await registered(rv.url);
    a.send({ v: 1, type: 'ping', id: 'p1' });
    expect(await a.next('pong')).toEqual({ v: 1, type: 'pong', ref: 'p1' });
    const at = () => a.inbox.length;
    let from = at();
    a.send('{not json');
    expect(await a.next('error', 1000, from)).toMatchObject({ code: 'bad-message' });
    from = at();
    a.send({ v: 1, type: 'offer', id: 'e1', evil: true });
    expect(await a.next('error', 1000, from)).toMatchObject({ code: 'bad-message', ref: 'e1' });
    from = at();
    a.send({ v: 2, type: 'ping', id: 'v2' });
    expect(await a.next('error', 1000, from)).toMatchObject({ code: 'version-unsupported', ref: 'v2' });
    from = at();
    a.send({ v: 1, type: 'challenge', id: 'c', nonce: 'A'.repeat(43) });
    expect(await a.next('error', 1000, from)).toMatchObject({ code: 'bad-message', ref: 'c' });
    from = at();
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await a.next('error', 1000, from)).toMatchObject({ code: 'bad-message' });
    expect(a.closeInfo).toBeUndefined();
  });
});

describe('rendezvous limits', () => {
  it('rate limits per connection: answers rate-limited, then disconnects on abuse', async () => {
    const rv = await server({ limits: { messagesPerSecond: 1, burst: 5, maxDropped: 10 } });
    const { peer: a } = await registered(rv.url); // register took one token
    for (let i = 0; i < 30; i++) a.send({ v: 1, type: 'ping', id: `p${i}` });
    const { code } = await a.closed;
    expect(code).toBe(RENDEZVOUS_CLOSE_CODES.rateLimited);
    expect(a.inbox.filter((m) => m.type === 'pong')).toHaveLength(4);
    expect(a.inbox.filter((m) => m.type === 'error')).toEqual([expect.objectContaining({ code: 'rate-limited' })]);
    expect(rv.stats()).toMatchObject({ rateLimitDisconnects: 1, rateLimited: 11 });
  });

  it('a short burst over the limit is answered rate-limited but not disconnected', async () => {
    const rv = await server({ limits: { messagesPerSecond: 50, burst: 3, maxDropped: 10 } });
    const { peer: a } = await registered(rv.url);
    for (let i = 0; i < 6; i++) a.send({ v: 1, type: 'ping', id: `p${i}` });
    await a.next('error');
    await new Promise((r) => setTimeout(r, 100));
    a.send({ v: 1, type: 'ping', id: 'later' });
    expect((await a.next('pong', 1000, a.inbox.length)).ref).toBe('later');
    expect(a.closeInfo).toBeUndefined();
  });

  it('closes a connection that sends a message over the size cap (1009)', async () => {
    const rv = await server({ limits: { maxMessageBytes: 1024 } });
    const { peer: a } = await registered(rv.url);
    a.send({ v: 1, type: 'ping', id: 'x'.repeat(2000) });
    expect((await a.closed).code).toBe(1009);
  });

  it('the heartbeat drops a connection that stops answering, keeps one that answers', async () => {
    const rv = await server({ limits: { heartbeatIntervalMs: 100 } });
    const { peer: live } = await registered(rv.url);
    const dead = await open(rv.url, { autoPong: false });
    await dead.register(identity());
    const t0 = Date.now();
    await dead.closed;
    expect(Date.now() - t0).toBeLessThan(500);
    expect(rv.stats()).toMatchObject({ heartbeatDrops: 1, registered: 1 });
    await new Promise((r) => setTimeout(r, 250));
    expect(live.closeInfo).toBeUndefined();
  });

  it('refuses connections over maxConnections with 1013', async () => {
    const rv = await server({ limits: { maxConnections: 1 } });
    await open(rv.url);
    const b = await open(rv.url);
    expect((await b.closed).code).toBe(1013);
  });
});

describe('rendezvous embedding', () => {
  it('attaches to an existing http server on a path; close() leaves the server running', async () => {
    const http = createServer((_req, res) => res.end('page'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as AddressInfo).port;
    const rv = attachRendezvous(http, { path: '/signal' });
    try {
      const p = await open(`ws://127.0.0.1:${port}/signal`);
      expect((await p.register(identity())).type).toBe('registered');
      await expect(Peer.open(`ws://127.0.0.1:${port}/other`)).rejects.toThrow(/404/);
      await rv.close();
      expect((await p.closed).code).toBe(1001);
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(await res.text()).toBe('page');
    } finally {
      await rv.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

describe('rendezvous TURN credentials', () => {
  const secret = 'rendezvous-test-secret';
  const realm = 'rv.test';

  it("issues anonymous relay credentials (EXPIRY:~PEERID, not the secret's own) that the TURN server accepts for an Allocate", async () => {
    const stun = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: false,
      turn: { realm, auth: anyOf(restApiSecrets([secret]), anonymousRelayUsers([secret])) },
    });
    running.push(stun);
    const udp = stun.listeners.find((l) => l.transport === 'udp')!.address;
    const rv = await server({ turn: { urls: [`stun:127.0.0.1:${udp.port}`, `turn:127.0.0.1:${udp.port}?transport=udp`], secret, ttl: 600 } });
    const a = await open(rv.url);
    const me = identity();
    const reply = await a.register(me);
    if (reply.type !== 'registered') throw new Error(JSON.stringify(reply));
    expect(reply.ttl).toBe(600);
    expect(reply.iceServers?.[0]).toEqual({ urls: [`stun:127.0.0.1:${udp.port}`] });
    const turn = reply.iceServers![1]!;
    expect(turn.urls).toEqual([`turn:127.0.0.1:${udp.port}?transport=udp`]);
    const [expiry, user] = turn.username!.split(':');
    expect(user).toBe(`~${me.id}`);
    expect(Math.abs(Number(expiry) - (Date.now() / 1000 + 600))).toBeLessThan(5);
    expect(turn.credential).toBe(createHmac('sha1', anonymousRelayKey(secret)).update(turn.username!).digest('base64'));
    expect(turn.credential).not.toBe(createHmac('sha1', secret).update(turn.username!).digest('base64'));
    // not an operator's REST credential: only the anonymous tier's authenticator takes it
    expect(restApiSecrets([secret]).keys(turn.username!, realm, 1, Date.now())).toHaveLength(0);
    expect(anonymousRelayUsers([secret]).keys(turn.username!, realm, 1, Date.now())).toHaveLength(1);

    // An actual Allocate with them: 401 with a nonce, then a signed request succeeds.
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const ask = (bytes: Uint8Array) =>
      new Promise<ReturnType<typeof decodeStunMessage>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no TURN answer')), 2000);
        sock.once('message', (msg) => {
          clearTimeout(t);
          resolve(decodeStunMessage(msg));
        });
        sock.send(bytes, udp.port, '127.0.0.1');
      });
    try {
      const first = await ask(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] }));
      expect(first.class).toBe(StunClass.ErrorResponse);
      const nonce = first.get(Attr.Nonce)!;
      const signed = (password: string) =>
        encodeStunMessage(
          {
            method: StunMethod.Allocate,
            class: StunClass.Request,
            attributes: [attr(Attr.RequestedTransport, 17), attr(Attr.Username, turn.username!), attr(Attr.Realm, realm), attr(Attr.Nonce, nonce)],
          },
          { integrity: longTermKey({ username: turn.username!, realm, password }) },
        );
      const wrong = await ask(signed('not-the-password'));
      expect(wrong.class).toBe(StunClass.ErrorResponse);
      const ok = await ask(signed(turn.credential!));
      expect(ok.class).toBe(StunClass.SuccessResponse);
      expect(ok.get(Attr.XorRelayedAddress)).toMatchObject({ family: 'IPv4', address: '127.0.0.1' });
    } finally {
      sock.close();
    }
  });

  it('refuses bad TURN options at start', async () => {
    await expect(startRendezvous({ host: '127.0.0.1', port: 0, turn: { urls: ['http://x'], secret } })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(startRendezvous({ host: '127.0.0.1', port: 0, turn: { urls: ['stun:x'], secret } })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(startRendezvous({ host: '127.0.0.1', port: 0, turn: { urls: ['turn:x'], secret: '' } })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
  });
});
