/**
 * ICE with a one-address server (`nat-server --listen` only, no RFC 5780 OTHER-ADDRESS) across
 * real kernel NATs, where the connect-time NAT probe of older builds learned nothing ("mapping
 * unknown") and birthday punching never started:
 *
 * - behind a carrier NAT: NAT A sits behind a CGN (a port-restricted cone; tests/lab/pair.ts
 *   `carrierA`), so a home NAT that is open, a cone or a firewall looks like a port-restricted cone
 *   from the internet ({@link behindCarrier}). The pairs that need punching there (7 of the 35
 *   direct ones) must go direct through it; ICE_CARRIER_PAIRS=all (a developer's shortcut, a few
 *   minutes) runs all 49 pairs and prints the count of direct ones, ICE_CARRIER_PAIRS=A:B,... the
 *   pairs listed.
 * - a server with one port too (`--no-alt-port`, no other STUN or TURN server): the probe cannot
 *   tell any mapping, and the punch driver learns it from the checks (a peer-reflexive address
 *   unlike the server-reflexive one), so symmetric against port-restricted still goes direct.
 */
import { describe, expect, it } from 'vitest';
import { BEHAVIOURS, labAvailable, listLabNamespaces, type Behaviour } from './index.js';
import { behindCarrier, expectedIcePath, needsPunching, pingColumn, pool, type PingOutcome } from './one-address-pairs.js';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] one-address suite skipped: ${availability.reason}`);

/** Whether a pair took its expected path, punched where it had to. */
function verdict(o: PingOutcome, a: Behaviour, b: Behaviour): string | undefined {
  const want = expectedIcePath(a, b);
  const p = o.ping;
  if (o.code === 0 && p !== undefined && p.path === want && p.rttMs.length > 0 && (!needsPunching(a, b) || p.punched === true)) return undefined;
  return `${o.a} -> ${o.b}: want ${want}${needsPunching(a, b) ? ' (punched)' : ''}, got ${p?.path ?? 'nothing'}${p?.punched === true ? ' (punched)' : ''} (exit ${o.code})\n${o.log}`;
}

/** Columns of `pairs` (grouped by NAT B), `limit` at a time. */
async function runPairs(pairs: readonly (readonly [Behaviour, Behaviour])[], options: Parameters<typeof pingColumn>[2]): Promise<PingOutcome[]> {
  const columns = BEHAVIOURS.map((b) => ({ b, as: pairs.filter((p) => p[1] === b).map((p) => p[0]) })).filter((c) => c.as.length > 0);
  return (
    await pool(
      columns.map((c) => () => pingColumn(c.b, c.as, options)),
      3,
    )
  ).flat();
}

function expectClean(outcomes: readonly PingOutcome[]): void {
  for (const o of outcomes) expect(listLabNamespaces().filter((n) => o.namespaces.includes(n))).toEqual([]);
}

describe.skipIf(!availability.ok)('ICE with a one-address server across kernel NATs', () => {
  const env = process.env.ICE_CARRIER_PAIRS;
  const all = env === 'all';
  const listed = env === undefined || all ? undefined : env.split(',');
  const carrierPairs = BEHAVIOURS.flatMap((a) => BEHAVIOURS.map((b) => [a, b] as const)).filter(([a, b]) =>
    listed !== undefined ? listed.includes(`${a}:${b}`) : all || needsPunching(behindCarrier(a), b),
  );

  it(
    `behind a carrier NAT: ${all ? 'all 49 pairs' : listed !== undefined ? `${carrierPairs.length} listed pairs` : `the ${carrierPairs.length} pairs that need punching`} take their path`,
    { timeout: 900_000 },
    async () => {
      const t = Date.now();
      const outcomes = await runPairs(carrierPairs, { carrierA: true });
      const failures = outcomes.map((o) => verdict(o, behindCarrier(o.a), o.b)).filter((f): f is string => f !== undefined);
      const direct = outcomes.filter((o) => o.ping?.path === 'direct');
      console.log(
        `[one-address] carrier NAT on A: ${direct.length} of ${outcomes.length} pairs direct (${direct.filter((o) => o.ping?.punched === true).length} punched) in ${Date.now() - t} ms; ` +
          outcomes
            .map((o) => `${o.a}+cgn/${o.b} ${o.ping?.path ?? 'FAIL'}${o.ping?.punched === true ? '*' : ''} ${Math.round(o.ping?.connectMs ?? 0)}ms`)
            .join(', '),
      );
      expect(failures, failures.join('\n\n')).toEqual([]);
      expectClean(outcomes);
    },
  );

  it('a server with one port and no second server: the checks reveal the symmetric side and punching starts', { timeout: 180_000 }, async () => {
    const pairs = [
      ['symmetric', 'port-restricted-cone'],
      ['port-restricted-cone', 'symmetric'],
    ] as const;
    const outcomes = await runPairs(pairs, { server: { addresses: 1, altPort: false } });
    console.log(
      `[one-address] one port: ${outcomes.map((o) => `${o.a}/${o.b} ${o.ping?.path ?? 'FAIL'} learned: ${o.ping?.punch?.learned ?? '-'}`).join('; ')}`,
    );
    const failures = outcomes.map((o) => verdict(o, o.a, o.b)).filter((f): f is string => f !== undefined);
    expect(failures, failures.join('\n\n')).toEqual([]);
    for (const o of outcomes) {
      // the probe had nothing to compare with: what punched was learned from the checks
      expect(o.ping?.nat?.mapping, o.log).toBeNull();
      expect(o.ping?.punch?.learned, o.log).toMatch(/c[ao]me from 203\.0\.113\.25[34]:\d+/);
    }
    expectClean(outcomes);
  });
});
