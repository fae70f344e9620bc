/**
 * Stream resumption on the direct route (link/channel.ts): each side's udx streams run on a real
 * udx-native "host" socket and reach the peer through a UDP forwarder on 127.0.0.1; the
 * handshake and the link's own messages go over an in-memory path. Mid-transfer the forwarder
 * the streams use dies for good and both sides' routes switch to a second one, as when a peer
 * moves to a new address: libudx resends the packets in flight only to the dead forwarder, so
 * without resumption the stream stalls until udx gives up.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { type LinkPath, type LinkStream, type UdxRoute, openLink } from '../src/link/index.js';
import { type UdxSocket, udx } from '../src/link/native.js';
import { generateIdentity, peerIdOf } from '../src/rendezvous/identity.js';

class RoutedPath extends EventEmitter implements LinkPath {
  peer: RoutedPath | undefined;
  readonly udxHome: UdxSocket;
  direct: UdxRoute | undefined;
  constructor(home: UdxSocket, direct: UdxRoute) {
    super();
    this.udxHome = home;
    this.direct = direct;
  }
  get udxRoute(): UdxRoute | undefined {
    return this.direct;
  }
  use(route: UdxRoute): void {
    this.direct = route;
    this.emit('path');
  }
  send(data: Uint8Array): boolean {
    const peer = this.peer;
    if (peer === undefined) return false;
    const copy = Uint8Array.from(data);
    setImmediate(() => peer.emit('data', copy));
    return true;
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function home(): UdxSocket {
  const s = udx().createSocket();
  s.bind(0, '127.0.0.1');
  s.on('error', () => {});
  cleanups.push(() => void s.close());
  return s;
}

/** A UDP forwarder between two sockets' ports; once `dead`, it drops everything. */
async function forwarder(a: UdxSocket, b: UdxSocket): Promise<{ port: number; dead: boolean; dropped: number }> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  cleanups.push(() => socket.close());
  const state = { port: socket.address().port, dead: false, dropped: 0 };
  const aPort = a.address().port;
  const bPort = b.address().port;
  socket.on('message', (msg, from) => {
    if (state.dead) {
      state.dropped++;
      return;
    }
    if (from.port === aPort) socket.send(msg, bPort, '127.0.0.1');
    else if (from.port === bPort) socket.send(msg, aPort, '127.0.0.1');
  });
  return state;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('peer link stream resumption', () => {
  it('a transfer on the direct route survives its route dying with packets in flight: the streams resume on a new udx pair, every byte once', async () => {
    const ha = home();
    const hb = home();
    const first = await forwarder(ha, hb);
    const second = await forwarder(ha, hb);
    const pa = new RoutedPath(ha, { socket: ha, host: '127.0.0.1', port: first.port });
    const pb = new RoutedPath(hb, { socket: hb, host: '127.0.0.1', port: first.port });
    pa.peer = pb;
    pb.peer = pa;
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
    await until(() => a.stats.route === 'direct' && b.stats.route === 'direct');

    const data = randomBytes(24 << 20);
    const received: Buffer[] = [];
    const got = new Promise<Buffer>((resolve, reject) => {
      b.once('stream', (s: LinkStream) => {
        s.on('data', (c: Buffer) => received.push(c));
        s.on('end', () => resolve(Buffer.concat(received)));
        s.on('error', reject);
      });
    });
    const s = await a.openStream();
    const failed = new Promise<never>((_, reject) => s.on('error', reject));
    let moved = false;
    for (let at = 0; at < data.length; at += 65536) {
      if (!s.write(data.subarray(at, at + 65536))) await Promise.race([new Promise((r) => s.once('drain', r)), failed]);
      if (!moved && at >= 8 << 20) {
        // the route the streams use dies (what is in flight and sent from now on is lost), and
        // 200 ms later both pairs switch to another route, as after an ICE restart
        moved = true;
        first.dead = true;
        setTimeout(() => {
          pa.use({ socket: ha, host: '127.0.0.1', port: second.port });
          pb.use({ socket: hb, host: '127.0.0.1', port: second.port });
        }, 200);
      }
    }
    s.end();
    const back = await Promise.race([got, failed]);
    expect(sha(back)).toBe(sha(data));
    expect(back.length).toBe(data.length);
    // the dead route took packets that udx would only ever resend there
    expect(first.dropped).toBeGreaterThan(0);
    expect(a.stats.streamsResumed + b.stats.streamsResumed).toBeGreaterThan(0);
    expect(a.stats.route).toBe('direct');
    expect(b.stats.route).toBe('direct');
  }, 60_000);
});
