/**
 * coturn's `turnutils_stunclient` (an independent RFC 5780 client) against nat-server on
 * loopback: it must see the right response origins and other address for each of its tests.
 * IPv6 on ::1 is checked with raw sockets (the loopback alias trick does not exist for IPv6).
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { Attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { startStunServer, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLIENT = ['/usr/bin/turnutils_stunclient', '/usr/local/bin/turnutils_stunclient'].find((p) => existsSync(p));
if (!CLIENT) console.warn('[interop] turnutils_stunclient not installed (package coturn): test skipped');

let server: StunServer;
beforeAll(async () => {
  server = await startStunServer({ listen: ['127.0.0.1', '::1'], alternate: ['127.0.0.2'], port: 0, altPort: 0, rateLimit: { perSecond: 0 } });
});
afterAll(() => server.close());

describe.skipIf(!CLIENT)('turnutils_stunclient against nat-server', () => {
  it('sees RFC 5780 answers from the primary, then from the alternate IP and port', async () => {
    const { port, altPort } = server.endpoints[0]!;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(CLIENT!, ['-f', '-L', '127.0.0.6', '-p', String(port), '127.0.0.1'], { timeout: 15_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(`${stdout}\n${stderr}`),
      ),
    );
    // one block per response; the first "Response origin" line of each block
    const origins = out
      .split('RFC 5780 response')
      .slice(1)
      .map((b) => /Response origin: : ([\d.]+:\d+)/.exec(b)?.[1]);
    const others = [...out.matchAll(/Other addr: : ([\d.]+:\d+)/g)].map((m) => m[1]);
    const reflexive = [...out.matchAll(/UDP reflexive addr: ([\d.]+:\d+)/g)].map((m) => m[1]);
    // response 1: a plain request to the primary; response 2: "change IP and port"
    expect(origins.length, out).toBeGreaterThanOrEqual(2);
    expect(origins.slice(0, 2), out).toEqual([`127.0.0.1:${port}`, `127.0.0.2:${altPort}`]);
    expect(new Set(others), out).toEqual(new Set([`127.0.0.2:${altPort}`]));
    for (const r of reflexive) expect(r, out).toMatch(/^127\.0\.0\.6:\d+$/);
  });
});

describe('IPv6', () => {
  it('answers on ::1 with an IPv6 XOR-MAPPED-ADDRESS', async () => {
    const v6 = server.endpoints.find((e) => e.family === 'IPv6')!;
    const sock = createSocket({ type: 'udp6' });
    await new Promise<void>((r) => sock.bind(0, '::1', () => r()));
    const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
    sock.send(encodeStunMessage({ method: 1, class: 0 }), v6.port, '::1');
    const m = decodeStunMessage(await reply);
    expect(m.get(Attr.XorMappedAddress)).toEqual({ family: 'IPv6', address: '::1', port: sock.address().port });
    expect(m.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv6', address: '::1', port: v6.port });
    sock.close();
  });
});
