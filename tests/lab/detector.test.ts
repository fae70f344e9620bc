/**
 * The project's own STUN server and NAT detector in the real-kernel NAT lab, checked against the
 * independent classifiers (whose recipes recipes.test.ts proves):
 *
 * - `nat detect --json` (our client), run in the client namespace against `nat-server` (ours) in
 *   the server namespace, must classify every behaviour right, classic and RFC 5780 both;
 * - coturn's `turnutils_natdiscovery` and Debian's classic `stun` client against OUR server must
 *   reach the same verdicts (interop: independent clients, our server);
 * - `nat detect` against coturn's STUN server must agree too (interop: our client, independent
 *   server).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BEHAVIOURS,
  BEHAVIOUR_PROFILES,
  classifiersAvailable,
  createLab,
  labAvailable,
  listLabNamespaces,
  runNatDiscovery,
  runStunClient,
  startCoturnStun,
  waitForUdpListeners,
  type Behaviour,
  type ClassicNatType,
  type NatDiscoveryResult,
  type StunClientResult,
} from './index.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = `${repo}apps/server/dist/main.js`;
const NAT_CLI = `${repo}apps/cli/dist/main.js`;

const lab = labAvailable();
const tools = classifiersAvailable();
const skipReason = !lab.ok ? lab.reason : !tools.ok ? tools.reason : undefined;
if (skipReason) console.warn(`[lab] detector tests skipped: ${skipReason}`);

/** The lab's classic names as `nat detect --json` spells them. */
const OUR_CLASSIC: Record<ClassicNatType, string> = {
  open: 'open-internet',
  'full-cone': 'full-cone',
  'restricted-cone': 'restricted-cone',
  'port-restricted-cone': 'port-restricted-cone',
  symmetric: 'symmetric',
  'symmetric-udp-firewall': 'symmetric-udp-firewall',
  blocked: 'udp-blocked',
};

interface DetectJson {
  classic: string;
  classicLetter: string;
  mapping: string | null;
  filtering: string | null;
  publicAddress: string | null;
  portPreservation: boolean | null;
  alg: boolean | null;
  durationMs: number;
}

interface Outcome {
  publicAddress: string;
  ours: DetectJson;
  oursExit: number;
  oursAgainstCoturn: DetectJson;
  natDiscoveryAgainstOurs: NatDiscoveryResult;
  stunAgainstOurs: StunClientResult;
  namespaces: readonly string[];
}

