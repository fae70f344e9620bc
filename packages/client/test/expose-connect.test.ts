/** What `openExposeConnection` says when the server answers the upgrade with a plain HTTP status. */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { openExposeConnection } from '../src/expose/index.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** An HTTP server that answers every upgrade request with `status` and `body`, as a refusing expose service does. */
async function answering(status: number, body: string): Promise<URL> {
  server = createServer();
  server.on('upgrade', (_req, socket) => {
    socket.end(`HTTP/1.1 ${status} X\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/expose`);
}

/** The error `openExposeConnection` rejects with (a connection that opens fails the test). */
async function refusal(url: URL): Promise<Error> {
  try {
    const { socket } = await openExposeConnection(url);
    socket.destroy();
  } catch (e) {
    return e as Error;
  }
  throw new Error('the upgrade was accepted');
}

describe('openExposeConnection refused', () => {
  it('says the server\'s reason for a 503 (a share or a cap), not "is the expose service on"', async () => {
    const url = await answering(503, '3 expose control connections from your address already (its share of this server)');
    const e = await refusal(url);
    expect(e.message).toBe(`${url.href} answered HTTP 503: 3 expose control connections from your address already (its share of this server)`);
  });

  it('asks whether the expose service is on only for a 404', async () => {
    const url = await answering(404, '');
    const e = await refusal(url);
    expect(e.message).toBe(`${url.href} answered HTTP 404: is the expose service on (nat-server --expose-ports)?`);
  });

  it('reads at most 512 bytes of a reason', async () => {
    const url = await answering(503, 'x'.repeat(100_000));
    const e = await refusal(url);
    expect(e.message.length).toBeLessThan(url.href.length + 600);
  });
});
