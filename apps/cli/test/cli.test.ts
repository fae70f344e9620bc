import { startStunServer, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

let server: StunServer;
let port: number;
beforeAll(async () => {
  server = await startStunServer({ listen: ['127.0.0.1'], alternate: ['127.0.0.2'], port: 0, altPort: 0, rateLimit: { perSecond: 0 } });
  port = server.endpoints[0]!.port;
});
afterAll(() => server.close());

describe('nat detect', () => {
  it('prints a JSON report with the documented keys and exits 0', async () => {
    const c = capture();
    const code = await runCli(['detect', '--server', `127.0.0.1:${port}`, '--json'], c.io);
    expect(code).toBe(0);
    const r = JSON.parse(c.out());
    for (const k of [
      'classic',
      'classicLetter',
      'mapping',
      'filtering',
      'publicAddress',
      'hairpinning',
      'portPreservation',
      'alg',
      'bindingLifetime',
      'localAddress',
      'server',
      'otherAddress',
      'reachability',
      'durationMs',
    ]) {
      expect(r, k).toHaveProperty(k);
    }
    // loopback: no NAT and no filtering
    expect(r.classic).toBe('open-internet');
    expect(r.classicLetter).toBe('A');
    expect(r.mapping).toBe('endpoint-independent');
    expect(r.filtering).toBe('endpoint-independent');
    expect(r.publicAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.server).toBe(`127.0.0.1:${port}`);
    expect(r.otherAddress).toBe(`127.0.0.2:${server.endpoints[0]!.altPort}`);
    expect(r.durationMs).toBeLessThan(1000);
    expect(c.err()).toBe(''); // --json prints no progress
  });

  it('prints a readable report with progress lines', async () => {
    const c = capture();
    expect(await runCli(['detect', '--server', `127.0.0.1:${port}`], c.io)).toBe(0);
    expect(c.out()).toMatch(/NAT type\s+A {2}open-internet/);
    expect(c.out()).toMatch(/Peer-to-peer: /);
    expect(c.err()).toMatch(/Test I/);
  });

  it('exits 3 when nothing answers, within the retransmission budget (no server: no verdict; see detect-no-server.test.ts)', async () => {
    const c = capture();
    const started = Date.now();
    const code = await runCli(['detect', '--server', '127.0.0.1:9', '--json', '--rto', '50', '--rc', '2'], c.io);
    expect(code).toBe(3);
    expect(JSON.parse(c.out()).classic).toBeNull();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('exits 2 on bad usage with a message that says what to do', async () => {
    const c = capture();
    expect(await runCli(['detect'], c.io)).toBe(2);
    expect(c.err()).toMatch(/--server/);
    const d = capture();
    expect(await runCli(['detect', '--server', 'not an address:x'], d.io)).toBe(2);
    const e = capture();
    expect(await runCli(['frobnicate'], e.io)).toBe(2);
  });
});

describe('nat stun', () => {
  it('prints the mapped address over UDP and TCP', async () => {
    for (const transport of ['udp', 'tcp']) {
      const c = capture();
      expect(await runCli(['stun', `127.0.0.1:${port}`, '--transport', transport, '--local', '127.0.0.9'], c.io)).toBe(0);
      expect(c.out()).toMatch(/^127\.0\.0\.9:\d+\n$/);
    }
  });

  it('prints JSON with --json', async () => {
    const c = capture();
    expect(await runCli(['stun', `127.0.0.1:${port}`, '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out());
    expect(r.mappedAddress).toBe(r.localAddress);
    expect(r.responseOrigin).toBe(`127.0.0.1:${port}`);
  });

  it('exits 3 when the server does not answer, showing each retransmission and a final count on stderr', async () => {
    const c = capture();
    expect(await runCli(['stun', '127.0.0.1:9', '--rto', '50', '--rc', '3'], c.io)).toBe(3);
    expect(c.err()).toMatch(/no answer from 127\.0\.0\.1:9 yet after [\d.]+ s: request 2 of 3 sent\n/);
    expect(c.err()).toMatch(/request 3 of 3 sent\n/);
    expect(c.err()).toMatch(/nat stun: no answer came after 3 requests over [\d.]+ s from 127\.0\.0\.1:9 over udp/);
    const j = capture();
    expect(await runCli(['stun', '127.0.0.1:9', '--rto', '50', '--rc', '2', '--json'], j.io)).toBe(3);
    expect(JSON.parse(j.out())).toMatchObject({ error: 'TIMEOUT', requests: 2 }); // stdout: one JSON object, progress on stderr only
    expect(j.err()).toMatch(/request 2 of 2 sent/);
  });
});

describe('nat stun without a port', () => {
  it('shows the port it reached (the default 3478) in the line on stderr, over TCP and UDP', async () => {
    // A unique loopback alias, so the default port collides with nothing.
    const s = await startStunServer({ listen: ['127.0.0.57'], port: 3478, altPort: null, tcp: true, rateLimit: { perSecond: 0 } });
    try {
      for (const transport of ['tcp', 'udp']) {
        const c = capture();
        expect(await runCli(['stun', '127.0.0.57', '--transport', transport], c.io)).toBe(0);
        expect(c.err()).toMatch(new RegExp(`^from 127\\.[\\d.]+:\\d+ via ${transport} to 127\\.0\\.0\\.57:3478, `));
      }
    } finally {
      await s.close();
    }
  });
});
