/**
 * The link's direct route: udx streams on a real udx-native "host" socket of each side, sending
 * to each other through a UDP middlebox on 127.0.0.1 (node:dgram) that counts, and may alter,
 * what crosses it; the handshake, keepalives and the shim route go over an in-memory path. The
 * path says which route is current (`udxRoute`) and when it changes (`path`), as an
 * IceConnection does.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { type LinkPath, type LinkStream, type PeerLink, type UdxRoute, openLink } from '../src/link/index.js';
import { type UdxSocket, udx } from '../src/link/native.js';
import { generateIdentity, peerIdOf } from '../src/rendezvous/identity.js';

class RoutedPath extends EventEmitter implements LinkPath {
  peer: RoutedPath | undefined;
  sent = 0;
  bytesSent = 0;
  readonly udxHome: UdxSocket;
  direct: UdxRoute | undefined;
  constructor(home: UdxSocket) {
    super();
    this.udxHome = home;
  }
  get udxRoute(): UdxRoute | undefined {
    return this.direct;
  }
  /** Switches the route, as a newly selected pair does. */
  use(route: UdxRoute | undefined): void {
    this.direct = route;
    this.emit('path');
  }
  send(data: Uint8Array): boolean {
    const peer = this.peer;
    if (peer === undefined) return false;
    this.sent++;
    this.bytesSent += data.length;
    const copy = Uint8Array.from(data);
    setImmediate(() => peer.emit('data', copy));
    return true;
  }
}

interface Middlebox {
  readonly socket: Socket;
  readonly port: number;
  /** Datagrams and bytes forwarded from a's home to b's, and back. */
  readonly counts: { ab: number; ba: number; abBytes: number; baBytes: number };
  /** Sees each a->b datagram (a copy) before it is forwarded; return undefined to drop it. */
  tapAb: ((d: Buffer) => Buffer | undefined) | undefined;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function home(): UdxSocket {
  const s = udx().createSocket();
  s.bind(0, '127.0.0.1');
  s.on('error', () => {});
  // not awaited: a stream destroyed while the peer's is gone takes libudx about 13 s to give up, and the socket closes after it
  cleanups.push(() => void s.close());
  return s;
}

/** A UDP forwarder between two sockets' ports: each side's direct route points at it. */
async function middlebox(a: UdxSocket, b: UdxSocket): Promise<Middlebox> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  cleanups.push(() => socket.close());
  const aPort = a.address().port;
  const bPort = b.address().port;
  const box: Middlebox = { socket, port: socket.address().port, counts: { ab: 0, ba: 0, abBytes: 0, baBytes: 0 }, tapAb: undefined };
  socket.on('message', (msg, from) => {
    if (from.port === aPort) {
      box.counts.ab++;
      box.counts.abBytes += msg.length;
      const out = box.tapAb === undefined ? msg : box.tapAb(Buffer.from(msg));
      if (out !== undefined) socket.send(out, bPort, '127.0.0.1');
    } else if (from.port === bPort) {
      box.counts.ba++;
      box.counts.baBytes += msg.length;
      socket.send(msg, aPort, '127.0.0.1');
    }
  });
  return box;
}

async function setup(
  direct: boolean,
): Promise<{ a: PeerLink; b: PeerLink; pa: RoutedPath; pb: RoutedPath; box: Middlebox; routeA: UdxRoute; routeB: UdxRoute }> {
  const ha = home();
  const hb = home();
  const box = await middlebox(ha, hb);
  const routeA: UdxRoute = { socket: ha, host: '127.0.0.1', port: box.port };
  const routeB: UdxRoute = { socket: hb, host: '127.0.0.1', port: box.port };
  const pa = new RoutedPath(ha);
  const pb = new RoutedPath(hb);
  pa.peer = pb;
  pb.peer = pa;
  if (direct) {
    pa.direct = routeA;
    pb.direct = routeB;
  }
  const ia = generateIdentity();
  const ib = generateIdentity();
  const [a, b] = await Promise.all([
    openLink(pa, { identity: ia, initiator: true, remotePeerId: peerIdOf(ib) }),
    openLink(pb, { identity: ib, initiator: false, remotePeerId: peerIdOf(ia) }),
  ]);
  cleanups.push(
    () => a.close(),
    () => b.close(),
  );
  return { a, b, pa, pb, box, routeA, routeB };
}

