import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NatReport, classicNatTest, detectNat, measureBindingLifetime } from '../src/index.js';
import { PUBLIC_IP, SimulatedNatServer, type SimulatedNatBehaviour } from './helpers/simulated-nat.js';

// Short timing: a test that expects no answer is given up after 20 + 40 + 40 = 100 ms.
const fast = { rto: 20, rc: 2, rm: 2 } as const;
const CLIENT_IP = '127.0.0.3';

let server: SimulatedNatServer;
beforeAll(async () => {
  server = await SimulatedNatServer.start({ mapping: 'none', filtering: 'none' });
});
afterAll(async () => {
  await server?.close();
});

async function detect(behaviour: SimulatedNatBehaviour, extra: Partial<Parameters<typeof detectNat>[0]> = {}): Promise<NatReport> {
  server.reset(behaviour);
  return detectNat({ server: server.primary, localAddress: CLIENT_IP, ...fast, ...extra });
}

describe('detectNat and classicNatTest against every simulated NAT type', () => {
  const table: [string, SimulatedNatBehaviour, string, string, string | null, string | null][] = [
    ['A open internet', { mapping: 'none', filtering: 'none' }, 'open-internet', 'A', 'endpoint-independent', 'endpoint-independent'],
    ['B full cone', { mapping: 'endpoint-independent', filtering: 'endpoint-independent' }, 'full-cone', 'B', 'endpoint-independent', 'endpoint-independent'],
    [
      'C restricted cone',
      { mapping: 'endpoint-independent', filtering: 'address-dependent' },
      'restricted-cone',
      'C',
      'endpoint-independent',
      'address-dependent',
    ],
    [
      'D port-restricted cone',
      { mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' },
      'port-restricted-cone',
      'D',
      'endpoint-independent',
      'address-and-port-dependent',
    ],
    [
      'E symmetric UDP firewall',
      { mapping: 'none', filtering: 'address-and-port-dependent' },
      'symmetric-udp-firewall',
      'E',
      'endpoint-independent',
      'address-and-port-dependent',
    ],
    [
      'F symmetric (address-and-port-dependent mapping)',
      { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent' },
      'symmetric',
      'F',
      'address-and-port-dependent',
      'address-and-port-dependent',
    ],
    [
      'F symmetric (address-dependent mapping)',
      { mapping: 'address-dependent', filtering: 'address-dependent' },
      'symmetric',
      'F',
      'address-dependent',
      'address-dependent',
    ],
    ['G UDP blocked', { mapping: 'none', filtering: 'none', blocked: true }, 'udp-blocked', 'G', null, null],
  ];

  for (const [name, behaviour, classic, letter, mapping, filtering] of table) {
    it(name, async () => {
      const report = await detect(behaviour);
      expect(report).toMatchObject({ classic, classicLetter: letter, mapping, filtering });
      const natted = behaviour.mapping !== 'none';
      if (behaviour.blocked) {
        expect(report).toMatchObject({ publicAddress: null, behindNat: null, hairpinning: null, portPreservation: null, alg: null, otherAddress: null });
      } else {
        expect(report.behindNat).toBe(natted);
        expect(report.publicAddress?.startsWith(natted ? `${PUBLIC_IP}:` : `${CLIENT_IP}:`)).toBe(true);
        expect(report.portPreservation).toBe(!natted);
        // Without NAT the probe reaches the first socket directly; the simulated NAT does not hairpin.
        expect(report.hairpinning).toBe(!natted);
        expect(report.alg).toBe(false);
        expect(report.otherAddress).toBe(`127.0.0.2:${server.ports[1]}`);
      }
      expect(report.server).toBe(`127.0.0.1:${server.ports[0]}`);
      expect(report.localAddress.startsWith(`${CLIENT_IP}:`)).toBe(true);
      expect(report.reachability.length).toBeGreaterThan(20);

      // The step-by-step reference procedure agrees.
      server.reset(behaviour);
      const seq = await classicNatTest({ server: server.primary, localAddress: CLIENT_IP, ...fast });
      expect(seq.nat).toBe(classic);
      expect(seq.letter).toBe(letter);
    });
  }

  it('sends the classic tests in the seed document order from one socket', async () => {
    server.reset({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' });
    const r = await classicNatTest({ server: server.primary, localAddress: CLIENT_IP, ...fast });
    expect(r.step).toBe('STEP5');
    const [p1, p2] = server.ports;
    const seen = server.received.map((q) => `${q.to}${q.changeIp ? ' ip' : ''}${q.changePort ? ' port' : ''}`);
    // Test1, Test2 (retransmitted: no answer gets in), Test1#2, Test3 (retransmitted)
    expect([...new Set(seen)]).toEqual([`127.0.0.1:${p1}`, `127.0.0.1:${p1} ip port`, `127.0.0.2:${p2}`, `127.0.0.1:${p1} port`]);
    expect(new Set(server.received.map((q) => q.from)).size).toBe(1);
  });

  it('agrees when the requests are classic RFC 3489 ones', async () => {
    const report = await detect({ mapping: 'endpoint-independent', filtering: 'address-dependent' }, { classic: true });
    expect(report).toMatchObject({ classic: 'restricted-cone', mapping: 'endpoint-independent', filtering: 'address-dependent', alg: null });
  });

  it('reports an ALG that rewrites MAPPED-ADDRESS', async () => {
    const report = await detect({ mapping: 'endpoint-independent', filtering: 'endpoint-independent', alg: true });
    expect(report.alg).toBe(true);
    expect(report.classic).toBe('full-cone');
  });

  it('cannot classify with a server that names no alternate address', async () => {
    const report = await detect({ mapping: 'endpoint-independent', filtering: 'address-dependent', noAlternate: true });
    expect(report).toMatchObject({ classic: null, classicLetter: null, mapping: null, filtering: null, otherAddress: null });
    expect(report.publicAddress).toMatch(/^127\.0\.0\.99:/);
    expect(report.notes.join('\n')).toMatch(/alternate address/);
  });

  it('does not believe a server that ignores CHANGE-REQUEST', async () => {
    // Behind a port-restricted NAT, answers from the primary address get in: a naive client
    // would call it full cone.
    const report = await detect({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', ignoreChangeRequest: true });
    expect(report.classic).toBeNull();
    expect(report.filtering).toBeNull();
    expect(report.mapping).toBe('endpoint-independent');
    expect(report.notes.join('\n')).toMatch(/ignores CHANGE-REQUEST/);
  });

  it('reports progress for every test', async () => {
    const seen: string[] = [];
    await detect({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent' }, { onProgress: (p) => seen.push(`${p.test}:${p.state}`) });
    for (const t of ['mapping-I', 'mapping-II', 'mapping-III', 'filtering-I', 'filtering-II', 'filtering-III', 'hairpinning']) {
      expect(seen).toContain(`${t}:start`);
    }
    expect(seen).toContain('filtering-II:no-response');
    expect(seen).toContain('filtering-III:no-response');
    expect(seen.at(-1)).toBe('report:done');
  });

  it('is aborted by its signal', async () => {
    server.reset({ mapping: 'none', filtering: 'none', blocked: true });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('user')), 30);
    const t0 = performance.now();
    await expect(detectNat({ server: server.primary, localAddress: CLIENT_IP, signal: ac.signal })).rejects.toMatchObject({
      name: 'StunClientError',
      code: 'ABORTED',
    });
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('binding lifetime (RFC 5780 section 4.6) against a simulated NAT', () => {
  it('brackets a 300 ms binding lifetime', async () => {
    server.reset({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', bindingLifetimeMs: 300 });
    const progress: string[] = [];
    const r = await measureBindingLifetime({
      server: server.primary,
      localAddress: CLIENT_IP,
      minIntervalMs: 100,
      maxIntervalMs: 800,
      precisionMs: 60,
      parallelProbes: 3,
      ...fast,
      onProgress: (p) => progress.push(`${p.state} ${p.detail ?? ''}`),
    });
    expect(r.lifetimeSeconds).not.toBeNull();
    // The client times the silence from the Test I response, the NAT from the request: the
    // bracket is right to within a round trip.
    expect(r.lifetimeSeconds!).toBeLessThan(0.35);
    expect(r.upperBoundSeconds!).toBeGreaterThan(0.25);
    expect(r.upperBoundSeconds! - r.lifetimeSeconds!).toBeLessThanOrEqual(0.06);
    expect(r.converged).toBe(true);
    expect(r.probes.some((p) => p.alive === false)).toBe(true);
    expect(progress.some((p) => p.startsWith('probe'))).toBe(true);
    expect(progress.at(-1)).toMatch(/^done the binding expires between/);
    // Y's RESPONSE-PORT requests carried X's public port.
    expect(server.received.some((q) => q.responsePort !== undefined)).toBe(true);
  });

  it('reports the longest interval when the binding outlives it, and detectNat carries it', async () => {
    const report = await detect(
      { mapping: 'endpoint-independent', filtering: 'endpoint-independent' },
      { lifetime: { minIntervalMs: 50, maxIntervalMs: 200 } },
    );
    expect(report.bindingLifetime).toBe(0.2);
    expect(report.classic).toBe('full-cone');
  });

  it('gives up within maxTotalMs', async () => {
    server.reset({ mapping: 'endpoint-independent', filtering: 'endpoint-independent' });
    const t0 = performance.now();
    const r = await measureBindingLifetime({
      server: server.primary,
      localAddress: CLIENT_IP,
      minIntervalMs: 100,
      maxIntervalMs: 5000,
      maxTotalMs: 600,
      ...fast,
    });
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(r.reason).toMatch(/time budget/);
  });
});
