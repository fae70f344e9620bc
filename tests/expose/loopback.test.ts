import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { decode, encode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ExposeTunnel, exposePublic } from '@nat/client';
import { cuttableProxy, echoServer, msgpackServer, portBlock, roundTrip, sha256, startExposeServer, type TestServer } from './harness.js';

const alice = { username: 'alice', password: 'alice-pw' };
const bob = { username: 'bob', password: 'bob-pw' };
const open: ExposeTunnel[] = [];
const tunnel = (init: Parameters<typeof exposePublic>[0]): ExposeTunnel => {
  const t = exposePublic(init);
  open.push(t);
  return t;
};
const once = <T>(t: ExposeTunnel, ev: 'exposed' | 'disconnected' | 'closed'): Promise<T> => new Promise((r) => t.once(ev, r as never));

let srv: TestServer;
let range: { min: number; max: number };
let echo: Awaited<ReturnType<typeof echoServer>>;
beforeAll(async () => {
  range = portBlock();
  srv = await startExposeServer({
    ports: range,
    limits: { connectionsPerPort: 300, portsPerUser: 6, idleTimeoutMs: 30_000, graceMs: 3000, authTimeoutMs: 1000 },
  });
  echo = await echoServer();
});
afterAll(async () => {
  await Promise.all(open.map((t) => t.close()));
  await srv.close();
  echo.server.close();
});

