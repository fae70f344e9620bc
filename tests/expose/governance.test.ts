/**
 * Issue 14, the expose service on the open internet: control-connection floods (finding 3),
 * quotas reserved before any await (finding 6), per-source shares of sessions and of the
 * connections of a port (finding 7). Floods are bounded in time and bytes; the server's memory is
 * measured as the RSS of a nat-server child process.
 */
import { createSocket } from 'node:dgram';
import { type Socket, connect } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type ExposeTunnel, exposePublic } from '@nat/client';
import { EXPOSE_VERSION, type ExposeControlMessage, encodeControlMessage } from '@nat/protocol';
import { echoServer, portBlock, roundTrip, startExposeServer, type TestServer } from './harness.js';
import { type ServerChild, pingFrame, rawSession, rawUpgrade, startServerChild, synFrame } from './raw.js';

const MB = 1024 * 1024;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
let echo: Awaited<ReturnType<typeof echoServer>> | undefined;
afterAll(() => echo?.server.close());

/** Writes `frame()` chunks on `socket` for up to `ms` or `maxBytes`, honouring backpressure; resolves with the bytes written. */
function flood(socket: Socket, frame: (i: number) => Buffer, ms: number, maxBytes: number): Promise<number> {
  return new Promise((res) => {
    let written = 0;
    let i = 0;
    const end = Date.now() + ms;
    const finish = (): void => res(written);
    socket.once('close', finish);
    const pump = (): void => {
      while (Date.now() < end && written < maxBytes && !socket.destroyed) {
        const parts: Buffer[] = [];
        for (let k = 0; k < 4096; k++) parts.push(frame(i++));
        const chunk = Buffer.concat(parts);
        written += chunk.length;
        if (!socket.write(chunk)) {
          const t = setTimeout(pump, Math.max(0, end - Date.now()));
          socket.once('drain', () => {
            clearTimeout(t);
            pump();
          });
          return;
        }
        if (i % (4096 * 16) === 0) return void setImmediate(pump);
      }
      finish();
    };
    pump();
  });
}

/** Peak RSS growth of `server` over `baseline` while `work` runs (sampled every 50 ms). */
async function peakGrowth<T>(server: ServerChild, baseline: number, work: Promise<T>): Promise<{ peak: number; value: T }> {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, server.rss() - baseline)), 50);
  try {
    const value = await work;
    peak = Math.max(peak, server.rss() - baseline);
    return { peak, value };
  } finally {
    clearInterval(t);
  }
}

/** An expose client of @nat/client with a working public port to the echo service; returns a check that the port still echoes. */
async function workingTunnel(url: string, user: string, password: string): Promise<() => Promise<void>> {
  echo ??= await echoServer();
  const t: ExposeTunnel = exposePublic({ url, credentials: { username: user, password }, target: { host: '127.0.0.1', port: echo.port } });
  cleanups.push(() => t.close());
  const a = await t.ready;
  return async () => expect((await roundTrip(a.port, Buffer.from('still served'))).toString()).toBe('still served');
}

describe('finding 3: expose control connection floods', () => {
  let server: ServerChild;
  const start = async (): Promise<void> => {
    const range = portBlock(10);
    server = await startServerChild([
      ...['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0'],
      ...['--expose-ports', `${range.min}-${range.max}`, '--user', 'alice:pw', '--user', 'bob:pw', '--log-level', 'silent'],
    ]);
    cleanups.push(() => server.stop());
  };

  it('finding 3: an unauthenticated connection flooding pings and SYNs, reading nothing, does not grow the server; it is cut, another client is served', async () => {
    await start();
    const check = await workingTunnel(server.url, 'alice', 'pw');
    await check();
    const baseline = server.rss();
    const s = await rawUpgrade(server.url, '127.0.14.31');
    s.on('error', () => {});
    s.pause(); // reads nothing
    s.write(synFrame(1)); // the control stream, as a client opens it
    // Pings, and SYNs of further streams (each answered ACK + RST by a server that takes them).
    const { peak, value: written } = await peakGrowth(
      server,
      baseline,
      flood(s, (i) => (i % 2 ? pingFrame(i) : synFrame(3 + i)), 4000, 400 * MB),
    );
    await check();
    expect(peak).toBeLessThan(50 * MB);
    // Cut long before 4 s of flooding: an unauthenticated connection may send only what authenticates.
    await new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));
    expect(written).toBeLessThan(64 * MB);
    s.destroy();
  }, 60_000);

  it('finding 3: an authenticated connection that stops reading and floods pings does not grow the server; another client is served', async () => {
    await start();
    const check = await workingTunnel(server.url, 'alice', 'pw');
    const baseline = server.rss();
    const raw = await rawSession(server.url, 'bob', 'pw', '127.0.14.32');
    await raw.waitFor((m) => m.type === 'welcome');
    raw.socket.pause();
    const { peak } = await peakGrowth(
      server,
      baseline,
      flood(raw.socket, (i) => pingFrame(i), 4000, 400 * MB),
    );
    await check();
    expect(peak).toBeLessThan(50 * MB);
    raw.socket.destroy();
  }, 60_000);
});

