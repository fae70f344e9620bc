// A small TCP tool the namespace tests run inside lab hosts (plain Node, no build step):
//   node tcp-tool.mjs serve PORT            a service that answers the SHA-256 (hex) of what it got, after the client's half-close
//   node tcp-tool.mjs send PORT BYTES [N]   N concurrent connections (default 1) to 127.0.0.1:PORT, each sending BYTES random
//                                           bytes and checking the answer; prints one JSON line { ok, bad, errors, ms }
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, portText, bytesText, countText] = process.argv.slice(2);
const port = Number(portText);
if (mode === 'serve') {
  createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
    s.on('error', () => {});
  }).listen(port, '127.0.0.1', () => process.stdout.write(`serving ${port}\n`));
} else if (mode === 'send') {
  const bytes = Number(bytesText);
  const count = Number(countText ?? 1);
  const started = Date.now();
  const one = () =>
    new Promise((resolve) => {
      const data = randomBytes(bytes);
      const want = createHash('sha256').update(data).digest('hex');
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      let reply = '';
      s.on('data', (d) => (reply += d));
      s.on('end', () => {
        s.end();
        resolve(reply === want ? 'ok' : reply === '' ? 'error: closed without an answer' : 'bad');
      });
      s.on('error', (e) => resolve(`error: ${e.message}`));
      s.on('connect', () => {
        let off = 0;
        const pump = () => {
          while (off < data.length) {
            const c = data.subarray(off, off + 262144);
            off += c.length;
            if (!s.write(c)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      });
    });
  const results = await Promise.all(Array.from({ length: count }, one));
  const errors = results.filter((r) => r.startsWith('error'));
  process.stdout.write(`${JSON.stringify({ ok: results.filter((r) => r === 'ok').length, bad: results.filter((r) => r === 'bad').length, errors, ms: Date.now() - started })}\n`);
  process.exit(0);
} else {
  process.stderr.write('usage: tcp-tool.mjs serve PORT | send PORT BYTES [N]\n');
  process.exit(2);
}
