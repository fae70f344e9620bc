/**
 * Proves every NAT recipe of the lab with two independent classifiers: coturn's RFC 5780
 * behaviour discovery (turnserver + turnutils_natdiscovery) and the classic RFC 3489 test
 * (stund + stun). All behaviours run concurrently, each in its own lab, which is destroyed
 * before the assertions run; nothing may be left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BEHAVIOURS,
  BEHAVIOUR_PROFILES,
  classifiersAvailable,
  createLab,
  labAvailable,
  listLabNamespaces,
  processRunning,
  runMappingLifetimeProbe,
  runNatDiscovery,
  runStunClient,
  startCoturnStun,
  startStund,
  type Behaviour,
  type Lab,
  type NatDiscoveryResult,
  type StunClientResult,
  type UdpTimeouts,
} from './index.js';

const lab = labAvailable();
const tools = classifiersAvailable();
const skipReason = !lab.ok ? lab.reason : !tools.ok ? tools.reason : undefined;
if (skipReason) console.warn(`[lab] NAT recipe tests skipped: ${skipReason}`);

interface Outcome {
  readonly publicAddress: string;
  readonly namespaces: readonly string[];
  readonly pids: readonly number[];
  readonly natDiscovery: NatDiscoveryResult;
  readonly stun: StunClientResult;
}

/** Builds a lab, runs both classifiers in it (one after the other), destroys it. */
async function classify(behaviour: Behaviour): Promise<Outcome> {
  const l = await createLab({ behaviour, name: behaviour.replace(/-/g, '').slice(0, 8) });
  try {
    const [coturn, stund] = await Promise.all([startCoturnStun(l), startStund(l)]);
    const natDiscovery = await runNatDiscovery(l);
    const stun = await runStunClient(l);
    return {
      publicAddress: l.publicAddress,
      namespaces: l.namespaces,
      pids: [coturn.process.pid, stund.process.pid],
      natDiscovery,
      stun,
    };
  } finally {
    await l.destroy();
  }
}

describe.skipIf(skipReason !== undefined)('NAT recipes, classified by coturn and by classic stun', () => {
  const outcomes = new Map<Behaviour, PromiseSettledResult<Outcome>>();

  beforeAll(async () => {
    const settled = await Promise.allSettled(BEHAVIOURS.map((b) => classify(b)));
    BEHAVIOURS.forEach((b, i) => outcomes.set(b, settled[i] as PromiseSettledResult<Outcome>));
  }, 90_000);

  const outcome = (b: Behaviour): Outcome => {
    const o = outcomes.get(b);
    if (!o) throw new Error(`no outcome for ${b}`);
    if (o.status === 'rejected') throw o.reason;
    return o.value;
  };

  describe.each(BEHAVIOURS)('%s', (behaviour) => {
    const profile = BEHAVIOUR_PROFILES[behaviour];

    it(`turnutils_natdiscovery: ${profile.mapping?.join(' or ') ?? 'no'} mapping, ${profile.filtering ?? 'no'} filtering`, () => {
      const { natDiscovery: nd, publicAddress } = outcome(behaviour);
      const context = `natdiscovery output:\n${nd.raw}`;
      expect(nd.timedOut, context).toBe(false);
      if (profile.mapping === undefined) {
        // UDP blocked: no answer at all, so no verdict and no reflexive address.
        expect(nd.nat, context).toBeUndefined();
        expect(nd.mapping, context).toBeUndefined();
        expect(nd.filtering, context).toBeUndefined();
        expect(nd.reflexive, context).toEqual([]);
        expect(nd.timeouts, context).toBeGreaterThan(0);
        return;
      }
      expect(nd.nat, context).toBe(profile.nat);
      expect(profile.mapping, context).toContain(nd.mapping);
      expect(nd.filtering, context).toBe(profile.filtering);
      expect(nd.alg, context).toBe(false);
      expect(nd.reflexive.length, context).toBeGreaterThanOrEqual(3);
      for (const r of nd.reflexive) expect(r.address, context).toBe(publicAddress);
      if (nd.mapping === 'endpoint-independent') {
        // Tests I and II of RFC 5780 section 4.3 (to two server addresses) saw one mapping.
        expect(nd.reflexive[1], context).toEqual(nd.reflexive[0]);
      } else {
        expect(nd.reflexive[1]?.port, context).not.toBe(nd.reflexive[0]?.port);
      }
    });

    it(`classic stun: ${profile.classic}`, () => {
      const { stun, publicAddress } = outcome(behaviour);
      const context = `stun output (exit ${stun.exitCode}):\n${stun.raw}`;
      expect(stun.timedOut, context).toBe(false);
      expect(stun.type, context).toBe(profile.classic);
      expect(stun.typeFromExitCode, context).toBe(profile.classic);
      expect(stun.hairpin, context).toBe(false);
      if (profile.classic === 'blocked') {
        expect(stun.mappedAddress, context).toBeUndefined();
      } else {
        expect(stun.mappedAddress?.address, context).toBe(publicAddress);
      }
      if (profile.classic === 'full-cone' || profile.classic === 'restricted-cone' || profile.classic === 'port-restricted-cone') {
        // Linux snat keeps a free source port.
        expect(stun.preservesPort, context).toBe(true);
      }
    });

    it('left nothing behind', () => {
      const o = outcome(behaviour);
      const present = new Set(listLabNamespaces());
      for (const ns of o.namespaces) expect(present.has(ns), ns).toBe(false);
      for (const pid of o.pids) expect(processRunning(pid), `pid ${pid}`).toBe(false);
    });
  });
});

describe.skipIf(skipReason !== undefined)('mapping lifetime option (conntrack UDP timeouts)', () => {
  const labs: Lab[] = [];
  afterAll(async () => {
    await Promise.all(labs.map((l) => l.destroy()));
  });

  async function probe(udpTimeouts: UdpTimeouts | undefined, seconds: number): Promise<{ alive: boolean; sysctl: string }> {
    const l = await createLab({ behaviour: 'port-restricted-cone', name: 'life', ...(udpTimeouts ? { udpTimeouts } : {}) });
    labs.push(l);
    await startCoturnStun(l);
    const sysctl = await l.exec('router', ['sysctl', '-n', 'net.netfilter.nf_conntrack_udp_timeout', 'net.netfilter.nf_conntrack_udp_timeout_stream'], {
      check: true,
    });
    const r = await runMappingLifetimeProbe(l, seconds);
    await l.destroy();
    return { alive: r.alive, sysctl: sysctl.stdout.trim().split(/\s+/).join('/') };
  }

  it('a 2 s mapping lifetime is alive after 1 s and gone after 4 s; the default one is not', async () => {
    const [short1, short4, default4] = await Promise.all([probe({ unreplied: 2, stream: 3 }, 1), probe({ unreplied: 2, stream: 3 }, 4), probe(undefined, 4)]);
    expect(short1.sysctl).toBe('2/3');
    expect(default4.sysctl).toBe('30/120');
    // A mapping that saw one request and its answer lives `unreplied` seconds (the kernel
    // moves it to `stream` only when it is still busy after 2 s).
    expect(short1.alive).toBe(true);
    expect(short4.alive).toBe(false);
    expect(default4.alive).toBe(true);
  }, 30_000);
});
