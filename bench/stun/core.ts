/**
 * Times the STUN responder core alone (no sockets): nanoseconds per 20-byte Binding request for
 * nat-server's StunResponder.handleDatagram, for its parts (decode, encode), and for the bare
 * server's hand-built answer. Tells how much of a request's cost is ours and how much is
 * node:dgram, libuv and the kernel (compare with 1e9 / responses per second from run.ts).
 *
 * Usage: pnpm build && tsx bench/stun/core.ts [--iterations N]
 */
import { type RemoteInfo } from 'node:dgram';
import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage } from '../../packages/protocol/dist/index.js';
import { StunResponder } from '../../packages/server/dist/index.js';

const i = process.argv.indexOf('--iterations');
const N = i >= 0 ? Number(process.argv[i + 1]) : 2_000_000;
const MAGIC_COOKIE = 0x2112a442;

const request = Buffer.alloc(20);
request.writeUInt16BE(0x0001, 0);
request.writeUInt32BE(MAGIC_COOKIE, 4);
for (let k = 8; k < 20; k++) request[k] = k * 7;
const rinfo: RemoteInfo = { address: '127.0.2.1', family: 'IPv4', port: 40000, size: 20 };

let sink = 0;
function time(name: string, fn: () => number): void {
  for (let k = 0; k < N / 10; k++) sink += fn(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < N; k++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  process.stdout.write(`${name.padEnd(52)} ${ns.toFixed(0).padStart(6)} ns/request\n`);
}

const responder = new StunResponder({ endpoints: { family: 'IPv4', primary: '127.0.0.1', port: 3478 }, rateLimit: { perSecond: 0 } });
// A limit so high that every request passes: measures the bucket lookup, not the dropping.
const limited = new StunResponder({ endpoints: { family: 'IPv4', primary: '127.0.0.1', port: 3478 }, rateLimit: { perSecond: 1e12 } });
const origin = { family: 'IPv4' as const, address: '127.0.0.1', port: 3478 };

function ipv4ToInt(s: string): number {
  let ip = 0;
  let octet = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 46) {
      ip = (ip << 8) | octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return ((ip << 8) | octet) >>> 0;
}

time('bare: hand-built XOR-MAPPED-ADDRESS answer', () => {
  const out = Buffer.allocUnsafe(32);
  out.writeUInt16BE(0x0101, 0);
  out.writeUInt16BE(12, 2);
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  request.copy(out, 8, 8, 20);
  out.writeUInt16BE(0x0020, 20);
  out.writeUInt16BE(8, 22);
  out.writeUInt16BE(0x0001, 24);
  out.writeUInt16BE(rinfo.port ^ (MAGIC_COOKIE >>> 16), 26);
  out.writeUInt32BE((ipv4ToInt(rinfo.address) ^ MAGIC_COOKIE) >>> 0, 28);
  return out.length;
});
time('decodeStunMessage', () => decodeStunMessage(request).attributeCount);
const tid = request.subarray(8, 20);
time(
  'encodeStunMessage (XOR-MAPPED + RESPONSE-ORIGIN)',
  () =>
    encodeStunMessage({
      method: StunMethod.Binding,
      class: StunClass.SuccessResponse,
      transactionId: tid,
      attributes: [attr(Attr.XorMappedAddress, rinfo as never), attr(Attr.ResponseOrigin, origin)],
    }).length,
);
time('StunResponder.handleDatagram (no rate limit)', () => responder.handleDatagram(request, rinfo as never, 'PP', Date.now())?.bytes.length ?? 0);
time('StunResponder.handleDatagram (rate limit, passing)', () => {
  const r = limited.handleDatagram(request, rinfo as never, 'PP', Date.now());
  return r?.bytes.length ?? 0;
});
time('Date.now()', () => Date.now() & 1);
if (sink === 42) process.stdout.write('\n');