describe('a plain TCP client reaches a service through the public port', () => {
  test('echo, with half-close both ways, 200 concurrent connections', async () => {
    const t = tunnel({ url: srv.url, credentials: alice, target: { host: '127.0.0.1', port: echo.port } });
    const a = await t.ready;
    expect(a.port).toBeGreaterThanOrEqual(range.min);
    expect(a.port).toBeLessThanOrEqual(range.max);
    expect(a.address).toBe(`127.0.0.1:${a.port}`);
    expect(a.user).toBe('alice');
    // The public client half-closes; the echo service sees end of input, ends, and the client gets all of it and then EOF.
    const msg = Buffer.from('hello through the server');
    expect((await roundTrip(a.port, msg)).toString()).toBe(msg.toString());
    const datas = Array.from({ length: 200 }, (_, i) => randomBytes(1000 + i * 37));
    const backs = await Promise.all(datas.map((d) => roundTrip(a.port, d)));
    backs.forEach((b, i) => expect(b.equals(datas[i]!)).toBe(true));
  });

  test('a msgpack request/response service', async () => {
    const mp = await msgpackServer();
    const t = tunnel({ url: srv.url, credentials: alice, target: { host: '127.0.0.1', port: mp.port } });
    const a = await t.ready;
    const s = connect(a.port, '127.0.0.1');
    const frame = (o: unknown): Buffer => {
      const body = Buffer.from(encode(o));
      const h = Buffer.alloc(4);
      h.writeUInt32BE(body.length);
      return Buffer.concat([h, body]);
    };
    const answers: unknown[] = [];
    let buf = Buffer.alloc(0);
    const done = new Promise<void>((resolve) =>
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          answers.push(decode(buf.subarray(4, 4 + buf.readUInt32BE(0))));
          buf = buf.subarray(4 + buf.readUInt32BE(0));
        }
        if (answers.length === 50) resolve();
      }),
    );
    for (let i = 0; i < 50; i++) s.write(frame(i % 2 ? { id: i, op: 'add', a: i, b: 1000 } : { id: i, op: 'upper', s: `zeronet-${i}` }));
    await done;
    s.destroy();
    answers.forEach((ans, i) => expect(ans).toEqual({ id: i, result: i % 2 ? i + 1000 : `ZERONET-${i}` }));
    mp.server.close();
  });

  test('50 MB each way, verified by hash', async () => {
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: echo.port } });
    const a = await t.ready;
    const data = randomBytes(50 * 1024 * 1024);
    const back = await roundTrip(a.port, data);
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
  }, 30_000);

  test('backpressure: a target that does not read stalls the public sender; nothing is lost once it reads', async () => {
    let target: Socket | undefined;
    const got: Buffer[] = [];
    const slow = createServer((s) => {
      target = s;
      s.pause();
      s.on('data', (c: Buffer) => got.push(c));
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: (slow.address() as AddressInfo).port } });
    const a = await t.ready;
    const c = connect(a.port, '127.0.0.1');
    c.on('error', () => {});
    const chunk = randomBytes(64 * 1024);
    let written = 0;
    const total = 64 * 1024 * 1024;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!c.write(chunk)) return void c.once('drain', pump);
        }
        resolve();
      };
      pump();
      setTimeout(resolve, 1500);
    });
    // Kernel buffers on three sockets plus one 256 KiB window: far less than 64 MB got in.
    expect(written).toBeLessThan(24 * 1024 * 1024);
    const stalledAt = written;
    target!.resume();
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (got.reduce((n, b) => n + b.length, 0) >= stalledAt) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    c.destroy();
    slow.close();
  });

  test('a reset by the service reaches the public client as a reset', async () => {
    const rst = createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => rst.listen(0, '127.0.0.1', r));
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: (rst.address() as AddressInfo).port } });
    const a = await t.ready;
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const c = connect(a.port, '127.0.0.1', () => c.write('x'));
      c.on('close', () => resolve(Object.assign(new Error('closed'), { code: 'CLOSED' })));
      c.on('error', resolve);
      c.on('end', () => resolve(Object.assign(new Error('clean end'), { code: 'FIN' })));
    });
    expect(err.code).toBe('ECONNRESET');
    rst.close();
  });

  test('UDP: a plain dgram client gets answers, each source kept apart', async () => {
    const svc = createSocket('udp4');
    svc.on('message', (m, r) => svc.send(Buffer.concat([Buffer.from(`${r.port}:`), m]), r.port, r.address));
    await new Promise<void>((r) => svc.bind(0, '127.0.0.1', r));
    const t = tunnel({ url: srv.url, credentials: bob, transport: 'udp', target: { host: '127.0.0.1', port: svc.address().port } });
    const a = await t.ready;
    expect(a.transport).toBe('udp');
    const ask = async (payload: string): Promise<string[]> => {
      const c = createSocket('udp4');
      await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
      const answers: string[] = [];
      c.on('message', (m) => answers.push(m.toString()));
      for (let i = 0; i < 20 && answers.length < 3; i++) {
        for (let k = answers.length; k < 3; k++) c.send(`${payload}-${k}`, a.port, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 50));
      }
      c.close();
      return answers;
    };
    const [x, y] = await Promise.all([ask('x'), ask('y')]);
    expect(x.length).toBeGreaterThanOrEqual(3);
    const xPorts = new Set(x.map((s) => s.split(':')[0]));
    const yPorts = new Set(y.map((s) => s.split(':')[0]));
    expect(x.every((s) => s.includes(':x-'))).toBe(true);
    expect(y.every((s) => s.includes(':y-'))).toBe(true);
    expect(xPorts.size).toBe(1);
    expect([...xPorts][0]).not.toBe([...yPorts][0]);
    svc.close();
  });
});