async function until(what: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** a opens a stream, writes `data` (in 64 KiB writes, calling `during` after each), b echoes it all back. */
async function echo(a: PeerLink, b: PeerLink, data: Buffer, during?: (written: number) => void): Promise<Buffer> {
  b.once('stream', (s: LinkStream) => s.pipe(s));
  const s = await a.openStream();
  const back = readAll(s);
  for (let at = 0; at < data.length; at += 65536) {
    if (!s.write(data.subarray(at, at + 65536))) await new Promise((r) => s.once('drain', r));
    during?.(at);
  }
  s.end();
  return back;
}

describe('peer link on a direct udx route', () => {
  it('runs its streams on the route: 16 MB echoed intact, with no stream byte sealed onto the path', async () => {
    const { a, b, pa, pb, box } = await setup(true);
    // each side goes direct once the peer said its streams take direct packets too
    await until(() => a.stats.route === 'direct' && b.stats.route === 'direct');
    const data = randomBytes(16 << 20);
    const back = await echo(a, b, data);
    expect(sha(back)).toBe(sha(data));
    // both directions crossed the middlebox (data one way, the echo the other)...
    expect(box.counts.abBytes).toBeGreaterThan(16 << 20);
    expect(box.counts.baBytes).toBeGreaterThan(16 << 20);
    // ...and the in-memory path carried only the handshake and the link's own messages
    expect(pa.bytesSent + pb.bytesSent).toBeLessThan(4096);
  });

  it('moves open streams shim -> direct -> shim mid-transfer as the pairs change on each side at different times, losing nothing', async () => {
    const { a, b, pa, pb, box, routeA, routeB } = await setup(false);
    expect(a.stats.route).toBe('shim');
    const data = randomBytes(24 << 20);
    const moves: Record<number, () => void> = {
      [4 << 20]: () => pa.use(routeA), // a's pair is direct; b's is not yet: both stay on the shim
      [5 << 20]: () => pb.use(routeB), // both direct: both move
      [14 << 20]: () => pb.use(undefined), // b's pair relayed again: both back to the shim
      [15 << 20]: () => pa.use(undefined),
    };
    let viaShimWhileDirect = 0;
    const back = await echo(a, b, data, (at) => {
      moves[at]?.();
      if (at === 10 << 20) viaShimWhileDirect = pa.bytesSent + pb.bytesSent;
    });
    expect(sha(back)).toBe(sha(data));
    expect(a.stats.routeChanges).toBe(2);
    expect(b.stats.routeChanges).toBe(2);
    expect(a.stats.route).toBe('shim');
    expect(b.stats.route).toBe('shim');
    // the middle of the transfer went direct, the start and the end through the shim
    expect(box.counts.abBytes).toBeGreaterThan(4 << 20);
    expect(pa.bytesSent + pb.bytesSent).toBeGreaterThan(viaShimWhileDirect + (4 << 20));
  });

  it('an altered datagram on the direct route destroys the stream with TAMPERED, counted, and no altered byte is delivered', async () => {
    const { a, b, box } = await setup(true);
    await until(() => a.stats.route === 'direct' && b.stats.route === 'direct');
    const data = randomBytes(4 << 20);
    let big = 0;
    box.tapAb = (d) => {
      // a udx data packet (udx header 20 bytes, then stream bytes): alter one byte of the 300th
      if (d.length > 1000 && ++big === 300) d[d.length - 100]! ^= 0x01;
      return d;
    };
    const got: Buffer[] = [];
    const failed = new Promise<Error>((resolve) => {
      b.once('stream', (s: LinkStream) => {
        s.on('data', (c: Buffer) => got.push(c));
        s.on('error', resolve);
      });
    });
    const s = await a.openStream();
    s.on('error', () => {});
    s.end(data);
    const error = await failed;
    expect(error).toMatchObject({ name: 'PeerLinkError', code: 'TAMPERED' });
    expect(b.stats.streamsTampered).toBe(1);
    const delivered = Buffer.concat(got);
    expect(delivered.length).toBeLessThan(data.length);
    expect(delivered.equals(data.subarray(0, delivered.length))).toBe(true);
    // the link itself survives: a new stream works
    const again = randomBytes(1 << 20);
    box.tapAb = undefined;
    expect(sha(await echo(a, b, again))).toBe(sha(again));
  });
});
