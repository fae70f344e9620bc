/**
 * The outbound side of the expose service through its library API (what a plugin embedding
 * @nat/client uses): the server's events with the bytes of each connection, the server-wide cap,
 * the connect timeout, and an unexposed session refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExposeOutboundError, exposePublic, type ExposeTunnel, openOutbound } from '@nat/client';
import type { ServerEvent } from '@nat/server';
import { USERS, echoServer, portBlock, roundTrip, startExposeServer, type TestServer } from './harness.js';
import { rawSession } from './raw.js';

const TARGET_IP = '127.0.0.11';

/** A listener that never accepts (python3: backlog 0 and no accept), its queue filled, so that a further SYN goes unanswered. */
async function silentListener(): Promise<{ port: number; fillers: Socket[]; child: ChildProcess }> {
  const code = `import socket,sys,time
s=socket.socket(); s.bind(('${TARGET_IP}',0)); s.listen(0)
print(s.getsockname()[1], flush=True)
time.sleep(120)`;
  const child = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`python3 is needed for this test: ${e.message}`)));
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // With backlog 0, Linux completes one handshake without accept; later SYNs are dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 1; i++) {
    const s = connect(port, TARGET_IP);
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    fillers.push(s);
  }
  return { port, fillers, child };
}

describe('expose outbound: events, server cap, connect timeout', () => {
  let server: TestServer;
  let events: ServerEvent[];
  let target: Awaited<ReturnType<typeof echoServer>>;
  let tunnel: ExposeTunnel;
  let range: { min: number; max: number };

  beforeAll(async () => {
    events = [];
    range = portBlock(4);
    target = await echoServer(TARGET_IP);
    server = await startExposeServer({
      ports: range,
      limits: { outboundPerSession: 8, outboundTotal: 2, outboundConnectTimeoutMs: 1500 },
      outbound: { enabled: true, peers: { allow: [`${TARGET_IP}/32`] } },
      events: (e) => events.push(e),
    });
    tunnel = exposePublic({ url: server.url, credentials: { username: 'alice', password: USERS.alice }, target: { host: TARGET_IP, port: target.port } });
    await tunnel.ready;
  });

  afterAll(async () => {
    await tunnel?.close();
    await server?.close();
    target?.server.close();
  });

  test('opened and closed events, with the bytes each way; the far end saw the server bind address', async () => {
    const c = await tunnel.openOutbound({ host: TARGET_IP, port: target.port });
    expect(c.bound.address).toBe('127.0.0.1'); // the address the public ports are bound on
    const got: Buffer[] = [];
    c.stream.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise((r) => c.stream.once('end', r));
    c.stream.end(Buffer.alloc(300_000, 7));
    await ended;
    expect(Buffer.concat(got).equals(Buffer.alloc(300_000, 7))).toBe(true);
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.type === 'expose-outbound' && e.state === 'closed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const ours = events.filter((e) => e.type === 'expose-outbound');
    expect(ours).toEqual([
      {
        type: 'expose-outbound',
        user: 'alice',
        state: 'opened',
        target: `${TARGET_IP}:${target.port}`,
        address: { family: 'IPv4', address: TARGET_IP, port: target.port },
      },
      {
        type: 'expose-outbound',
        user: 'alice',
        state: 'closed',
        target: `${TARGET_IP}:${target.port}`,
        address: { family: 'IPv4', address: TARGET_IP, port: target.port },
        bytesToPeer: 300_000,
        bytesToClient: 300_000,
      },
    ]);
  });

  test('the server-wide cap (outboundTotal 2) refuses a third connection with global-cap; a refused one is an event too', async () => {
    const a = await tunnel.openOutbound({ host: TARGET_IP, port: target.port });
    const b = await tunnel.openOutbound({ host: TARGET_IP, port: target.port });
    const third = await tunnel.openOutbound({ host: TARGET_IP, port: target.port }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(ExposeOutboundError);
    expect((third as ExposeOutboundError).code).toBe('global-cap');
    expect(events).toContainEqual({ type: 'refused', service: 'expose', cause: 'global-cap', source: '127.0.0.1', user: 'alice', pool: 'outbound' });
    expect(events).toContainEqual(expect.objectContaining({ type: 'expose-outbound', state: 'refused', reason: 'global-cap' }));
    a.stream.destroy();
    b.stream.destroy();
  });

  test('a target outside the peer policy is refused (forbidden), counted as a peer-denied refusal', async () => {
    // the cap's slots come back once the server saw the two connections above close
    const deadline = Date.now() + 10_000;
    while (events.filter((e) => e.type === 'expose-outbound' && e.state === 'closed').length < 3 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const r = await tunnel.openOutbound({ host: '127.0.0.12', port: target.port }).catch((e: unknown) => e);
    expect((r as ExposeOutboundError).code).toBe('forbidden');
    expect((r as ExposeOutboundError).message).toMatch(/127\.0\.0\.12 is in 127\.0\.0\.0\/8.*--allow-peer 127\.0\.0\.0\/8/);
    expect(events).toContainEqual({ type: 'refused', service: 'expose', cause: 'peer-denied', source: '127.0.0.1', user: 'alice', pool: 'outbound' });
  });

  test('a target that does not answer is refused with timeout after the connect timeout', async () => {
    // wait for the cap's slots to come back
    const deadline = Date.now() + 10_000;
    while (events.filter((e) => e.type === 'expose-outbound' && e.state === 'closed').length < 3 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const silent = await silentListener();
    try {
      const t0 = performance.now();
      const r = await tunnel.openOutbound({ host: TARGET_IP, port: silent.port }).catch((e: unknown) => e);
      expect((r as ExposeOutboundError).code).toBe('timeout');
      expect((r as ExposeOutboundError).message).toMatch(/did not answer within 1500 ms/);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
    } finally {
      for (const s of silent.fillers) s.destroy();
      silent.child.kill();
    }
  });

  test('a session that holds no public port is refused with not-exposed', async () => {
    const raw = await rawSession(server.url, 'bob', USERS.bob);
    try {
      await raw.waitFor((m) => m.type === 'welcome');
      const r = await openOutbound(raw.mux, { host: TARGET_IP, port: target.port }).catch((e: unknown) => e);
      expect((r as ExposeOutboundError).code).toBe('not-exposed');
      expect(raw.closed()).toBe(false);
    } finally {
      raw.socket.destroy();
    }
  });
});

test('a server without the outbound option answers disabled (the session stays up)', async () => {
  const target = await echoServer(TARGET_IP);
  const range = portBlock(2);
  const server = await startExposeServer({ ports: range });
  const tunnel = exposePublic({ url: server.url, credentials: { username: 'alice', password: USERS.alice }, target: { host: TARGET_IP, port: target.port } });
  try {
    const granted = await tunnel.ready;
    const r = await tunnel.openOutbound({ host: TARGET_IP, port: target.port }).catch((e: unknown) => e);
    expect((r as ExposeOutboundError).code).toBe('disabled');
    expect((r as ExposeOutboundError).message).toMatch(/--expose-outbound/);
    // inbound traffic on the public port still flows: the refusal did not cut the control connection
    expect((await roundTrip(granted.port, Buffer.from('still up'))).toString()).toBe('still up');
    expect(tunnel.current?.port).toBe(granted.port);
  } finally {
    await tunnel.close();
    await server.close();
    target.server.close();
  }
});