/** A connection from `localAddress` to a public port: 'open' once it echoed a byte, else how it ended. */
function held(port: number, localAddress: string): Promise<{ socket: Socket; outcome: string }> {
  return new Promise((res) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => socket.write('x'));
    const done = (outcome: string): void => res({ socket, outcome });
    socket.once('data', () => done('open'));
    socket.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    socket.on('close', () => done('closed'));
  });
}

describe('finding 6 and 7: expose quotas and per-source shares', () => {
  let srv: TestServer;
  const start = async (limits: Parameters<typeof startExposeServer>[0]['limits']): Promise<void> => {
    srv = await startExposeServer({ ports: portBlock(80), limits: { ...limits, authTimeoutMs: 5000 } });
    cleanups.push(() => srv.close());
  };

  it('finding 3: a control connection that stops reading while its output piles up is cut; another client is served', async () => {
    await start({ heartbeatMs: 500 });
    const raw = await rawSession(srv.url, 'bob', 'bob-pw', '127.0.14.39');
    cleanups.push(() => raw.socket.destroy());
    await raw.waitFor((m) => m.type === 'welcome');
    raw.socket.pause();
    await flood(raw.socket, (i) => pingFrame(i), 10_000, 16 * MB);
    expect(raw.closed()).toBe(true); // the flood ended because the server cut the connection, not by its time or byte limit
    const check = await workingTunnel(srv.url, 'alice', 'alice-pw');
    await check();
  }, 30_000);

  it('finding 6: 60 expose requests in one write with a quota of 4 get exactly 4 ports', async () => {
    await start({ portsPerUser: 4 });
    const raw = await rawSession(srv.url, 'alice', 'alice-pw', '127.0.14.40');
    cleanups.push(() => raw.socket.destroy());
    await raw.waitFor((m) => m.type === 'welcome');
    const requests = Array.from({ length: 60 }, (_, id): ExposeControlMessage => ({
      v: EXPOSE_VERSION,
      type: 'expose',
      id,
      transport: id % 2 ? 'udp' : 'tcp',
    }));
    raw.control.write(Buffer.concat(requests.map((m) => encodeControlMessage(m))));
    const answered = (): ExposeControlMessage[] => raw.messages.filter((m) => m.type === 'exposed' || m.type === 'refused');
    await raw.waitFor(() => answered().length === 60);
    const granted = answered().filter((m) => m.type === 'exposed');
    expect(granted).toHaveLength(4);
    expect(answered().filter((m) => m.type === 'refused' && m.code === 'over-quota')).toHaveLength(56);
    expect(srv.expose.stats().ports).toBe(4);
    // Releasing one gives its slot back: one more request is granted.
    const one = granted[0] as Extract<ExposeControlMessage, { type: 'exposed' }>;
    raw.send({ v: EXPOSE_VERSION, type: 'unexpose', transport: one.transport, port: one.port });
    await new Promise((r) => setTimeout(r, 200));
    raw.send({ v: EXPOSE_VERSION, type: 'expose', id: 100, transport: 'tcp' });
    expect((await raw.waitFor((m) => (m.type === 'exposed' || m.type === 'refused') && m.ref === 100)).type).toBe('exposed');
    expect(srv.expose.stats().ports).toBe(4);
  });

  it('finding 7: one source cannot take more than its share of expose sessions; another source still gets in', async () => {
    await start({ maxSessions: 8 }); // a quarter of 8: 2 sessions per source
    const a1 = await rawSession(srv.url, 'alice', 'alice-pw', '127.0.14.41');
    const a2 = await rawSession(srv.url, 'alice', 'alice-pw', '127.0.14.41');
    cleanups.push(
      () => a1.socket.destroy(),
      () => a2.socket.destroy(),
    );
    await Promise.all([a1.waitFor((m) => m.type === 'welcome'), a2.waitFor((m) => m.type === 'welcome')]);
    const a3 = await rawSession(srv.url, 'alice', 'alice-pw', '127.0.14.41');
    cleanups.push(() => a3.socket.destroy());
    await expect(a3.waitFor((m) => m.type === 'welcome')).rejects.toThrow(/HTTP\/1.1 503/);
    expect(srv.expose.stats().sessionsOverShare).toBe(1);
    const b = await rawSession(srv.url, 'bob', 'bob-pw', '127.0.14.42');
    cleanups.push(() => b.socket.destroy());
    await b.waitFor((m) => m.type === 'welcome');
    expect(srv.expose.stats().sessions).toBe(3);
  });

  it('finding 7: one source cannot hold more than its share of the connections of an exposed port; another source still gets in', async () => {
    await start({ connectionsPerPort: 8 }); // a quarter of 8: 2 per source
    const check = await workingTunnel(srv.url, 'alice', 'alice-pw');
    const port = srv.expose.exposures()[0]!.port;
    const first = await Promise.all([held(port, '127.0.14.43'), held(port, '127.0.14.43')]);
    cleanups.push(() => first.forEach((c) => c.socket.destroy()));
    expect(first.map((c) => c.outcome)).toEqual(['open', 'open']);
    const third = await held(port, '127.0.14.43');
    third.socket.destroy();
    expect(['ECONNRESET', 'closed']).toContain(third.outcome);
    expect(srv.expose.stats().connectionsOverShare).toBe(1);
    const other = await held(port, '127.0.14.44');
    other.socket.destroy();
    expect(other.outcome).toBe('open');
    await check();
    expect(srv.expose.stats().connections).toBeGreaterThanOrEqual(2);
  });

  it('finding 7: on an exposed UDP port one source cannot take more than its share of the flows; its extra datagrams are dropped, another source still gets answers', async () => {
    await start({ connectionsPerPort: 8 }); // a quarter of 8: 2 flows per source
    const svc = createSocket('udp4');
    cleanups.push(() => svc.close());
    svc.on('message', (m, r) => svc.send(m, r.port, r.address));
    await new Promise<void>((r) => svc.bind(0, '127.0.0.1', r));
    const t: ExposeTunnel = exposePublic({
      url: srv.url,
      credentials: { username: 'bob', password: 'bob-pw' },
      transport: 'udp',
      target: { host: '127.0.0.1', port: svc.address().port },
    });
    cleanups.push(() => t.close());
    const port = (await t.ready).port;
    /** Sends from a new socket on `ip` until an answer comes or about 1.5 s pass; true when answered. */
    const answered = async (ip: string): Promise<boolean> => {
      const c = createSocket('udp4');
      cleanups.push(() => c.close());
      await new Promise<void>((r) => c.bind(0, ip, r));
      let got = false;
      c.on('message', () => (got = true));
      for (let i = 0; i < 15 && !got; i++) {
        c.send('ping', port, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 100));
      }
      return got;
    };
    expect(await answered('127.0.14.45')).toBe(true);
    expect(await answered('127.0.14.45')).toBe(true);
    expect(await answered('127.0.14.45')).toBe(false); // a third source port of the same address
    expect(srv.expose.stats().datagramsOverShare).toBeGreaterThan(0);
    expect(await answered('127.0.14.46')).toBe(true);
  });

  it('finding 7: nat-server --expose-sessions-per-source sets the share, and the refusal says why', async () => {
    const range = portBlock(4);
    const server = await startServerChild([
      ...['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0', '--log-level', 'silent'],
      ...['--expose-ports', `${range.min}-${range.max}`, '--user', 'alice:pw', '--expose-sessions-per-source', '1', '--expose-connections-per-source', '1'],
    ]);
    cleanups.push(() => server.stop());
    const a1 = await rawSession(server.url, 'alice', 'pw', '127.0.14.47');
    cleanups.push(() => a1.socket.destroy());
    await a1.waitFor((m) => m.type === 'welcome');
    const a2 = await rawSession(server.url, 'alice', 'pw', '127.0.14.47');
    cleanups.push(() => a2.socket.destroy());
    await expect(a2.waitFor((m) => m.type === 'welcome')).rejects.toThrow(
      /503 Service Unavailable[^]*1 expose control connections from your address already \(its share of this server\)/,
    );
    const b = await rawSession(server.url, 'alice', 'pw', '127.0.14.48');
    cleanups.push(() => b.socket.destroy());
    await b.waitFor((m) => m.type === 'welcome');
  });
});
