/**
 * The load generator of `pnpm bench:cluster`: a child process (forked by run.ts, driven over the
 * IPC channel) holding a share of the simulated peers. Each peer is one WebSocket to its node's
 * rendezvous service, registered for real (challenge, Ed25519 signature of the signing payload of
 * @nat/protocol), from its own loopback source address (127.G.X.Y, at most --per-source peers per
 * address) so that the nodes' per-source shares stay at their defaults. No ICE: an offer is one
 * relayed `offer` message with three candidate lines, as a real peer's first offer looks.
 *
 * Offers go between random pairs of this process's peers that sit on different nodes (on one
 * node: any two peers), so that the sending and the delivery time are read from one clock
 * (performance.now()); latency = delivered at the target's socket - handed to the sender's.
 *
 * IPC, parent -> child: `{ type: 'register', urls, peers, generator, concurrency }`,
 * `{ type: 'offers', rate, duration, drainMs }`, `{ type: 'close' }`; child -> parent:
 * `{ type: 'registered', ... }`, `{ type: 'offered', ... }`, `{ type: 'failed', message }`.
 */
import { type KeyObject, generateKeyPairSync, sign } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  type OfferMessage,
  SIGNALLING_VERSION,
  encodeSignallingMessage,
  peerIdFromPublicKey,
  registerSigningPayload,
} from '../../packages/protocol/dist/index.js';
import { ROOT, parseBenchArgs } from '../harness.js';

interface Socket {
  readonly readyState: number;
  send(data: string): void;
  terminate(): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'close', listener: (code: number) => void): void;
}
type SocketClass = new (url: string, options: { localAddress: string; perMessageDeflate: false; maxPayload: number; handshakeTimeout: number }) => Socket;
// `ws` is a dependency of @nat/client (the same one RendezvousClient uses); the root has none.
const WebSocket = createRequire(join(ROOT, 'packages/client/package.json'))('ws') as SocketClass;
const OPEN = 1;

const USAGE = `usage: tsx bench/cluster/peers.ts [--per-source N]   (forked by bench/cluster/run.ts, driven over IPC)
  --per-source N     peers per loopback source address (default 32; the nodes allow 64)
  -h, --help`;

const args = parseBenchArgs('cluster/peers', USAGE, { 'per-source': { type: 'string', default: '32' } });
const PER_SOURCE = Number(args['per-source']);

export interface RegisterCommand {
  type: 'register';
  /** The nodes' rendezvous URLs; peer i of this generator registers at urls[i % urls.length]. */
  urls: string[];
  peers: number;
  /** This generator's number (its source addresses are 127.(100 + generator).X.Y). */
  generator: number;
  /** Registrations in flight at once. */
  concurrency: number;
}
export interface OffersCommand {
  type: 'offers';
  /** Offers per second from this generator. */
  rate: number;
  /** Seconds of offering. */
  duration: number;
  /** After the last offer, wait at most this long for the ones in flight. */
  drainMs: number;
}
export interface RegisteredReport {
  type: 'registered';
  registered: number;
  failed: number;
  firstError: string | undefined;
  ms: number;
}
export interface OfferedReport {
  type: 'offered';
  sent: number;
  delivered: number;
  /** Answers of the server to an offer (`peer-offline`, `rate-limited`...), by code. */
  errors: Record<string, number>;
  /** Offers neither delivered nor answered when the drain ended. */
  lost: number;
  /** Latency of every delivered offer, ms. */
  latencies: number[];
  /** Seconds the offering took (the schedule's own lateness included). */
  seconds: number;
  /** Peers whose connection closed during the run. */
  closed: number;
}

interface Peer {
  readonly id: string;
  readonly node: number;
  ws: Socket | undefined;
}

const send = (m: RegisteredReport | OfferedReport | { type: 'failed'; message: string }): void => void process.send!(m);
/** Peer i of `total` dials from source address i mod ceil(total / PER_SOURCE): neighbours (registering at once) come from different addresses. */
const sourceAddress = (generator: number, i: number, total: number): string => {
  const s = i % Math.ceil(total / PER_SOURCE);
  return `127.${100 + generator}.${Math.floor(s / 250)}.${1 + (s % 250)}`;
};

const peers: Peer[] = [];
const sentAt = new Map<string, number>();
let onInbound: (m: { type: string; ref?: string; code?: string; sessionId?: string }, peer: Peer) => void = () => {};
let closedCount = 0;

