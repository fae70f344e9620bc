/**
 * Times nat-server's relay path without sockets: TurnCore.handleChannelData (client -> peer) and
 * TurnCore.handlePeerData (peer -> client), each with the drain() the driver does after it, on
 * two allocations bound to each other by channels, as in bench/turn/run.ts; a replica of the
 * per-packet 5-tuple key that the TURN driver (packages/server/src/relay/driver.ts) builds; and
 * what the bare forwarder does instead (subarray; allocUnsafe + copy of the header and data);
 * and the allocation inside encodeChannelData against Node's pooled Buffer.allocUnsafe.
 * Nanoseconds per packet: compare with the server's CPU time per relayed packet from run.ts.
 *
 * Usage: pnpm build && tsx bench/turn/core.ts [--iterations N] [--size BYTES]
 */
import { type RemoteInfo } from 'node:dgram';
import {
  Attr,
  StunClass,
  StunMethod,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeChannelData,
  encodeStunMessage,
  longTermKey,
} from '../../packages/protocol/dist/index.js';
import { type ClientEndpoint, TurnCore, staticUsers } from '../../packages/server/dist/index.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const N = arg('--iterations', 2_000_000);
const SIZE = arg('--size', 100);
const REALM = 'bench';

const core = new TurnCore({ realm: REALM, auth: staticUsers({ bench: 'bench' }), peers: { allow: ['127.0.0.0/8'] } });
const server: TransportAddress = { family: 'IPv4', address: '127.0.0.1', port: 3478 };
const endpoint = (port: number): ClientEndpoint => ({
  key: `udp|127.0.0.1|PP|127.0.3.1|${port}`,
  client: { family: 'IPv4', address: '127.0.3.1', port },
  server,
  transport: 'udp',
});
const A = endpoint(40001);
const B = endpoint(40002);
const key = longTermKey({ username: 'bench', realm: REALM, password: 'bench' });
let now = Date.now();

function drainOne(kind: string): Uint8Array {
  const out = core.drain();
  const o = out.find((x) => x.kind === kind);
  if (!o || !('bytes' in o)) throw new Error(`expected a ${kind} output, got ${JSON.stringify(out.map((x) => x.kind))}`);
  return o.bytes;
}

/** Allocate with the 401 round trip; the relay "socket" is opened by hand. */
function allocate(e: ClientEndpoint, relayPort: number): { id: number; relayed: TransportAddress; nonce: string } {
  core.handleStun(
    decodeStunMessage(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] })),
    e,
    now,
  );
  const challenge = decodeStunMessage(drainOne('to-client'));
  const nonce = challenge.get(Attr.Nonce)!;
  const request = encodeStunMessage(
    {
      method: StunMethod.Allocate,
      class: StunClass.Request,
      attributes: [attr(Attr.RequestedTransport, 17), attr(Attr.Username, 'bench'), attr(Attr.Realm, REALM), attr(Attr.Nonce, nonce)],
    },
    { integrity: key },
  );
  core.handleStun(decodeStunMessage(request), e, now);
  const open = core.drain().find((o) => o.kind === 'open-relay');
  if (!open || open.kind !== 'open-relay') throw new Error('no open-relay output');
  const relayed: TransportAddress = { family: 'IPv4', address: '127.0.0.1', port: relayPort };
  core.relayOpened(open.allocation, 'IPv4', relayed);
  const ok = decodeStunMessage(drainOne('to-client'));
  if (ok.class !== StunClass.SuccessResponse) throw new Error('Allocate failed');
  return { id: open.allocation, relayed, nonce };
}

function channelBind(e: ClientEndpoint, nonce: string, channel: number, peer: TransportAddress): void {
  const request = encodeStunMessage(
    {
      method: StunMethod.ChannelBind,
      class: StunClass.Request,
      attributes: [
        attr(Attr.ChannelNumber, channel),
        attr(Attr.XorPeerAddress, peer),
        attr(Attr.Username, 'bench'),
        attr(Attr.Realm, REALM),
        attr(Attr.Nonce, nonce),
      ],
    },
    { integrity: key },
  );
  core.handleStun(decodeStunMessage(request), e, now);
  const ok = decodeStunMessage(drainOne('to-client'));
  if (ok.class !== StunClass.SuccessResponse) throw new Error(`ChannelBind failed: ${JSON.stringify(ok.get(Attr.ErrorCode))}`);
}

const a = allocate(A, 50001);
const b = allocate(B, 50002);
channelBind(A, a.nonce, 0x4000, b.relayed);
channelBind(B, b.nonce, 0x4001, a.relayed);

const channelData = Buffer.alloc(4 + SIZE, 0xa5);
channelData.writeUInt16BE(0x4000, 0);
channelData.writeUInt16BE(SIZE, 2);
const peerData = Buffer.alloc(SIZE, 0xa5);
// What node:dgram hands the relay socket's 'message' handler: a fresh object per datagram.
const rinfoOf = (r: TransportAddress): RemoteInfo => ({ address: r.address, family: 'IPv4', port: r.port, size: SIZE });
const endpoints = new Map<string, ClientEndpoint>([[A.key, A]]);
const role = 'PP';

let sink = 0;
function time(name: string, fn: () => number): void {
  for (let k = 0; k < N / 10; k++) sink += fn(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < N; k++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  process.stdout.write(`${name.padEnd(64)} ${ns.toFixed(0).padStart(6)} ns/packet\n`);
}

process.stdout.write(`${N} iterations, ${SIZE}-byte payloads\n`);
time('client -> peer: handleChannelData + drain', () => {
  now = Date.now();
  core.handleChannelData(channelData, A, now);
  return core.drain().length;
});
time('peer -> client: handlePeerData (channel bound) + drain', () => {
  now = Date.now();
  core.handlePeerData(b.id, peerData, rinfoOf(a.relayed) as unknown as TransportAddress, now);
  return core.drain().length;
});
time("replica of the driver's per-packet 5-tuple key + Map.get", () => {
  const from = rinfoOf(A.client);
  const k = `udp|${server.address}|${role}|${from.address}|${from.port}`;
  return endpoints.get(k) === undefined ? 0 : 1;
});
time('part of it: encodeChannelData (a new Uint8Array per packet)', () => encodeChannelData(0x4001, peerData, { padded: false }).length);
time('what that costs: new Uint8Array(4 + size)', () => new Uint8Array(4 + peerData.length).length);
time("against: Buffer.allocUnsafe(4 + size) (Node's pool)", () => Buffer.allocUnsafe(4 + peerData.length).length);
time('Date.now()', () => Date.now() & 1);
time('bare: strip the header (subarray)', () => channelData.subarray(4, 4 + SIZE).length);
time('bare: add the header (allocUnsafe + copy)', () => {
  const out = Buffer.allocUnsafe(4 + peerData.length);
  out[0] = 0x40;
  out[1] = 0x01;
  out[2] = peerData.length >> 8;
  out[3] = peerData.length & 0xff;
  peerData.copy(out, 4);
  return out.length;
});
if (core.stats.dropped > 0) process.stdout.write(`note: ${core.stats.dropped} packets were dropped by the core (expected 0)\n`);
if (sink === -1) process.stdout.write('\n');
