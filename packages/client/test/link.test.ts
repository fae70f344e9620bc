import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { generateIdentity, peerIdOf } from '../src/rendezvous/identity.js';
import { type LinkPath, type PeerLink, PacketOpener, PacketSealer, PeerLinkError, REKEY_INTERVAL, openLink } from '../src/link/index.js';

/**
 * Two in-memory datagram paths joined back to back; `tap` sees (and may change, drop or repeat)
 * every datagram in flight, the way an on-path attacker or a relay would.
 */
class MemoryPath extends EventEmitter implements LinkPath {
  peer: MemoryPath | undefined;
  tap: ((d: Uint8Array, deliver: (d: Uint8Array) => void) => void) | undefined;
  sent = 0;
  send(data: Uint8Array): boolean {
    const peer = this.peer;
    if (peer === undefined) return false;
    this.sent++;
    const copy = Uint8Array.from(data);
    const deliver = (d: Uint8Array): void => void setImmediate(() => peer.emit('data', d));
    if (this.tap === undefined) deliver(copy);
    else this.tap(copy, deliver);
    return true;
  }
}

function pathPair(): [MemoryPath, MemoryPath] {
  const a = new MemoryPath();
  const b = new MemoryPath();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

const links: PeerLink[] = [];
afterEach(() => {
  for (const l of links.splice(0)) l.close();
});

async function linkPair(pa: LinkPath, pb: LinkPath, opts: { allow?: (id: string) => boolean; batchBytes?: () => number } = {}) {
  const ia = generateIdentity();
  const ib = generateIdentity();
  const both = opts.batchBytes === undefined ? {} : { batchBytes: opts.batchBytes };
  const [a, b] = await Promise.all([
    openLink(pa, { identity: ia, initiator: true, remotePeerId: peerIdOf(ib), ...both }),
    openLink(pb, { identity: ib, initiator: false, remotePeerId: peerIdOf(ia), ...opts }),
  ]);
  links.push(a, b);
  return { a, b, ia, ib };
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('packet protection', () => {
  it('opens what it sealed, once, and refuses altered, replayed and too-old packets', () => {
    const key = randomBytes(32);
    const sealer = new PacketSealer(key);
    const opener = new PacketOpener(key);
    const p0 = sealer.seal(Buffer.from('hello'), 0);
    const p1 = sealer.seal(Buffer.from('world'), 0);
    expect(opener.open(p1)).toEqual(Buffer.from('world'));
    expect(opener.open(p0)).toEqual(Buffer.from('hello')); // reordered is fine
    expect(opener.open(p0)).toBe('replayed');
    const bad = Buffer.from(p1);
    bad[bad.length - 1]! ^= 1;
    expect(new PacketOpener(key).open(bad)).toBe('tampered');
    expect(opener.open(Buffer.alloc(5))).toBe('malformed');
    for (let i = 0; i < 5000; i++) sealer.seal(Buffer.alloc(0), 0);
    expect(opener.open(sealer.seal(Buffer.from('x'), 0))).toEqual(Buffer.from('x'));
    expect(opener.open(p0)).toBe('replayed'); // older than the window
  });

  it('rotates keys with Noise Rekey() and the receiver follows from the counter alone', () => {
    const key = randomBytes(32);
    const opener = new PacketOpener(key);
    const first = new PacketSealer(key).seal(Buffer.from('a'), 0);
    expect(opener.open(first)).toEqual(Buffer.from('a'));
    const later = new PacketSealer(key, REKEY_INTERVAL + 1).seal(Buffer.from('b'), 0);
    expect(opener.open(later)).toEqual(Buffer.from('b'));
    // the same counter under the un-rotated key does not open
    const stale = new PacketSealer(key).seal(Buffer.from('b'), 0);
    stale.writeBigUInt64BE(BigInt(REKEY_INTERVAL + 2), 0);
    expect(opener.open(stale)).toBe('tampered');
    // a packet of the next epoch, sealed under the old key, does not open
    const forged = new PacketSealer(key);
    const f = forged.seal(Buffer.from('c'), 0);
    f.writeBigUInt64BE(BigInt(REKEY_INTERVAL + 5), 0);
    expect(opener.open(f)).toBe('tampered');
    expect(opener.open(first)).toBe('replayed');
  });

  it('finding 9a: a forged datagram with a large counter changes nothing: genuine packets still open', () => {
    const key = randomBytes(32);
    const sealer = new PacketSealer(key);
    const opener = new PacketOpener(key);
    expect(opener.open(sealer.seal(Buffer.from('before'), 0))).toEqual(Buffer.from('before'));
    // forgeries an off-path attacker can send: counters 1 to 4 epochs ahead and far ahead, random ciphertext
    for (const counter of [REKEY_INTERVAL, 3 * REKEY_INTERVAL + 7, 4 * REKEY_INTERVAL + 5, 2 ** 40, 2 ** 53 - 1]) {
      const forged = randomBytes(8 + 30);
      forged.writeBigUInt64BE(BigInt(counter), 0);
      expect(opener.open(forged)).toBe('tampered');
    }
    // the sender is still in epoch 0, and its packets open, in order and reordered
    const p1 = sealer.seal(Buffer.from('after-1'), 0);
    const p2 = sealer.seal(Buffer.from('after-2'), 0);
    expect(opener.open(p2)).toEqual(Buffer.from('after-2'));
    expect(opener.open(p1)).toEqual(Buffer.from('after-1'));
    // and a genuine rotation afterwards is still followed
    const later = new PacketSealer(key, 2 * REKEY_INTERVAL + 3).seal(Buffer.from('epoch 2'), 0);
    expect(opener.open(later)).toEqual(Buffer.from('epoch 2'));
  });
});

describe('peer link over an in-memory path', () => {
  it('authenticates both keys and carries many streams both ways, half-closing cleanly', async () => {
    const [pa, pb] = pathPair();
    const { a, b, ia, ib } = await linkPair(pa, pb);
    expect(a.remotePeerId).toBe(peerIdOf(ib));
    expect(b.remotePeerId).toBe(peerIdOf(ia));
    b.on('stream', (s) => {
      // echo, then half-close after the peer's end
      s.pipe(s);
    });
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(10_000 + i * 1000));
    const got = await Promise.all(
      payloads.map(async (p) => {
        const s = await a.openStream();
        s.end(p);
        return readAll(s);
      }),
    );
    got.forEach((g, i) => expect(g.equals(payloads[i]!)).toBe(true));
  });

  it('moves 8 MB intact while 3% of datagrams are tampered with and 3% replayed, counting every one', async () => {
    const [pa, pb] = pathPair();
    const { a, b } = await linkPair(pa, pb);
    let tampered = 0;
    let replayed = 0;
    let n = 0;
    pa.tap = (d, deliver) => {
      n++;
      if (d[0] === 0x04 && n % 33 === 0) {
        const t = Uint8Array.from(d);
        t[t.length - 5]! ^= 0x40;
        tampered++;
        deliver(t);
        deliver(d);
      } else if (d[0] === 0x04 && n % 33 === 16) {
        replayed++;
        deliver(d);
        deliver(d);
      } else deliver(d);
    };
    const data = randomBytes(8 << 20);
    const received = new Promise<Buffer>((resolve) => b.once('stream', (s) => void readAll(s).then(resolve)));
    const s = await a.openStream();
    s.end(data);
    const got = await received;
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(b.stats.dropped.tampered).toBe(tampered);
    expect(b.stats.dropped.replayed).toBe(replayed);
    expect(tampered).toBeGreaterThan(10);
  });

  it('finding 9a: one forged datagram with a huge counter does not stop the genuine traffic of a link', async () => {
    const [pa, pb] = pathPair();
    const { a, b } = await linkPair(pa, pb);
    b.on('stream', (s) => s.pipe(s));
    const echo = async (data: Buffer): Promise<Buffer> => {
      const s = await a.openStream();
      s.end(data);
      return readAll(s);
    };
    const first = randomBytes(20_000);
    expect((await echo(first)).equals(first)).toBe(true);
    // an attacker who knows the path sends b one sealed-looking datagram, 3 epochs ahead
    const forged = Buffer.concat([Buffer.from([0x04]), randomBytes(8 + 40)]);
    forged.writeBigUInt64BE(BigInt(3 * REKEY_INTERVAL + 1), 1);
    const tamperedBefore = b.stats.dropped.tampered;
    pb.emit('data', forged);
    await new Promise((r) => setImmediate(r));
    expect(b.stats.dropped.tampered).toBe(tamperedBefore + 1);
    const second = randomBytes(200_000);
    expect((await echo(second)).equals(second)).toBe(true);
    expect(b.stats.dropped.tampered).toBe(tamperedBefore + 1);
  });

  /** Sends `bytes` from a to b on one stream; counts the datagrams each way and the largest. */
  async function oneWay(bytes: number, batchBytes?: () => number) {
    const [pa, pb] = pathPair();
    const { a, b } = await linkPair(pa, pb, batchBytes === undefined ? {} : { batchBytes });
    const largest = { a: 0, b: 0 };
    pa.tap = (d, deliver) => void ((largest.a = Math.max(largest.a, d.length)), deliver(d));
    pb.tap = (d, deliver) => void ((largest.b = Math.max(largest.b, d.length)), deliver(d));
    const data = randomBytes(bytes);
    const received = new Promise<Buffer>((resolve) => b.once('stream', (s) => void readAll(s).then(resolve)));
    const s = await a.openStream();
    const [aSent, bSent] = [pa.sent, pb.sent];
    s.end(data);
    expect((await received).equals(data)).toBe(true);
    return { fromA: pa.sent - aSent, fromB: pb.sent - bSent, largest };
  }

  it("carries udx's acknowledgements batched: the receiver sends far fewer datagrams than it gets", async () => {
    const { fromA, fromB, largest } = await oneWay(4 << 20);
    // udx acknowledges every data packet; one sealed datagram carries many of those acks
    expect(fromA).toBeGreaterThan((4 << 20) / 1500);
    expect(fromB).toBeLessThan(fromA / 3);
    expect(largest.b).toBeLessThanOrEqual(1 + 8 + 1 + 512 + 16); // SEALED, counter, inner type, batch, tag
  });

  it('carries full data packets together where batchBytes allows (a loopback path), never above it', async () => {
    const { fromA, largest } = await oneWay(4 << 20, () => 16 * 1024);
    expect(fromA).toBeLessThan((4 << 20) / 1500 / 3); // several udx packets a datagram
    expect(largest.a).toBeGreaterThan(3000);
    expect(largest.a).toBeLessThanOrEqual(1 + 8 + 1 + 16 * 1024 + 16);
  });

  it('refuses a peer whose key is not the expected peer id, on both sides', async () => {
    const [pa, pb] = pathPair();
    const ia = generateIdentity();
    const ib = generateIdentity();
    const impostor = generateIdentity();
    const a = openLink(pa, { identity: ia, initiator: true, remotePeerId: peerIdOf(ib), handshakeTimeoutMs: 800 });
    const b = openLink(pb, { identity: impostor, initiator: false, remotePeerId: peerIdOf(ia), handshakeTimeoutMs: 800 });
    await expect(a).rejects.toMatchObject({ code: 'REFUSED' });
    await expect(b).rejects.toBeInstanceOf(PeerLinkError);
  });

  it('refuses an initiator the allow list does not name', async () => {
    const [pa, pb] = pathPair();
    const ia = generateIdentity();
    const ib = generateIdentity();
    const a = openLink(pa, { identity: ia, initiator: true, remotePeerId: peerIdOf(ib), handshakeTimeoutMs: 1000 });
    const b = openLink(pb, { identity: ib, initiator: false, remotePeerId: peerIdOf(ia), allow: () => false });
    await expect(b).rejects.toMatchObject({ code: 'REFUSED' });
    // the initiator is never confirmed: it does not report a link the responder refused
    await expect(a).rejects.toMatchObject({ code: 'HANDSHAKE_TIMEOUT' });
  });

  it('survives a path change mid-transfer (the datagrams go another way, some lost in the switch)', async () => {
    const [pa, pb] = pathPair();
    const { a, b } = await linkPair(pa, pb);
    const data = randomBytes(4 << 20);
    const received = new Promise<Buffer>((resolve) => b.once('stream', (s) => void readAll(s).then(resolve)));
    const s = await a.openStream();
    let switched = false;
    pa.tap = (d, deliver) => {
      // after 400 datagrams, 50 are lost (the old pair dies), then a "new pair" delays by 5 ms
      if (pa.sent > 400 && pa.sent <= 450) return;
      if (pa.sent > 450) {
        switched = true;
        setTimeout(() => deliver(d), 5);
      } else deliver(d);
    };
    s.end(data);
    expect((await received).equals(data)).toBe(true);
    expect(switched).toBe(true);
  });

  it('keeps every datagram within a 1280-byte IPv6 packet off loopback: larger udx packets travel in pieces', async () => {
    const [pa, pb] = pathPair();
    let largest = 0;
    let pieces = 0;
    pa.tap = (d, deliver) => {
      largest = Math.max(largest, d.length);
      if (d.length > 1100) pieces++;
      deliver(d);
    };
    const { a, b } = await linkPair(pa, pb);
    const data = randomBytes(2 << 20);
    const received = new Promise<Buffer>((resolve) => b.once('stream', (s) => void readAll(s).then(resolve)));
    (await a.openStream()).end(data);
    expect((await received).equals(data)).toBe(true);
    // sealed piece: 1180 + 4 (piece header) + 26 (type, counter, inner type, tag); + 48 of IPv6/UDP = 1258
    expect(largest).toBeLessThanOrEqual(1210);
    expect(pieces).toBeGreaterThan(500);
  });

  it('closes the streams with CLOSED when the peer closes the link', async () => {
    const [pa, pb] = pathPair();
    const { a, b } = await linkPair(pa, pb);
    b.on('stream', (s) => s.on('error', () => {}));
    const s = await a.openStream();
    const closed = new Promise<unknown>((resolve) => a.once('close', resolve));
    const errored = new Promise<unknown>((resolve) => s.once('error', resolve));
    b.close();
    expect(await closed).toMatchObject({ code: 'CLOSED' });
    expect(await errored).toMatchObject({ code: 'CLOSED' });
  });
});
