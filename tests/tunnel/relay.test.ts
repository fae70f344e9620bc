/**
 * Peer links through a TURN relay, with the client<->TURN traffic passing a capturing proxy:
 * the relay (and anyone on its path) sees only ciphertext, since the plaintext marker never
 * appears in what crosses it; datagrams tampered with or replayed on the way are dropped and
 * counted while the transfer completes intact. (The relay-to-direct upgrade mid-transfer is in
 * netns.test.ts: on loopback the direct pair wins before the relay is even allocated.)
 */
import { createSocket, type Socket } from 'node:dgram';
import {
  type IceConnectionOptions,
  type LinkStream,
  type PeerLink,
  RendezvousClient,
  acceptPeers,
  connectPeer,
  generateIdentity,
  linkOverConnection,
  openLink,
  peerIdOf,
  type IceConnection,
} from '@nat/client';
import { type RendezvousServer, type StunServer, anonymousRelayTier, startRendezvous, startStunServer } from '@nat/server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { payloadWithMarker, sha256 } from './helpers.js';

const SECRET = 'tunnel-relay-secret';
/** TURN's anonymous tier relays only toward what the rendezvous recorded of each peer's sessions. */
// no bandwidth cap here: 8 MB cross the relay, and the counts below assume nothing else drops packets
const tier = anonymousRelayTier({ secrets: [SECRET], ownRelayIps: ['127.0.0.1'], bandwidth: 0, totalBandwidth: 0 });
const PROXY_IP = '127.0.0.7';
let stun: StunServer;
let rv: RendezvousServer;
let proxy: Socket;
const upstreams = new Map<string, Socket>();
/** Every datagram that crossed the proxy, both ways. */
const captured: Buffer[] = [];
/** Rewrites client->server datagrams (tampering, replaying); default passes them. `from` is the client's `ip:port`. */
let clientToServer: (d: Buffer, send: (d: Buffer) => void, from: string) => void = (d, send) => send(d);

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: { realm: 'relay.test', ...tier.turn(), peers: { allow: ['127.0.0.0/8'] } },
  });
  const turnPort = stun.listeners.find((l) => l.transport === 'udp')!.address.port;
  // a UDP proxy in front of the TURN server: one upstream socket per client, so the server sees distinct clients
  proxy = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => proxy.bind(0, PROXY_IP, r));
  proxy.on('message', (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let up = upstreams.get(key);
    if (up === undefined) {
      const u = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
      u.bind(0, '127.0.0.1');
      u.on('message', (back) => {
        captured.push(back);
        proxy.send(back, from.port, from.address);
      });
      upstreams.set(key, u);
      up = u;
    }
    captured.push(msg);
    const u = up;
    clientToServer(msg, (d) => u.send(d, turnPort, '127.0.0.1'), key);
  });
  const proxyPort = proxy.address().port;
  rv = await startRendezvous({ host: '127.0.0.1', port: 0, ...tier.rendezvous([`turn:${PROXY_IP}:${proxyPort}`], 300) });
});

afterAll(async () => {
  for (const u of upstreams.values()) u.close();
  proxy?.close();
  await rv?.close();
  await stun?.close();
});

async function linkPair(options: IceConnectionOptions) {
  const ia = generateIdentity();
  const ib = generateIdentity();
  const a = await RendezvousClient.connect({ url: rv.url, identity: ia });
  const b = await RendezvousClient.connect({ url: rv.url, identity: ib });
  const conns: IceConnection[] = [];
  const bLink = new Promise<PeerLink>((resolve, reject) => {
    acceptPeers(
      b,
      (c) => {
        conns.push(c);
        c.ready.then(() => linkOverConnection(c, { identity: ib })).then(resolve, reject);
      },
      options,
    );
  });
  const conn = await connectPeer(a, b.id, options);
  conns.push(conn);
  const aLink = await linkOverConnection(conn, { identity: ia });
  const cleanup = async (): Promise<void> => {
    aLink.close();
    (await bLink).close();
    await Promise.all(conns.map((c) => c.close()));
    await Promise.all([a.close(), b.close()]);
  };
  return { conn, aLink, bLink: await bLink, cleanup };
}

function receiveAll(link: PeerLink): Promise<Buffer> {
  return new Promise((resolve) =>
    link.once('stream', (s: LinkStream) => {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => resolve(Buffer.concat(chunks)));
    }),
  );
}