async function runDetect(l: Awaited<ReturnType<typeof createLab>>, server: string): Promise<{ json: DetectJson; code: number }> {
  const r = await l.exec('client', [process.execPath, NAT_CLI, 'detect', '--server', server, '--json'], { timeoutMs: 30_000 });
  let json: DetectJson;
  try {
    json = JSON.parse(r.stdout) as DetectJson;
  } catch {
    throw new Error(`nat detect printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { json, code: r.code ?? -1 };
}

async function measure(behaviour: Behaviour): Promise<Outcome> {
  const l = await createLab({ behaviour, name: `d${behaviour.replace(/-/g, '').slice(0, 7)}` });
  try {
    const ours = l.spawn('server', [
      process.execPath,
      NAT_SERVER,
      '--listen',
      l.server.primary,
      '--alternate',
      l.server.secondary,
      '--port',
      '3478',
      '--alt-port',
      '3479',
      '--rate-limit',
      '0',
      '--log-level',
      'warn',
    ]);
    const v4 = (address: string, port: number) => ({ family: 'IPv4' as const, address, port });
    await waitForUdpListeners(
      l,
      l.server.ns,
      [v4(l.server.primary, 3478), v4(l.server.primary, 3479), v4(l.server.secondary, 3478), v4(l.server.secondary, 3479)],
      ours,
      // Five labs start at once, each nat-server with a worker per core (the default): 15 Node
      // processes starting together on a busy 2-core machine take longer than one each.
      40_000,
    );
    const coturn = await startCoturnStun(l, { port: 3490 });
    const detected = await runDetect(l, `${l.server.primary}:3478`);
    await l.flushMappings();
    const natDiscoveryAgainstOurs = await runNatDiscovery(l, { server: v4(l.server.primary, 3478) });
    await l.flushMappings();
    const stunAgainstOurs = await runStunClient(l, { server: v4(l.server.primary, 3478) });
    await l.flushMappings();
    const againstCoturn = await runDetect(l, `${coturn.primary.address}:${coturn.primary.port}`);
    return {
      publicAddress: l.publicAddress,
      ours: detected.json,
      oursExit: detected.code,
      oursAgainstCoturn: againstCoturn.json,
      natDiscoveryAgainstOurs,
      stunAgainstOurs,
      namespaces: l.namespaces,
    };
  } finally {
    await l.destroy();
  }
}

describe.skipIf(skipReason !== undefined)('our detector and server in the NAT lab', () => {
  const outcomes = new Map<Behaviour, PromiseSettledResult<Outcome>>();
  beforeAll(async () => {
    const settled = await Promise.allSettled(BEHAVIOURS.map((b) => measure(b)));
    BEHAVIOURS.forEach((b, i) => outcomes.set(b, settled[i]!));
  }, 120_000);
  afterAll(() => {
    // this process's detector labs only: other test files build labs at the same time
    const left = listLabNamespaces().filter((n) => n.startsWith(`natlab-${process.pid}-`));
    expect(left.filter((n) => n.includes(`-d`))).toEqual([]);
  });

  const outcome = (b: Behaviour): Outcome => {
    const o = outcomes.get(b)!;
    if (o.status === 'rejected') throw o.reason;
    return o.value;
  };

  describe.each(BEHAVIOURS)('%s', (behaviour) => {
    const profile = BEHAVIOUR_PROFILES[behaviour];

    it(`nat detect against nat-server: ${OUR_CLASSIC[profile.classic]}`, () => {
      const { ours, oursExit, publicAddress } = outcome(behaviour);
      const context = JSON.stringify(ours);
      // exit 3: no test got an answer (the verdict is udp-blocked); 0: a report with answers
      expect(oursExit, context).toBe(profile.mapping === undefined ? 3 : 0);
      expect(ours.classic, context).toBe(OUR_CLASSIC[profile.classic]);
      if (profile.mapping === undefined) {
        expect(ours.mapping, context).toBeNull();
        expect(ours.filtering, context).toBeNull();
        expect(ours.publicAddress, context).toBeNull();
      } else {
        expect(profile.mapping, context).toContain(ours.mapping);
        expect(ours.filtering, context).toBe(profile.filtering);
        expect(ours.publicAddress?.split(':')[0], context).toBe(publicAddress);
        expect(ours.alg, context).toBe(false);
      }
    });

    it('nat detect against coturn agrees', () => {
      const { oursAgainstCoturn: c } = outcome(behaviour);
      const context = JSON.stringify(c);
      expect(c.classic, context).toBe(OUR_CLASSIC[profile.classic]);
      if (profile.mapping !== undefined) {
        expect(profile.mapping, context).toContain(c.mapping);
        expect(c.filtering, context).toBe(profile.filtering);
      }
    });

    it('coturn turnutils_natdiscovery against nat-server agrees', () => {
      const { natDiscoveryAgainstOurs: nd } = outcome(behaviour);
      const context = nd.raw;
      if (profile.mapping === undefined) {
        expect(nd.mapping, context).toBeUndefined();
        return;
      }
      expect(nd.nat, context).toBe(profile.nat);
      expect(profile.mapping, context).toContain(nd.mapping);
      expect(nd.filtering, context).toBe(profile.filtering);
    });

    it('classic stun client against nat-server agrees', () => {
      const { stunAgainstOurs: s } = outcome(behaviour);
      expect(s.type, s.raw).toBe(profile.classic);
    });
  });
});
