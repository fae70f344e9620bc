/**
 * Prototype of the direct-path design that skips the link's shim: the ICE driver's UDP socket
 * *is* a udx-native socket. Non-udx datagrams (STUN checks and consent, the ICE framing bytes
 * 0xF0-0xF2) arrive as the socket's `message` events and leave with `trySend`, while udx streams
 * run on the same socket and port, so on the NAT mapping ICE opened. Encryption moves from
 * per-packet sealing to the byte stream: libsodium secretstream (XChaCha20-Poly1305) records of
 * up to 64 KB, as @hyperswarm/secret-stream does (a 4-byte length, then header/ciphertext).
 *
 * Two processes on 127.0.0.1: the parent pushes BYTES through one stream, the child receives,
 * decrypts and counts; meanwhile the parent sends a STUN Binding request on the same socket every
 * 50 ms and the child answers it (consent freshness, RFC 7675), to show both kinds of traffic share
 * the socket under load. Prints MB/s and CPU seconds per GB of both processes together.
 *
 *   tsx bench/tunnel/udx-on-ice-socket.ts [--mb 100] [--plain]   (--plain: no encryption)
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from '../harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(resolve(HERE, '../../packages/client'), 'package.json'));

interface UdxSocket {
  bind(port: number, host: string): void;
  address(): { port: number };
  trySend(b: Buffer, port: number, host: string): void;
  on(e: 'message', f: (b: Buffer, from: { host: string; port: number }) => void): void;
  setRecvBufferSize(n: number): void;
  setSendBufferSize(n: number): void;
  close(): Promise<void>;
}
interface UdxStream {
  connect(s: UdxSocket, id: number, port: number, host: string): void;
  write(b: Buffer): boolean;
  once(e: string, f: () => void): void;
  on(e: 'data', f: (d: Buffer) => void): void;
  on(e: 'error', f: (e: Error) => void): void;
  destroy(): void;
}
const UDX = require('udx-native') as new () => { createSocket(): UdxSocket; createStream(id: number): UdxStream };
const sodium = require('sodium-native') as {
  crypto_secretstream_xchacha20poly1305_STATEBYTES: number;
  crypto_secretstream_xchacha20poly1305_HEADERBYTES: number;
  crypto_secretstream_xchacha20poly1305_ABYTES: number;
  crypto_secretstream_xchacha20poly1305_TAG_MESSAGE: number;
  crypto_secretstream_xchacha20poly1305_init_push(state: Buffer, header: Buffer, key: Buffer): void;
  crypto_secretstream_xchacha20poly1305_init_pull(state: Buffer, header: Buffer, key: Buffer): void;
  crypto_secretstream_xchacha20poly1305_push(state: Buffer, c: Buffer, m: Buffer, ad: null, tag: number): number;
  crypto_secretstream_xchacha20poly1305_pull(state: Buffer, m: Buffer, tag: Buffer, c: Buffer, ad: null): number;
};

const USAGE = `usage: tsx bench/tunnel/udx-on-ice-socket.ts [--mb 100] [--plain]
  --mb N      megabytes through the stream (default 100)
  --plain     no encryption
  -h, --help  (--child is how the script starts its receiving half)`;
const args = parseBenchArgs('tunnel/udx-on-ice-socket', USAGE, {
  mb: { type: 'string', default: '100' },
  plain: { type: 'boolean', default: false },
  child: { type: 'boolean', default: false },
});
const BYTES = Number(args.mb) * 1024 * 1024;
const HOST = '127.0.0.1';
const KEY = Buffer.alloc(32, 7); // the Noise handshake's split() would provide it
const ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES;
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const isStun = (b: Buffer): boolean => b.length >= 20 && b[0]! < 4 && b.readUInt32BE(4) === 0x2112a442;
function stun(type: number, txid: Buffer): Buffer {
  const m = Buffer.alloc(20);
  m.writeUInt16BE(type, 0);
  m.writeUInt32BE(0x2112a442, 4);
  txid.copy(m, 8);
  return m;
}

const u = new UDX();
const socket = u.createSocket();
socket.bind(0, HOST);
socket.setRecvBufferSize(4 << 20);
socket.setSendBufferSize(4 << 20);
let stunSeen = 0;

if (args.child) {
  // the answering peer
  socket.on('message', (b, from) => {
    if (!isStun(b)) return;
    stunSeen++;
    socket.trySend(stun(0x0101, b.subarray(8, 20)), from.port, from.host); // Binding success
  });
  process.send!({ port: socket.address().port });
  const peer = await new Promise<number>((r) => process.once('message', (m) => r((m as { port: number }).port)));
  const stream = u.createStream(2);
  stream.on('error', () => {}); // the parent's destroy at the end
  stream.connect(socket, 1, peer, HOST);
  let got = 0;
  let c0 = 0;
  const state = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES);
  const tag = Buffer.alloc(1);
  // received chunks (one per udx packet) are gathered until a whole record is there
  const chunks: Buffer[] = [];
  let have = 0;
  let need = args.plain ? 0 : 24; // the secretstream header first
  let header = !args.plain;
  const count = (n: number): void => {
    if (c0 === 0) c0 = cpu();
    got += n;
    if (got >= BYTES) process.send!({ done: true, cpu: cpu() - c0, stunSeen });
  };
  const take = (n: number): Buffer => {
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
    chunks.length = 0;
    if (all.length > n) chunks.push(all.subarray(n));
    have = all.length - n;
    return all.subarray(0, n);
  };
  stream.on('data', (d) => {
    if (args.plain) return count(d.length);
    chunks.push(d);
    have += d.length;
    while (have >= need) {
      if (header) {
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, take(24), KEY);
        header = false;
        need = 4;
      } else if (need === 4) {
        const len = take(4).readUInt32BE(0);
        need = len;
      } else {
        const c = take(need);
        const plain = Buffer.allocUnsafe(c.length - ABYTES);
        sodium.crypto_secretstream_xchacha20poly1305_pull(state, plain, tag, c, null);
        need = 4;
        count(plain.length);
      }
    }
  });
} else {
  const child = fork(fileURLToPath(import.meta.url), ['--child', '--mb', String(args.mb), ...(args.plain ? ['--plain'] : [])], { execArgv: process.execArgv });
  const peer = await new Promise<number>((r) => child.once('message', (m) => r((m as { port: number }).port)));
  child.send({ port: socket.address().port });
  // STUN on the same socket: a check before the stream, then consent every 50 ms during it
  const answers = new Set<string>();
  socket.on('message', (b) => {
    if (isStun(b) && b.readUInt16BE(0) === 0x0101) answers.add(b.subarray(8, 20).toString('hex'));
  });
  const check = (): void => socket.trySend(stun(0x0001, randomBytes(12)), peer, HOST);
  check();
  while (answers.size === 0) await new Promise((r) => setTimeout(r, 5));
  const consent = setInterval(check, 50);
  const stream = u.createStream(1);
  stream.on('error', () => {});
  stream.connect(socket, 2, peer, HOST);
  const state = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES);
  const CHUNK = 64 * 1024;
  const plain = Buffer.alloc(CHUNK, 0x5a);
  const c0 = cpu();
  const t0 = performance.now();
  const done = new Promise<{ cpu: number; stunSeen: number }>((r) =>
    child.on('message', (m) => (m as { done?: boolean }).done && r(m as { cpu: number; stunSeen: number })),
  );
  if (!args.plain) {
    const header = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES);
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, header, KEY);
    stream.write(header);
  }
  let sent = 0;
  const pump = (): void => {
    while (sent < BYTES) {
      sent += CHUNK;
      let out = plain;
      if (!args.plain) {
        out = Buffer.allocUnsafe(4 + CHUNK + ABYTES);
        out.writeUInt32BE(CHUNK + ABYTES, 0);
        sodium.crypto_secretstream_xchacha20poly1305_push(state, out.subarray(4), plain, null, sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
      }
      if (!stream.write(out)) return void stream.once('drain', pump);
    }
  };
  pump();
  const r = await done;
  const secs = (performance.now() - t0) / 1000;
  const total = cpu() - c0 + r.cpu;
  clearInterval(consent);
  const mb = BYTES / 1048576;
  console.log(
    `udx on the ICE socket${args.plain ? ' (no encryption)' : ' + secretstream'}: ${mb} MB in ${secs.toFixed(2)} s = ${(mb / secs).toFixed(1)} MB/s, ` +
      `${(total / (BYTES / 2 ** 30)).toFixed(1)} CPU s/GB (both processes); STUN on the same socket: ${r.stunSeen} requests answered, ${answers.size} answers back`,
  );
  stream.destroy();
  child.kill();
  await socket.close().catch(() => {});
  process.exit(0);
}
