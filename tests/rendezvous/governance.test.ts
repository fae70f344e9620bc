/**
 * Issue 14, the rendezvous listener on the open internet: a WebSocket client that floods ping
 * frames (which the `ws` library would answer with a pong each, whatever the server's own message
 * rate limit) and reads nothing does not grow the server; another client is served meanwhile. The
 * server is a nat-server child process, whose memory is its RSS. The flood is bounded (4 s). (The
 * bound is ws's own: it cuts a connection with too many pongs pending; this guards it.)
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { RendezvousClient, generateIdentity } from '@nat/client';
import { afterEach, expect, it } from 'vitest';
import { type ServerChild, startServerChild } from '../expose/raw.js';
import { rawWebSocket } from './raw.js';

const MB = 1024 * 1024;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 4096 masked WebSocket ping frames of 125 bytes each (what a client sends). */
function pingFrames(): Buffer {
  const one = Buffer.alloc(2 + 4 + 125);
  one[0] = 0x89; // FIN + ping
  one[1] = 0x80 | 125; // masked, 125 bytes
  randomBytes(4).copy(one, 2);
  return Buffer.concat(Array.from({ length: 4096 }, () => one));
}

/** Writes ping frames for `ms` (at most `maxBytes`), honouring the socket's own backpressure; resolves with the bytes written. */
function flood(socket: Socket, ms: number, maxBytes: number): Promise<number> {
  const chunk = pingFrames();
  return new Promise((resolve) => {
    let written = 0;
    const end = Date.now() + ms;
    const finish = (): void => resolve(written);
    socket.once('close', finish);
    const pump = (): void => {
      while (Date.now() < end && written < maxBytes && !socket.destroyed) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          const t = setTimeout(pump, Math.max(0, end - Date.now()));
          socket.once('drain', () => {
            clearTimeout(t);
            pump();
          });
          return;
        }
        if ((written / chunk.length) % 16 === 0) return void setImmediate(pump);
      }
      finish();
    };
    pump();
  });
}

it('a WebSocket client flooding ping frames and reading nothing does not grow the server (under 50 MB); another client registers meanwhile', async () => {
  const server: ServerChild = await startServerChild([
    ...['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0'],
    ...['--expose-ports', '20990-20991', '--user', 'alice:pw', '--log-level', 'silent'],
  ]);
  cleanups.push(() => server.stop());
  const baseline = server.rss();
  const s = await rawWebSocket(server.url, '127.0.18.2');
  cleanups.push(() => s.destroy());
  s.on('error', () => {});
  s.pause(); // reads nothing
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, server.rss() - baseline)), 50);
  cleanups.push(() => clearInterval(sample));
  const flooding = flood(s, 4000, 400 * MB);
  // another client registers while the flood runs
  await new Promise((r) => setTimeout(r, 1500));
  const other = await RendezvousClient.connect({ url: server.url, identity: generateIdentity() });
  cleanups.push(() => other.close());
  expect(other.id).toMatch(/^[a-z2-7]{32}$/);
  const written = await flooding;
  peak = Math.max(peak, server.rss() - baseline);
  clearInterval(sample);
  expect(written).toBeGreaterThan(0);
  expect(peak).toBeLessThan(50 * MB);
}, 60_000);
