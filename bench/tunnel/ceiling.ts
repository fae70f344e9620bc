/**
 * The ceiling of any transport written in JavaScript on node:dgram here: one process seals
 * 1400-byte datagrams (ChaCha20-Poly1305, libsodium) and sends them on a connected UDP socket,
 * a child process receives and opens them; no acknowledgements, no reliability, one event-loop
 * trip per datagram per side. Whatever a tunnel does on top can only be slower.
 *
 *   tsx bench/tunnel/ceiling.ts [datagrams=60000]
 */
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgv } from '../harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(resolve(HERE, '../../packages/client'), 'package.json'));
const sodium = require('sodium-native') as {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: null, nsec: null, npub: Buffer, k: Buffer): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: null, npub: Buffer, k: Buffer): number;
};
const KEY = Buffer.alloc(32, 9);
const SIZE = 1400;

const argv = benchArgv();
if (argv[0] === 'rx') {
  const s = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  const nonce = Buffer.alloc(12);
  let n = 0;
  let bytes = 0;
  let t0 = 0;
  s.on('message', (m) => {
    if (t0 === 0) t0 = performance.now();
    const out = Buffer.allocUnsafe(m.length - 24);
    nonce.writeUInt32LE(m.readUInt32BE(4), 4);
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, m.subarray(8), null, nonce, KEY);
      n++;
      bytes += out.length;
    } catch {
      // counted as lost
    }
  });
  s.bind(0, '127.0.0.1', () => process.send!(s.address().port));
  process.on('message', () => {
    process.send!({ n, mbps: bytes / 1048576 / ((performance.now() - t0) / 1000) });
    process.exit(0);
  });
} else {
  const count = Number(argv[0] ?? 60_000);
  const child = fork(fileURLToPath(import.meta.url), ['rx'], { execArgv: process.execArgv });
  const port = await new Promise<number>((r) => child.once('message', (p) => r(p as number)));
  const s = createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
  await new Promise<void>((r) => s.connect(port, '127.0.0.1', r));
  const plain = Buffer.alloc(SIZE, 1);
  const nonce = Buffer.alloc(12);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const out = Buffer.allocUnsafe(8 + SIZE + 16);
    out.writeUInt32BE(0, 0);
    out.writeUInt32BE(i, 4);
    nonce.writeUInt32LE(i, 4);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(8), plain, null, null, nonce, KEY);
    s.send(out);
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  const offered = (count * SIZE) / 1048576 / ((performance.now() - t0) / 1000);
  await new Promise((r) => setTimeout(r, 500));
  child.send('done');
  const r = await new Promise<{ n: number; mbps: number }>((res) => child.once('message', (m) => res(m as { n: number; mbps: number })));
  console.log(`offered ${offered.toFixed(1)} MB/s; received and opened ${r.n} of ${count} datagrams at ${r.mbps.toFixed(1)} MB/s`);
  s.close();
}
