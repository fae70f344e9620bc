import { createHmac } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { startStunServer, staticUsers, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

let server: StunServer;
let echo: Socket;
let port: number;
beforeAll(async () => {
  server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: true,
    rateLimit: { perSecond: 0 },
    turn: { realm: 'cli.test', auth: staticUsers({ alice: 'pw' }), peers: { allow: ['127.0.0.0/8'] } },
  });
  port = server.listeners.find((l) => l.transport === 'udp')!.address.port;
  echo = createSocket('udp4');
  await new Promise<void>((r) => echo.bind(0, '127.0.0.11', () => r()));
  echo.on('message', (m, rinfo) => echo.send(m, rinfo.port, rinfo.address));
});
afterAll(async () => {
  echo.close();
  await server.close();
});

describe('nat turn', () => {
  it('allocates and prints the relayed address', async () => {
    const c = capture();
    expect(await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', 'alice:pw', '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out());
    expect(r.relayedAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.mappedAddress).toBe(r.localAddress);
  });

  it.each([
    ['udp', []],
    ['udp', ['--channel']],
    ['tcp', []],
  ])('runs an echo test through the relay over %s %s', async (transport, extra) => {
    const c = capture();
    const code = await runCli(
      [
        'turn',
        '--server',
        `127.0.0.1:${port}`,
        '--user',
        'alice:pw',
        '--transport',
        transport,
        '--peer',
        `127.0.0.11:${echo.address().port}`,
        '--echo',
        '--count',
        '4',
        '--interval',
        '10',
        '--json',
        ...extra,
      ],
      c.io,
    );
    expect(code, c.err()).toBe(0);
    const r = JSON.parse(c.out());
    expect(r.received).toBe(4);
    expect(r.lossPercent).toBe(0);
    expect(r.rttMs.median).toBeGreaterThan(0);
    // RTTs in --json are rounded to microseconds (3 decimals of a millisecond).
    for (const v of Object.values(r.rttMs) as number[]) expect(Math.round(v * 1000) / 1000).toBe(v);
  });

  it('says what to do when the password is wrong', async () => {
    const c = capture();
    expect(await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', 'alice:wrong'], c.io)).toBe(1);
    expect(c.err()).toMatch(/401.*check --user/);
  });

  it('exits 2 without --server or --user', async () => {
    const c = capture();
    expect(await runCli(['turn', '--server', `127.0.0.1:${port}`], c.io)).toBe(2);
  });
});

describe('nat turn credentials', () => {
  it('prints REST API credentials: expiry:user and base64(HMAC-SHA1(secret, username))', async () => {
    const c = capture();
    expect(await runCli(['turn', 'credentials', '--secret', 's3cret', '--user', 'alice', '--ttl', '600', '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out());
    const [expiry, user] = r.username.split(':');
    expect(user).toBe('alice');
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(590);
    expect(r.password).toBe(createHmac('sha1', 's3cret').update(r.username).digest('base64'));
  });
});
