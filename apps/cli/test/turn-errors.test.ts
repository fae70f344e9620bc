/** What `nat turn` says, and how it exits, when there is no TURN to be had. */
import { createSocket } from 'node:dgram';
import { startStunServer, staticUsers, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

/** A loopback UDP port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('nat turn against a STUN-only server', () => {
  let server: StunServer;
  let port: number;
  beforeAll(async () => {
    server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, rateLimit: { perSecond: 0 } });
    port = server.listeners.find((l) => l.transport === 'udp')!.address.port;
  });
  afterAll(() => server.close());

  it.each(['udp', 'tcp'])('says over %s that the server offers no TURN and which flags turn it on', async (transport) => {
    const c = capture();
    expect(await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', 'alice:pw', '--transport', transport], c.io)).toBe(1);
    expect(c.err()).toMatch(/answered the Allocate request with 400/);
    expect(c.err()).toMatch(/this server does not offer TURN/);
    expect(c.err()).toMatch(/--auth-secret/);
    expect(c.err()).not.toMatch(/RFC 8656 section 18/);
  });
});

describe('nat turn --peer refused by the peer policy', () => {
  let server: StunServer;
  let port: number;
  beforeAll(async () => {
    // No peers.allow: loopback peers are refused, as on a default nat-server.
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      turn: { realm: 'cli.test', auth: staticUsers({ alice: 'pw' }) },
    });
    port = server.listeners.find((l) => l.transport === 'udp')!.address.port;
  });
  afterAll(() => server.close());

  it('names --allow-peer with the range the loopback peer falls in', async () => {
    const c = capture();
    const code = await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', 'alice:pw', '--peer', '127.0.0.11:9000', '--echo', '--count', '1'], c.io);
    expect(code).toBe(1);
    expect(c.err()).toMatch(/403/);
    expect(c.err()).toMatch(/--allow-peer 127\.0\.0\.0\/8/);
  });
});

describe('nat turn where nothing listens', () => {
  it.each(['udp', 'tcp'])('exits 3 over %s with a message that says no server answered', async (transport) => {
    const port = await deadPort();
    const c = capture();
    const code = await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', 'alice:pw', '--transport', transport, '--json'], c.io);
    expect(code, c.err()).toBe(3);
    expect(c.err()).toMatch(new RegExp(`no TURN server answered at 127\\.0\\.0\\.1:${port} over ${transport}`));
    expect(c.err()).toMatch(/nothing listens/);
    expect(JSON.parse(c.out()).error).toBe('SOCKET');
  });
});