/** Opens peer i's connection and registers it; resolves when `registered` came, rejects otherwise. */
function register(url: string, i: number, total: number, node: number, generator: number): Promise<Peer> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519') as { publicKey: KeyObject; privateKey: KeyObject };
  const raw = publicKey.export({ format: 'jwk' }).x!;
  const id = peerIdFromPublicKey(Buffer.from(raw, 'base64url'));
  const peer: Peer = { id, node, ws: undefined };
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress: sourceAddress(generator, i, total), perMessageDeflate: false, maxPayload: 65536, handshakeTimeout: 30_000 });
    let registered = false;
    const timer = setTimeout(() => fail(new Error('not registered within 30 s')), 30_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    ws.on('error', (e) => (registered ? undefined : fail(e)));
    ws.on('close', (code) => {
      if (registered) closedCount++;
      else fail(new Error(`closed before registering (${code})`));
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString('utf8')) as { type: string; nonce?: string; peerId?: string; code?: string; message?: string };
      if (registered) return onInbound(m, peer);
      if (m.type === 'challenge') {
        const signature = sign(null, registerSigningPayload(m.nonce!, id), privateKey).toString('base64url');
        ws.send(encodeSignallingMessage({ v: SIGNALLING_VERSION, type: 'register', id: 'register', publicKey: raw, signature }));
      } else if (m.type === 'registered' && m.peerId === id) {
        registered = true;
        clearTimeout(timer);
        peer.ws = ws;
        resolve(peer);
      } else if (m.type === 'error') fail(new Error(`${m.code}: ${m.message}`));
    });
  });
}

async function registerAll(c: RegisterCommand): Promise<RegisteredReport> {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (next < c.peers) {
      const i = next++;
      const node = i % c.urls.length;
      try {
        peers.push(await register(c.urls[node]!, i, c.peers, node, c.generator));
      } catch (e) {
        failed++;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.peers) }, worker));
  return { type: 'registered', registered: peers.length, failed, firstError, ms: performance.now() - t0 };
}

const CANDIDATES = [
  'candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host',
  'candidate:2 1 udp 1686052607 198.51.100.7 61000 typ srflx raddr 192.0.2.10 rport 50000',
  'candidate:3 1 udp 41885439 203.0.113.5 49200 typ relay raddr 198.51.100.7 rport 61000',
];

/** The offer text (checked against the protocol's schema once, then built by hand: the generator's own cost is kept low). */
function offerText(n: number, from: string, to: string): string {
  const m: OfferMessage = {
    v: SIGNALLING_VERSION,
    type: 'offer',
    id: `o${n}`,
    from,
    to,
    sessionId: `session-${n}`,
    ufrag: 'ufr4',
    pwd: 'benchmarkpasswordforice',
    candidates: CANDIDATES,
  };
  if (n === 0) encodeSignallingMessage(m);
  return JSON.stringify(m);
}

/** Two different peers, on different nodes when there are several. */
function pickPair(byNode: Peer[][]): [Peer, Peer] {
  const all = peers.length;
  const a = peers[Math.floor(Math.random() * all)]!;
  if (byNode.length === 1) {
    let b = a;
    while (b === a) b = peers[Math.floor(Math.random() * all)]!;
    return [a, b];
  }
  let k = Math.floor(Math.random() * (byNode.length - 1));
  if (k >= a.node) k++;
  const on = byNode[k]!;
  return [a, on[Math.floor(Math.random() * on.length)]!];
}

async function offer(c: OffersCommand): Promise<OfferedReport> {
  const nodes = Math.max(...peers.map((p) => p.node)) + 1;
  const byNode: Peer[][] = Array.from({ length: nodes }, (_, k) => peers.filter((p) => p.node === k));
  if (peers.length < 2 || byNode.some((l) => l.length === 0)) throw new Error(`too few peers to offer between (${peers.length} on ${nodes} nodes)`);
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let delivered = 0;
  onInbound = (m) => {
    if (m.type === 'offer' && m.sessionId !== undefined) {
      const t = sentAt.get(m.sessionId);
      if (t === undefined) return;
      sentAt.delete(m.sessionId);
      latencies.push(performance.now() - t);
      delivered++;
    } else if (m.type === 'error') {
      errors[m.code ?? '?'] = (errors[m.code ?? '?'] ?? 0) + 1;
      if (m.ref?.startsWith('o')) sentAt.delete(`session-${m.ref.slice(1)}`);
    }
  };
  const total = Math.round(c.rate * c.duration);
  let sent = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * c.rate));
      while (sent < due) {
        const [a, b] = pickPair(byNode);
        if (a.ws?.readyState !== OPEN) {
          errors['sender-closed'] = (errors['sender-closed'] ?? 0) + 1;
          sent++;
          continue;
        }
        sentAt.set(`session-${sent}`, performance.now());
        a.ws.send(offerText(sent, a.id, b.id));
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const seconds = (performance.now() - t0) / 1000;
  const drainUntil = performance.now() + c.drainMs;
  while (sentAt.size > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  return { type: 'offered', sent, delivered, errors, lost: sentAt.size, latencies, seconds, closed: closedCount };
}

process.on('message', (raw: RegisterCommand | OffersCommand | { type: 'close' }) => {
  const run = async (): Promise<void> => {
    if (raw.type === 'register') send(await registerAll(raw));
    else if (raw.type === 'offers') send(await offer(raw));
    else {
      for (const p of peers) p.ws?.terminate();
      process.disconnect();
      setTimeout(() => process.exit(0), 100).unref();
    }
  };
  run().catch((e: unknown) => send({ type: 'failed', message: (e as Error).stack ?? String(e) }));
});
process.on('disconnect', () => process.exit(0));
