/**
 * The platform's ceiling: the least a node:dgram STUN responder can do. It checks the header of
 * a Binding request (RFC 8489 section 5) and answers with a Binding success response holding
 * only XOR-MAPPED-ADDRESS (section 14.2), written byte by byte. No decoding of attributes, no
 * FINGERPRINT, no rate limit, no IPv6: a yardstick for the benchmark, not a server.
 *
 * Usage: node --import tsx bench/stun/bare-server.ts --listen 127.0.0.1 --port 3478 [--sync-lookup]
 * Prints "listening udp IP:PORT" on stderr when ready; exits on SIGINT/SIGTERM.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';

const MAGIC_COOKIE = 0x2112a442;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

/** Dotted IPv4 text to a 32-bit number, by hand (no split, no allocation). */
function ipv4ToInt(s: string): number {
  let ip = 0;
  let octet = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      ip = (ip << 8) | octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return ((ip << 8) | octet) >>> 0;
}

// 4 MB socket buffers, as coturn and nat-server use: with the default 208 KB a burst of a couple
// of hundred small requests already overflows the receive queue.
// --sync-lookup: resolve the destination of each send synchronously. By default node:dgram runs
// every send's IP literal through dns.lookup, which answers on the next tick; this skips that.
const syncLookup = process.argv.includes('--sync-lookup');
const socket = createSocket({
  type: 'udp4',
  recvBufferSize: 4 << 20,
  sendBufferSize: 4 << 20,
  ...(syncLookup
    ? { lookup: (address: string, _options: unknown, callback: (err: null, address: string, family: number) => void) => callback(null, address, 4) }
    : {}),
});

socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
  // A Binding request: type 0x0001, attribute length a multiple of 4, the magic cookie.
  if (msg.length < 20 || msg[0] !== 0 || msg[1] !== 1 || (msg[3]! & 3) !== 0 || msg.readUInt32BE(4) !== MAGIC_COOKIE) return;
  if (rinfo.family !== 'IPv4') return;
  const out = Buffer.allocUnsafe(32);
  out.writeUInt16BE(0x0101, 0); // Binding success response
  out.writeUInt16BE(12, 2); // one attribute of 4 + 8 bytes
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.copy(out, 8, 8, 20); // transaction id
  out.writeUInt16BE(0x0020, 20); // XOR-MAPPED-ADDRESS
  out.writeUInt16BE(8, 22);
  out.writeUInt16BE(0x0001, 24); // reserved, family IPv4
  out.writeUInt16BE(rinfo.port ^ (MAGIC_COOKIE >>> 16), 26);
  out.writeUInt32BE((ipv4ToInt(rinfo.address) ^ MAGIC_COOKIE) >>> 0, 28);
  socket.send(out, rinfo.port, rinfo.address);
});

socket.on('error', (e) => {
  process.stderr.write(`bare-server: ${e.message}\n`);
  process.exit(1);
});

socket.bind({ address: arg('--listen', '127.0.0.1'), port: Number(arg('--port', '3478')), exclusive: true }, () => {
  const a = socket.address();
  process.stderr.write(`listening udp ${a.address}:${a.port}\n`);
});

const stop = (): void => {
  socket.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
