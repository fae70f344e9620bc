// The STUN server's TLS port shared with an HTTP service (StunServer.serveHttpOnTls): HTTP
// goes to the service and STUN stays, by ALPN or by the first bytes; without a service HTTP is
// closed as a protocol error; and a connection that finishes its handshake but says nothing is
// still held to the handshake deadline.
import { createServer as createHttpServer } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerEvent, type StunServer, startStunServer } from '../src/index.js';

const events: ServerEvent[] = [];
let server: StunServer;
let port = 0;

beforeAll(async () => {
  server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tlsPort: 0,
    streams: { handshakeTimeoutMs: 1500 },
    events: (e) => void events.push(e),
  });
  port = server.listeners.find((l) => l.transport === 'tls')!.address.port;
});

afterAll(() => server?.close());

/** Opens TLS, writes `text` (unless undefined), resolves with what came back once the server closes (or after 15 s). */
function talk(text: string | undefined, alpn?: string[]): Promise<{ got: string; closed: boolean; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
      if (text !== undefined) s.write(text);
    });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ got, closed: false, ms: Date.now() - t0 });
    }, 15_000);
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ got, closed: true, ms: Date.now() - t0 });
    });
  });
}

/** Whether a connection-closed event with `cause` arrives (the server's side may close after the client saw it). */
async function closedWith(cause: string): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  const seen = (): boolean => events.some((e) => e.type === 'connection-closed' && e.cause === cause);
  while (!seen() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return seen();
}

const GET = 'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

describe('a TLS port shared with an HTTP service', () => {
  it('without an HTTP service, an HTTP request is closed unanswered (protocol-error)', { timeout: 30_000 }, async () => {
    const r = await talk(GET);
    expect(r).toMatchObject({ got: '', closed: true });
    expect(await closedWith('protocol-error')).toBe(true);
  });

  it('a client that finishes the handshake and says nothing is closed at the handshake deadline', { timeout: 30_000 }, async () => {
    const r = await talk(undefined);
    expect(r.closed).toBe(true);
    expect(await closedWith('handshake-timeout')).toBe(true);
  });

  it('with serveHttpOnTls, HTTP (by ALPN or by its request line) reaches the service', { timeout: 30_000 }, async () => {
    const http = createHttpServer((req, res) => res.end(`served ${req.url} for ${req.socket.remoteAddress}`));
    server.serveHttpOnTls((socket, lease) => {
      lease.serve(socket, { carries: () => false, resumed: () => undefined });
      http.emit('connection', socket);
    });
    try {
      for (const alpn of [undefined, ['http/1.1']]) {
        const r = await talk(GET, alpn);
        expect(r.got).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*served \/hello for 127\.0\.0\.1$/);
      }
    } finally {
      server.serveHttpOnTls(undefined);
      http.close();
    }
  });
});