describe('faults', () => {
  test('the control connection drops mid-transfer: those streams fail, new ones work after the reconnect on the same port', async () => {
    const proxy = await cuttableProxy(srv.rv.address.port);
    const t = tunnel({
      url: `ws://127.0.0.1:${proxy.port}/`,
      credentials: alice,
      target: { host: '127.0.0.1', port: echo.port },
      reconnect: { minMs: 50, maxMs: 200 },
    });
    const a = await t.ready;
    const c = connect({ port: a.port, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    c.on('data', (d: Buffer) => (received += d.length));
    const ended = new Promise<string>((resolve) => {
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      c.on('end', () => resolve('end'));
      c.on('close', () => resolve('close'));
    });
    // A transfer that is still going on when the connection drops.
    const feed = setInterval(() => c.writable && c.write(randomBytes(64 * 1024)), 5);
    await new Promise((r) => setTimeout(r, 150));
    const again = once<{ port: number }>(t, 'exposed');
    proxy.cut();
    expect(await ended).toBe('ECONNRESET');
    clearInterval(feed);
    expect(received).toBeGreaterThan(0);
    const b = await again;
    expect(b.port).toBe(a.port);
    const msg = randomBytes(10_000);
    expect((await roundTrip(a.port, msg)).equals(msg)).toBe(true);
    await proxy.close();
  });

  test('the server restarts: the client reconnects and gets the same port back', async () => {
    const r2 = portBlock(10);
    let s2 = await startExposeServer({ ports: r2 });
    const rvPort = s2.rv.address.port;
    const t = tunnel({ url: s2.url, credentials: alice, target: { host: '127.0.0.1', port: echo.port }, reconnect: { minMs: 50, maxMs: 300 } });
    const a = await t.ready;
    const again = once<{ port: number }>(t, 'exposed');
    await s2.close();
    s2 = await startExposeServer({ ports: r2, rvPort });
    const b = await again;
    expect(b.port).toBe(a.port);
    const msg = randomBytes(1000);
    expect((await roundTrip(b.port, msg)).equals(msg)).toBe(true);
    await t.close();
    await s2.close();
  });
});

describe('hostility and policy', () => {
  test('bad credentials are refused; a connection that never authenticates is closed', async () => {
    const t = tunnel({ url: srv.url, credentials: { username: 'alice', password: 'wrong' }, target: { host: '127.0.0.1', port: echo.port } });
    await expect(t.ready).rejects.toMatchObject({ code: 'ERROR_RESPONSE', reason: 'unauthorized' });
    const t2 = tunnel({ url: srv.url, credentials: { username: 'mallory', password: 'x' }, target: { host: '127.0.0.1', port: echo.port } });
    await expect(t2.ready).rejects.toMatchObject({ reason: 'unauthorized' });
    // A raw upgrade that then says nothing: closed after authTimeoutMs (1 s here).
    const s = connect(srv.rv.address.port, '127.0.0.1');
    s.write('GET /expose HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: nat-expose\r\n\r\n');
    s.on('data', () => {});
    const t0 = Date.now();
    await new Promise((r) => s.on('close', r));
    expect(Date.now() - t0).toBeLessThan(3000);
    // Garbage after the upgrade: a protocol error closes it at once.
    const g = connect(srv.rv.address.port, '127.0.0.1');
    g.write('GET /expose HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: nat-expose\r\n\r\n');
    g.write(Buffer.alloc(64, 0xff));
    g.on('data', () => {});
    await new Promise((r) => g.on('close', r));
    expect(srv.expose.stats().authRefused).toBeGreaterThanOrEqual(2);
  });

  test('upgrades that no service takes are refused with 404, rendezvous WebSockets still work', async () => {
    const ask = (path: string, upgrade: string): Promise<string> =>
      new Promise((resolve) => {
        const s = connect(srv.rv.address.port, '127.0.0.1');
        s.on('error', () => resolve('error'));
        s.once('data', (d: Buffer) => {
          resolve(d.toString('latin1').split('\r\n')[0]!);
          s.destroy();
        });
        s.write(
          `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
        );
      });
    expect(await ask('/nope', 'websocket')).toBe('HTTP/1.1 404 Not Found');
    expect(await ask('/nope', 'nat-expose')).toBe('HTTP/1.1 404 Not Found');
    expect(await ask('/', 'websocket')).toBe('HTTP/1.1 101 Switching Protocols');
    expect(await ask('/expose', 'websocket')).toBe('HTTP/1.1 400 Bad Request');
  });

  test('a flood of idle control connections from one address cannot take the slots of others', async () => {
    const idle: Socket[] = [];
    const answers = await Promise.all(
      Array.from(
        { length: 12 },
        () =>
          new Promise<string>((resolve) => {
            const s = connect({ port: srv.rv.address.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
            idle.push(s);
            s.on('error', () => resolve('error'));
            s.once('data', (d: Buffer) => resolve(d.toString('latin1').split('\r\n')[0]!));
            s.write('GET /expose HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: nat-expose\r\n\r\n');
          }),
      ),
    );
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 101'))).toHaveLength(8);
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 503'))).toHaveLength(4);
    // Someone else still gets in while those eight sit idle.
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: echo.port } });
    const msg = randomBytes(100);
    expect((await roundTrip((await t.ready).port, msg)).equals(msg)).toBe(true);
    idle.forEach((s) => s.destroy());
    await t.close();
  });

  test("ports outside the range, and another user's port, are refused; held ports come back to their owner only", async () => {
    const range = portBlock(10);
    const srv = await startExposeServer({ ports: range, limits: { graceMs: 3000 } });
    const out = tunnel({ url: srv.url, credentials: alice, publicPort: range.max + 1, target: { host: '127.0.0.1', port: echo.port } });
    await expect(out.ready).rejects.toMatchObject({ reason: 'out-of-range' });
    const mine = tunnel({ url: srv.url, credentials: alice, publicPort: range.min, target: { host: '127.0.0.1', port: echo.port } });
    const a = await mine.ready;
    expect(a.port).toBe(range.min);
    const theirs = tunnel({ url: srv.url, credentials: bob, publicPort: range.min, target: { host: '127.0.0.1', port: echo.port } });
    await expect(theirs.ready).rejects.toMatchObject({ reason: 'taken' });
    // alice's connection dies (no unexpose): the port is held for her during the grace period.
    const proxy = await cuttableProxy(srv.rv.address.port);
    const viaProxy = tunnel({
      url: `ws://127.0.0.1:${proxy.port}/`,
      credentials: alice,
      publicPort: range.min + 1,
      target: { host: '127.0.0.1', port: echo.port },
      reconnect: false,
    });
    await viaProxy.ready;
    proxy.cut();
    await new Promise((r) => setTimeout(r, 200));
    expect(srv.expose.exposures().find((e) => e.port === range.min + 1)).toMatchObject({ user: 'alice', attached: false });
    const steal = tunnel({ url: srv.url, credentials: bob, publicPort: range.min + 1, target: { host: '127.0.0.1', port: echo.port } });
    await expect(steal.ready).rejects.toMatchObject({ reason: 'taken' });
    const back = tunnel({ url: srv.url, credentials: alice, publicPort: range.min + 1, target: { host: '127.0.0.1', port: echo.port } });
    expect((await back.ready).port).toBe(range.min + 1);
    await proxy.close();
    await Promise.all([mine, back].map((t) => t.close()));
    await srv.close();
  });

  test('quota: ports per user', async () => {
    const s3 = await startExposeServer({ ports: portBlock(10), limits: { portsPerUser: 2 } });
    const ts = [0, 1, 2].map(() => tunnel({ url: s3.url, credentials: bob, target: { host: '127.0.0.1', port: echo.port } }));
    const results = await Promise.allSettled(ts.map((t) => t.ready));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { reason: 'over-quota' } });
    await Promise.all(ts.map((t) => t.close()));
    await s3.close();
  });

  test("a flood beyond connections per port is reset; another user's port is unaffected; slowloris connections are closed", async () => {
    const s4 = await startExposeServer({ ports: portBlock(10), limits: { connectionsPerPort: 20, connectionsPerSource: 20, idleTimeoutMs: 800 } });
    const victim = tunnel({ url: s4.url, credentials: alice, target: { host: '127.0.0.1', port: echo.port } });
    const other = tunnel({ url: s4.url, credentials: bob, target: { host: '127.0.0.1', port: echo.port } });
    const [v, o] = await Promise.all([victim.ready, other.ready]);
    const flood: Socket[] = [];
    const outcomes = await Promise.all(
      Array.from(
        { length: 60 },
        () =>
          new Promise<string>((resolve) => {
            const c = connect(v.port, '127.0.0.1');
            flood.push(c);
            c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
            c.on('close', () => resolve('closed'));
            setTimeout(() => resolve('open'), 400);
          }),
      ),
    );
    expect(outcomes.filter((x) => x === 'open')).toHaveLength(20);
    expect(s4.expose.stats().connectionsOverLimit).toBe(40);
    // bob's port works while alice's is flooded.
    const msg = randomBytes(5000);
    expect((await roundTrip(o.port, msg)).equals(msg)).toBe(true);
    // The 20 idle ones (slowloris) are closed by the idle timeout.
    await new Promise((r) => setTimeout(r, 1500));
    expect(flood.filter((c) => !c.destroyed && !c.readableEnded)).toHaveLength(0);
    expect(s4.expose.stats().idleClosed).toBe(20);
    expect((await roundTrip(v.port, msg)).equals(msg)).toBe(true);
    flood.forEach((c) => c.destroy());
    await Promise.all([victim.close(), other.close()]);
    await s4.close();
  });

  test('source prefixes: a denied source is reset', async () => {
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: echo.port }, deny: ['127.0.0.0/8'] });
    const a = await t.ready;
    const code = await new Promise<string>((resolve) => {
      const c = connect(a.port, '127.0.0.1');
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      c.on('close', () => resolve('closed'));
    });
    expect(['ECONNRESET', 'closed']).toContain(code);
    expect(srv.expose.stats().connectionsDenied).toBeGreaterThanOrEqual(1);
    await t.close();
  });
});

