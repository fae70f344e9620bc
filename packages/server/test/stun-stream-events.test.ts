// The STUN/TURN server's typed events (issue 14: the seam metrics attach to): connections opened
// and closed with their cause and duration, refusals with their cause and pool, rate limits; and
// datagrams that RFC 7983's first-byte demultiplexing calls not STUN are dropped unanswered.
import { createSocket } from 'node:dgram';
import { type Socket, connect as tcpConnect } from 'node:net';
import { StunClass, StunMethod, StunStreamFramer, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type ServerEvent, type ServerEventOf, ServerEventHub, type StunServer, type StunServerInit, startStunServer } from '../src/index.js';

let server: StunServer | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
});

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

/** A server on system-chosen ports whose events are collected in `seen`. */
async function start(init: Partial<StunServerInit> = {}): Promise<{ server: StunServer; seen: ServerEvent[]; port: number }> {
  const hub = new ServerEventHub();
  const seen: ServerEvent[] = [];
  hub.subscribe((e) => seen.push(e));
  server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, events: hub.sink, ...init });
  const port = server.listeners.find((l) => l.transport === (init.tlsPort !== undefined ? 'tls' : 'tcp'))!.address.port;
  return { server, seen, port };
}

function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.on('error', reject);
    sockets.push(s);
  });
}

const closes = (seen: ServerEvent[]): ServerEventOf<'connection-closed'>[] =>
  seen.filter((e): e is ServerEventOf<'connection-closed'> => e.type === 'connection-closed');
const binding = (): Uint8Array => encodeStunMessage({ class: StunClass.Request, method: StunMethod.Binding, attributes: [] });

/** Sends a Binding request over `s` and waits for its answer's class. */
function ask(s: Socket): Promise<number> {
  return new Promise((resolve) => {
    const framer = new StunStreamFramer();
    s.on('data', (d: Buffer) => {
      framer.push(new Uint8Array(d));
      const f = framer.next();
      if (f) resolve(decodeStunMessage(f.bytes).class);
    });
    s.write(binding());
  });
}

describe('STUN/TURN server events', () => {
  it('a connection the client closes: opened, then closed with cause client and its duration', async () => {
    const { seen, port } = await start();
    const s = await open(port, '127.0.6.1');
    expect(await ask(s)).toBe(StunClass.SuccessResponse);
    await new Promise((r) => setTimeout(r, 100));
    s.end();
    expect(await until(() => closes(seen).length === 1, 5000)).toBe(true);
    expect(seen[0]).toEqual({ type: 'connection-opened', service: 'stun', transport: 'tcp', source: '127.0.6.1' });
    const c = closes(seen)[0]!;
    expect(c).toMatchObject({ service: 'stun', transport: 'tcp', source: '127.0.6.1', cause: 'client' });
    expect(c.durationMs).toBeGreaterThanOrEqual(90);
  });

  it('silent connections are closed with cause idle, non-STUN streams with protocol-error, the rest on close with server-close', async () => {
    const { server, seen, port } = await start({ streams: { idleTimeoutMs: 300 } });
    await open(port, '127.0.6.2');
    (await open(port, '127.0.6.3')).write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await until(() => closes(seen).length === 2, 5000)).toBe(true);
    expect(closes(seen).map((c) => [c.source, c.cause])).toEqual(
      expect.arrayContaining([
        ['127.0.6.2', 'idle'],
        ['127.0.6.3', 'protocol-error'],
      ]),
    );
    const s = await open(port, '127.0.6.4');
    expect(await ask(s)).toBe(StunClass.SuccessResponse);
    await server.close();
    expect(await until(() => closes(seen).length === 3, 5000)).toBe(true);
    expect(closes(seen)[2]).toMatchObject({ source: '127.0.6.4', cause: 'server-close' });
  });

  it('refusals at accept name their cause and pool: source-share, then global-cap', async () => {
    const { seen, port } = await start({ streams: { maxConnections: 2, maxConnectionsPerSource: 1 } });
    await open(port, '127.0.6.5');
    await open(port, '127.0.6.5');
    expect(await until(() => seen.some((e) => e.type === 'refused'), 5000)).toBe(true);
    await open(port, '127.0.6.6');
    await open(port, '127.0.6.7');
    expect(await until(() => seen.filter((e) => e.type === 'refused').length === 2, 5000)).toBe(true);
    expect(seen.filter((e) => e.type === 'refused')).toEqual([
      { type: 'refused', service: 'stun', cause: 'source-share', source: '127.0.6.5', pool: 'connections' },
      { type: 'refused', service: 'stun', cause: 'global-cap', source: '127.0.6.7', pool: 'connections' },
    ]);
    // A refused connection is never reported opened.
    expect(seen.filter((e) => e.type === 'connection-opened').map((e) => (e as ServerEventOf<'connection-opened'>).source)).toEqual(['127.0.6.5', '127.0.6.6']);
  });

  it('a TLS connection that never shakes hands is closed with cause handshake-timeout', async () => {
    const { seen, port } = await start({ tcp: false, tlsPort: 0, streams: { handshakeTimeoutMs: 300 } });
    await open(port, '127.0.6.8');
    expect(await until(() => closes(seen).length === 1, 5000)).toBe(true);
    expect(closes(seen)[0]).toMatchObject({ transport: 'tls', source: '127.0.6.8', cause: 'handshake-timeout' });
    expect(seen[0]).toEqual({ type: 'connection-opened', service: 'stun', transport: 'tls', source: '127.0.6.8' });
  });

  it('UDP: a source over the request rate is reported once, not once per dropped request', async () => {
    const { server, seen } = await start({ rateLimit: { perSecond: 1, burst: 2 } });
    const udpPort = server.listeners.find((l) => l.transport === 'udp')!.address.port;
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.bind({ address: '127.0.6.9', port: 0 }, () => r()));
    try {
      for (let i = 0; i < 6; i++) u.send(binding(), udpPort, '127.0.0.1');
      expect(await until(() => server.stats().rateLimited === 4, 5000)).toBe(true);
      expect(seen.filter((e) => e.type === 'rate-limited')).toEqual([{ type: 'rate-limited', service: 'stun', source: '127.0.6.9', what: 'requests' }]);
    } finally {
      u.close();
    }
  });

  it('UDP: a datagram whose first byte is not STUN (RFC 7983) is dropped, even if the rest parses as a STUN request', async () => {
    const { server } = await start();
    const udpPort = server.listeners.find((l) => l.transport === 'udp')!.address.port;
    // Method 0x100: a well-formed STUN header whose first byte is 0x04 (RFC 7983: not STUN).
    const odd = encodeStunMessage({ class: StunClass.Request, method: 0x100, attributes: [] });
    expect(odd[0]).toBe(0x04);
    const u = createSocket('udp4');
    const got: Buffer[] = [];
    u.on('message', (m) => got.push(m));
    await new Promise<void>((r) => u.bind({ address: '127.0.6.10', port: 0 }, () => r()));
    try {
      u.send(odd, udpPort, '127.0.0.1');
      u.send(binding(), udpPort, '127.0.0.1');
      expect(await until(() => got.length === 1 && server.stats().dropped === 1, 5000)).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((m) => decodeStunMessage(m).class)).toEqual([StunClass.SuccessResponse]);
      expect(server.stats().errors).toBe(0);
    } finally {
      u.close();
    }
  });
});
