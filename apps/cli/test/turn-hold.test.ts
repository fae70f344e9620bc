// Issue 14 finding 8: `nat turn --transport tcp --hold` exited 13 without a word when its control
// connection closed (Node's code for a top-level await that can never settle). It now says why
// the allocation ended and exits with the failure code.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startStunServer, staticUsers } from '@nat/server';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('nat turn --hold', () => {
  it('finding 8: says why and exits 1 when the server closes the TCP control connection', async () => {
    const server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: true,
      turn: { realm: 'hold.test', auth: staticUsers({ alice: 'pw' }) },
    });
    const port = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
    const child = spawn(process.execPath, [main, 'turn', '--server', `127.0.0.1:${port}`, '--transport', 'tcp', '--user', 'alice:pw', '--hold'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c) => (err += String(c)));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 15_000;
      while (!/holding the allocation/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(err).toMatch(/holding the allocation/);
      expect(server.turn!.size).toBe(1);
    } finally {
      // Closing the server closes every connection, the control connection with them.
      await server.close();
    }
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 10_000))]);
    if (code === 'running') child.kill();
    expect(code, err).toBe(1);
    expect(err).toMatch(/nat turn: the allocation held on 127\.0\.0\.1:\d+ ended: TCP connection closed by the server/);
  }, 30_000);
});
