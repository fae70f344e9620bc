// A small TCP tool the namespace tests run inside lab hosts (plain Node, no build step):
//   node tcp-tool.mjs serve PORT            a service that answers the SHA-256 (hex) of what it got, after the client's half-close
//   node tcp-tool.mjs send PORT BYTES [N]   N concurrent connections (default 1) to 127.0.0.1:PORT, each sending BYTES random
//                                           bytes and checking the answer; prints one JSON line { ok, bad, errors, ms }
//   node tcp-tool.mjs echo PORT             a service that echoes every byte back
//   node tcp-tool.mjs roundtrip PORT BYTES  one connection to 127.0.0.1:PORT sends BYTES random bytes and reads them back:
//                                           the SHA-256 of what came back must equal that of what went out; prints one
//                                           JSON line { ok, error?, received, firstByteMs, ms }
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, portText, bytesText, countText] = process.argv.slice(2);
const port = Number(portText);

/** Writes `data` to `s` in 256 KiB chunks, respecting back-pressure, then half-closes. */
const pump = (s, data) => {
  let off = 0;
  const next = () => {
    while (off < data.length) {
      const c = data.subarray(off, off + 262144);
      off += c.length;
      if (!s.write(c)) return void s.once('drain', next);
    }
    s.end();
  };
  next();
};

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
      s.on('connect', () => pump(s, data));
    });
  const results = await Promise.all(Array.from({ length: count }, one));
  const errors = results.filter((r) => r.startsWith('error'));
  process.stdout.write(
    `${JSON.stringify({ ok: results.filter((r) => r === 'ok').length, bad: results.filter((r) => r === 'bad').length, errors, ms: Date.now() - started })}\n`,
  );
  process.exit(0);
} else if (mode === 'echo') {
  createServer({ allowHalfOpen: true }, (s) => {
    s.pipe(s);
    s.on('error', () => {});
  }).listen(port, '127.0.0.1', () => process.stdout.write(`serving ${port}\n`));
} else if (mode === 'roundtrip') {
  const bytes = Number(bytesText);
  const data = randomBytes(bytes);
  const want = createHash('sha256').update(data).digest('hex');
  const got = createHash('sha256');
  const started = Date.now();
  let received = 0;
  let firstByteMs = null;
  const result = await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    s.on('data', (d) => {
      firstByteMs ??= Date.now() - started;
      received += d.length;
      got.update(d);
    });
    s.on('end', () => {
      s.end();
      resolve(got.digest('hex') === want ? { ok: true } : { ok: false, error: `received ${received} of ${bytes} bytes, SHA-256 differs` });
    });
    s.on('error', (e) => resolve({ ok: false, error: e.message }));
    s.on('connect', () => pump(s, data));
  });
  process.stdout.write(`${JSON.stringify({ ...result, received, firstByteMs, ms: Date.now() - started })}\n`);
  process.exit(0);
} else {
  process.stderr.write('usage: tcp-tool.mjs serve PORT | send PORT BYTES [N] | echo PORT | roundtrip PORT BYTES\n');
  process.exit(2);
}
