/**
 * `nat detect` tells "no server answered at all" (no UDP answer and no TCP answer either) apart
 * from "UDP blocked" (a STUN Binding over TCP to the same port is answered).
 */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { startStunServer } from '@nat/server';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

/** A loopback UDP port nothing listens on (bound, then closed); TCP on it is refused too. */
async function deadPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('nat detect', () => {
  it('exits 3 saying no server answered at all when nothing listens (not udp-blocked)', async () => {
    const port = await deadPort();
    const c = capture();
    const code = await runCli(['detect', '--server', `127.0.0.1:${port}`, '--json', '--rto', '50', '--rc', '2'], c.io);
    expect(code).toBe(3);
    const r = JSON.parse(c.out()) as Record<string, unknown>;
    expect(r['classic']).toBeNull();
    expect(r['classicLetter']).toBeNull();
    expect(r['tcpCheck']).toMatchObject({ answered: false });
    expect(c.err()).toMatch(new RegExp(`no server answered at all at 127\\.0\\.0\\.1:${port}`));
    expect(c.err()).not.toMatch(/udp-blocked|UDP blocked/i);
    const h = capture();
    expect(await runCli(['detect', '--server', `127.0.0.1:${port}`, '--rto', '50', '--rc', '2'], h.io)).toBe(3);
    expect(h.out()).not.toMatch(/udp-blocked/);
    expect(h.err()).toMatch(/no server answered at all/);
  });

  // UDP blocked, emulated on loopback: on 127.0.0.x:P a UDP socket swallows every request, and
  // TCP to the same port reaches a real STUN server (through a plain TCP relay to it).
  it('still concludes G udp-blocked when UDP gets no answer and TCP does', async () => {
    const server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: true, rateLimit: { perSecond: 0 } });
    const stunPort = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.41', () => r()));
    const port = silent.address().port;
    const relay = createServer((c) => {
      const up = connect(stunPort, '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay.listen(port, '127.0.0.41', () => r()));
    try {
      const c = capture();
      expect(await runCli(['detect', '--server', `127.0.0.41:${port}`, '--json', '--rto', '50', '--rc', '2'], c.io)).toBe(3);
      const r = JSON.parse(c.out()) as Record<string, unknown>;
      expect(r['classic']).toBe('udp-blocked');
      expect(r['classicLetter']).toBe('G');
      expect(r['tcpCheck']).toEqual({ answered: true, error: null });
      expect(r['notes']).toEqual(expect.arrayContaining([expect.stringMatching(/over TCP to 127\.0\.0\.41:\d+ was answered/)]));
      const h = capture();
      expect(await runCli(['detect', '--server', `127.0.0.41:${port}`, '--rto', '50', '--rc', '2'], h.io)).toBe(3);
      expect(h.out()).toMatch(/NAT type\s+G {2}udp-blocked/);
      expect(h.err()).not.toMatch(/no server answered/);
    } finally {
      silent.close();
      relay.close();
      await server.close();
    }
  });
});