it('the relay sees only ciphertext; tampered and replayed datagrams are dropped and counted', async () => {
  const { conn, aLink, bLink, cleanup } = await linkPair({ hostCandidates: false });
  try {
    expect(conn.path?.path).toBe('relay');
    // Only the sender's data datagrams are touched: its client is the one that has sent the most
    // bytes once 1 MB has crossed (the receiver sends acknowledgements only), and data datagrams
    // are the ones above 600 bytes (consent checks and TURN refreshes are smaller). How many
    // there are depends on how many udx packets one datagram carries (16 KiB batches on this
    // loopback path, one packet a datagram on a 1500-byte MTU), so every PERIOD-th is tampered
    // with and the count expected follows from how many were seen.
    const PERIOD = 40;
    const bytesFrom = new Map<string, number>();
    let sender: string | undefined;
    let seen = 0;
    let seenBytes = 0;
    let tampered = 0;
    let replayed = 0;
    clientToServer = (d, send, from) => {
      if (sender === undefined) {
        const total = (bytesFrom.get(from) ?? 0) + d.length;
        bytesFrom.set(from, total);
        if (total > 1 << 20) sender = from;
      }
      if (from !== sender || d.length <= 600) return send(d);
      seen++;
      seenBytes += d.length;
      if (seen % PERIOD === 0) {
        const t = Buffer.from(d);
        t[t.length - 40]! ^= 0x20; // inside the sealed payload, before the tag
        tampered++;
        send(t);
      } else if (seen % PERIOD === PERIOD / 2) {
        replayed++;
        send(d);
        send(d);
      } else send(d);
    };
    const marker = Buffer.from('PLAINTEXT-MARKER-8d1f0c2a');
    const data = payloadWithMarker(8 << 20, marker);
    captured.length = 0;
    const got = receiveAll(bLink);
    const s = await aLink.openStream();
    s.end(data);
    const received = await got;
    expect(sha256(received)).toBe(sha256(data));
    clientToServer = (d, send) => send(d);
    const all = Buffer.concat(captured);
    expect(all.length).toBeGreaterThan(data.length); // the payload did cross the relay
    expect(all.indexOf(marker)).toBe(-1);
    expect(all.indexOf(data.subarray(100, 132))).toBe(-1);
    expect(seen).toBeGreaterThanOrEqual(PERIOD * 5); // so at least 5 were tampered with
    expect(bLink.stats.dropped.tampered).toBe(tampered);
    // every hop is on loopback (TURN on this host), so full udx packets travel batched
    expect(conn.pathIsLoopback).toBe(true);
    expect(seenBytes / seen).toBeGreaterThan(4096);
    expect(bLink.stats.dropped.replayed).toBeGreaterThanOrEqual(replayed);
  } finally {
    await cleanup();
  }
}, 60_000);

it('over a real ICE connection, a peer whose key is not the expected one is refused on both sides', async () => {
  const ia = generateIdentity();
  const ib = generateIdentity();
  const a = await RendezvousClient.connect({ url: rv.url, identity: ia });
  const b = await RendezvousClient.connect({ url: rv.url, identity: ib });
  const conns: IceConnection[] = [];
  try {
    // B answers, but its link expects a third key on the other end (as if A's id were someone else's)
    const bLink = new Promise<PeerLink>((resolve, reject) => {
      acceptPeers(
        b,
        (c) => {
          conns.push(c);
          openLink(c, { identity: ib, initiator: false, remotePeerId: peerIdOf(generateIdentity()), handshakeTimeoutMs: 3000 }).then(resolve, reject);
        },
        { hostAddresses: ['127.0.0.1'] },
      );
    });
    const conn = await connectPeer(a, b.id, { hostAddresses: ['127.0.0.1'] });
    conns.push(conn);
    const aLink = linkOverConnection(conn, { identity: ia, handshakeTimeoutMs: 3000 });
    await expect(bLink).rejects.toMatchObject({ code: 'REFUSED' });
    // A never gets the confirmation, so it never reports a link that B refused
    await expect(aLink).rejects.toMatchObject({ code: 'HANDSHAKE_TIMEOUT' });
  } finally {
    await Promise.all(conns.map((c) => c.close()));
    await Promise.all([a.close(), b.close()]);
  }
}, 30_000);