describe('credentials and per-port options', () => {
  test('Ed25519 peer keys (as the rendezvous uses them) and TURN REST API credentials', async () => {
    const { generateIdentity, peerIdOf } = await import('@nat/client');
    const { restApiCredentials, restApiSecrets, staticUsers, anyOf } = await import('@nat/server');
    const key = generateIdentity();
    const other = generateIdentity();
    const s5 = await startExposeServer({
      ports: portBlock(10),
      peerKeys: [peerIdOf(key)],
      auth: anyOf(staticUsers({ alice: 'alice-pw' }), restApiSecrets(['S3CRET'])),
    });
    const byKey = tunnel({ url: s5.url, credentials: { identity: key }, target: { host: '127.0.0.1', port: echo.port } });
    expect((await byKey.ready).user).toBe(`peer:${peerIdOf(key)}`);
    const notListed = tunnel({ url: s5.url, credentials: { identity: other }, target: { host: '127.0.0.1', port: echo.port } });
    await expect(notListed.ready).rejects.toMatchObject({ reason: 'unauthorized' });
    const rest = restApiCredentials('S3CRET', 'carol', 600);
    const byRest = tunnel({ url: s5.url, credentials: { username: rest.username, password: rest.password }, target: { host: '127.0.0.1', port: echo.port } });
    expect((await byRest.ready).user).toBe('carol');
    const expired = restApiCredentials('S3CRET', 'carol', -10);
    const late = tunnel({
      url: s5.url,
      credentials: { username: expired.username, password: expired.password },
      target: { host: '127.0.0.1', port: echo.port },
    });
    await expect(late.ready).rejects.toMatchObject({ reason: 'unauthorized' });
    const msg = randomBytes(3000);
    expect((await roundTrip((await byRest.ready).port, msg)).equals(msg)).toBe(true);
    await Promise.all([byKey, byRest].map((t) => t.close()));
    await s5.close();
  });

  test("PROXY protocol v2: the service learns the public client's address", async () => {
    const seen: Buffer[] = [];
    const svc = createServer((s) => s.on('data', (c: Buffer) => seen.push(c)));
    await new Promise<void>((r) => svc.listen(0, '127.0.0.1', r));
    const t = tunnel({ url: srv.url, credentials: bob, proxyProtocol: true, target: { host: '127.0.0.1', port: (svc.address() as AddressInfo).port } });
    const a = await t.ready;
    const c = connect({ port: a.port, host: '127.0.0.1', localAddress: '127.0.0.7' });
    await new Promise((r) => c.on('connect', r));
    c.write('payload');
    while (Buffer.concat(seen).length < 28 + 7) await new Promise((r) => setTimeout(r, 20));
    const got = Buffer.concat(seen);
    expect(got.subarray(0, 16).toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '2111000c');
    expect([...got.subarray(16, 20)]).toEqual([127, 0, 0, 7]);
    expect([...got.subarray(20, 24)]).toEqual([127, 0, 0, 1]);
    expect(got.readUInt16BE(24)).toBe(c.localPort);
    expect(got.readUInt16BE(26)).toBe(a.port);
    expect(got.subarray(28).toString()).toBe('payload');
    c.destroy();
    svc.close();
  });

  test('bandwidth per user: 512 KiB/s holds a 1.5 MiB transfer to about two seconds', async () => {
    const s6 = await startExposeServer({ ports: portBlock(10), limits: { bandwidthPerUser: 512 * 1024 } });
    const sink = createServer((s) => {
      s.resume();
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const t = tunnel({ url: s6.url, credentials: alice, target: { host: '127.0.0.1', port: (sink.address() as AddressInfo).port } });
    const a = await t.ready;
    const t0 = performance.now();
    await roundTrip(a.port, randomBytes(1536 * 1024));
    const seconds = (performance.now() - t0) / 1000;
    // One second of burst, then 512 KiB/s: at least ~2 s for 1.5 MiB.
    expect(seconds).toBeGreaterThan(1.6);
    expect(seconds).toBeLessThan(6);
    await t.close();
    await s6.close();
    sink.close();
  });
});

describe('transport and the other direction', () => {
  test('wss://: the control connection over TLS (an https server with the rendezvous and expose services)', async () => {
    const { createServer: createHttps } = await import('node:https');
    const { attachExpose, attachRendezvous, loadTlsCredentials, staticUsers } = await import('@nat/server');
    const creds = await loadTlsCredentials({ selfSigned: true, altIps: ['127.0.0.1'] });
    const https = createHttps({ cert: creds.cert, key: creds.key });
    const rv = attachRendezvous(https);
    const ex = attachExpose(https, { host: '127.0.0.1', ports: portBlock(10), auth: staticUsers({ alice: 'alice-pw' }) });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const url = `wss://127.0.0.1:${(https.address() as AddressInfo).port}/`;
    const strict = tunnel({ url, credentials: alice, target: { host: '127.0.0.1', port: echo.port } });
    await expect(strict.ready).rejects.toMatchObject({ code: 'SOCKET' }); // self-signed: refused unless told
    const t = tunnel({ url, credentials: alice, tls: { insecure: true }, target: { host: '127.0.0.1', port: echo.port } });
    const a = await t.ready;
    const msg = randomBytes(200_000);
    expect((await roundTrip(a.port, msg)).equals(msg)).toBe(true);
    await t.close();
    await ex.close();
    await rv.close();
    https.closeAllConnections();
    https.close();
  });

  test('backpressure the other way: a public client that does not read slows the service', async () => {
    let sent = 0;
    let svcSocket: Socket | undefined;
    const chunk = randomBytes(64 * 1024);
    const src = createServer((s) => {
      svcSocket = s;
      s.on('error', () => {});
      const pump = (): void => {
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    });
    await new Promise<void>((r) => src.listen(0, '127.0.0.1', r));
    const t = tunnel({ url: srv.url, credentials: bob, target: { host: '127.0.0.1', port: (src.address() as AddressInfo).port } });
    const a = await t.ready;
    const c = connect(a.port, '127.0.0.1');
    c.on('error', () => {});
    c.pause();
    await new Promise((r) => setTimeout(r, 1500));
    // Socket buffers on the way plus one 256 KiB window on the server: far from 64 MB.
    expect(sent).toBeLessThan(24 * 1024 * 1024);
    expect(srv.expose.stats().connections).toBeGreaterThanOrEqual(1);
    let got = 0;
    c.on('data', (d: Buffer) => (got += d.length));
    c.resume();
    while (got < 8 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    c.destroy();
    svcSocket?.destroy();
    src.close();
  });
});
