// Connection governance of the STUN/TURN TCP and TLS listeners (issue 14 findings 2, 4 and 7):
// connections are counted from TCP accept, TLS handshakes have a deadline, one source gets a
// share of the slots, and error answers over TCP are rate limited per source (one limiter, the
// stream layer's; a connection over it is closed).
import { type Socket, connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { StunClass, StunMethod, StunStreamFramer, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { sourceKey } from '@nat/protocol';
import { DEFAULT_STREAM_LIMITS, type ServerEvent, ServerEventHub, type StunServer, startStunServer, staticUsers } from '../src/index.js';

let server: StunServer | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
});

const portOf = (s: StunServer, transport: 'tcp' | 'tls'): number => s.listeners.find((l) => l.transport === transport)!.address.port;

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

/** Opens a plain TCP connection; resolves once connected. */
function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.on('error', reject);
    sockets.push(s);
  });
}

/** Sends `bytes` over TCP and collects the STUN messages answered within `ms`. */
async function answers(port: number, localAddress: string, bytes: Uint8Array, ms: number): Promise<number[]> {
  const s = await open(port, localAddress);
  const framer = new StunStreamFramer();
  const classes: number[] = [];
  s.on('data', (d: Buffer) => {
    framer.push(new Uint8Array(d));
    for (let f = framer.next(); f; f = framer.next()) classes.push(decodeStunMessage(f.bytes).class);
  });
  s.write(bytes);
  await new Promise((r) => setTimeout(r, ms));
  return classes;
}

const binding = (): Uint8Array => encodeStunMessage({ class: StunClass.Request, method: StunMethod.Binding, attributes: [] });

describe('stream listener governance', () => {
  it('finding 4: TLS connections that never finish the handshake are counted from accept and closed after the deadline', async () => {
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: false,
      tlsPort: 0,
      streams: { handshakeTimeoutMs: 12_000, maxConnectionsPerSource: 5000 },
    });
    const port = portOf(server, 'tls');
    const N = 2000;
    let closed = 0;
    // In batches, so that the kernel's accept queue never overflows (a silent client would not
    // notice its lost ACK). Spread over a few loopback sources; the connections say nothing (no ClientHello).
    for (let i = 0; i < N; i += 200) {
      const batch = await Promise.all(Array.from({ length: 200 }, (_, j) => open(port, `127.0.${1 + ((i + j) % 4)}.${10 + ((i + j) % 7)}`)));
      for (const s of batch) s.once('close', () => closed++);
      // Counted against the connection cap from accept, before any TLS byte (the old server counted nothing).
      expect(await until(() => server!.stats().connections === i + 200, 5000), `open: ${server.stats().connections}`).toBe(true);
    }
    expect(closed).toBe(0);
    // Closed by the server once the handshake deadline passed.
    expect(await until(() => closed === N, 30_000), `closed ${closed} of ${N}`).toBe(true);
    expect(await until(() => server!.stats().connections === 0, 5000)).toBe(true);
    expect(server.stats().streams.handshakeFailed).toBeGreaterThanOrEqual(N);
    // A TLS client that does shake hands is still served.
    const t = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    sockets.push(t);
    const cls = await new Promise<number>((resolve, reject) => {
      const framer = new StunStreamFramer();
      t.on('error', reject);
      t.on('secureConnect', () => t.write(binding()));
      t.on('data', (d: Buffer) => {
        framer.push(new Uint8Array(d));
        const f = framer.next();
        if (f) resolve(decodeStunMessage(f.bytes).class);
      });
    });
    expect(cls).toBe(StunClass.SuccessResponse);
  }, 60_000);

  it('finding 7: one source gets a share of the TCP slots, not all of them', async () => {
    server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, maxConnections: 40, streams: { maxConnectionsPerSource: 10 } });
    const port = portOf(server, 'tcp');
    let refused = 0;
    for (let i = 0; i < 25; i++) (await open(port, '127.0.3.7')).once('close', () => refused++);
    // The server closes the connections over the share at once; ten stay open.
    expect(await until(() => refused === 15, 10_000), `closed ${refused}`).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(refused).toBe(15);
    expect(server.stats().connections).toBe(10);
    expect(server.stats().streams.refusedPerSource).toBe(15);
    // Another source is still served.
    expect(await answers(port, '127.0.3.8', binding(), 500)).toEqual([StunClass.SuccessResponse]);
  });

  // One error-answer limiter on streams: the governor's `errorRate`. A client flooding bad
  // requests in one write gets exactly the burst of error answers (the few milliseconds the
  // flood takes refill less than one token at these rates), then the server closes the
  // connection (cause protocol-error). Before, the connection stayed open, and on a TURN server
  // the TURN core's own unauthenticated limiter (50/s, bursts of 100) also held answers back.
  const floods = [
    { name: 'STUN only, errorRate 10/s bursts of 20', turn: false, errorRate: { perSecond: 10, burst: 20 }, expected: 20 },
    { name: 'TURN, the default errorRate (bursts of 50)', turn: true, errorRate: undefined, expected: DEFAULT_STREAM_LIMITS.errorRate.burst },
  ];
  it.each(floods)('finding 2: a TCP client flooding bad requests gets the configured error answers, then is closed ($name)', async (c) => {
    const hub = new ServerEventHub();
    const seen: ServerEvent[] = [];
    hub.subscribe((e) => seen.push(e));
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: true,
      events: hub.sink,
      ...(c.turn ? { turn: { realm: 'governance.test', auth: staticUsers({ u: 'p' }) } } : {}),
      streams: { errorRate: c.errorRate },
    });
    const port = portOf(server, 'tcp');
    // SharedSecret: a method neither the responder nor the TURN core serves (400 from either).
    const one = encodeStunMessage({ class: StunClass.Request, method: StunMethod.SharedSecret, attributes: [] });
    const flood = Buffer.concat(Array.from({ length: 500 }, () => one));
    const s = await open(port, '127.0.4.1');
    const framer = new StunStreamFramer();
    const classes: number[] = [];
    s.on('data', (d: Buffer) => {
      framer.push(new Uint8Array(d));
      for (let f = framer.next(); f; f = framer.next()) classes.push(decodeStunMessage(f.bytes).class);
    });
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.write(flood);
    await closed;
    expect(classes.length).toBeGreaterThanOrEqual(c.expected);
    expect(classes.length).toBeLessThanOrEqual(c.expected + 1);
    expect(classes.every((k) => k === StunClass.ErrorResponse)).toBe(true);
    expect(server.stats().streams.errorsRateLimited).toBe(1);
    expect(server.turn?.stats.rateLimited ?? 0).toBe(0);
    const service = c.turn ? 'turn' : 'stun';
    expect(await until(() => seen.some((e) => e.type === 'connection-closed'), 5000)).toBe(true);
    expect(seen.filter((e) => e.type === 'rate-limited')).toEqual([{ type: 'rate-limited', service, source: '127.0.4.1', what: 'error-answers' }]);
    const close = seen.find((e) => e.type === 'connection-closed');
    expect(close).toMatchObject({ service, transport: 'tcp', source: '127.0.4.1', cause: 'protocol-error' });
    // Another source still gets its answers.
    expect(await answers(port, '127.0.4.2', one, 500)).toEqual([StunClass.ErrorResponse]);
  });

  it('per-source keys: an IPv4 address, an IPv6 /64, IPv4-mapped IPv6 as IPv4', () => {
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('2001:db8:1:2:aaaa::1')).toBe(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(sourceKey('2001:db8:1:2::1')).not.toBe(sourceKey('2001:db8:1:3::1'));
    expect(sourceKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
  });
});
