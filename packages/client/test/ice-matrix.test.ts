/**
 * The NAT matrix in the simulator: two sans-I/O ICE agents behind every pair of classic NAT
 * types connect deterministically in virtual time, directly whenever the NATs allow it and
 * through the relay otherwise, and exchange data; again with 20% loss and jitter.
 */
import { describe, expect, it } from 'vitest';
import type { FilteringBehaviour, MappingBehaviour } from './sim/network.js';
import { NAT_TYPES, type NatType, type ScenarioResult, expectedPath, runScenario } from './sim/scenario.js';

function printMatrix(title: string, results: Map<string, ScenarioResult>): void {
  const w = 22;
  const lines = [title, `${'A \\ B'.padEnd(20)}${NAT_TYPES.map((t) => t.padEnd(w)).join('')}`];
  for (const a of NAT_TYPES) {
    let line = a.padEnd(20);
    for (const b of NAT_TYPES) {
      const r = results.get(`${a}|${b}`)!;
      const cell = r.connected
        ? `${r.path} ${Math.round(r.connectMs!)}ms${r.directMs !== undefined && r.directMs !== r.connectMs ? `>${Math.round(r.directMs)}` : ''}`
        : 'FAILED';
      line += cell.padEnd(w);
    }
    lines.push(line);
  }
  lines.push('(cell: final path, virtual ms until both sides had a selected pair, >ms of the direct upgrade when it came later)');
  console.log(lines.join('\n'));
}

function runMatrix(title: string, options: Parameters<typeof runScenario>[2]): Map<string, ScenarioResult> {
  const results = new Map<string, ScenarioResult>();
  for (const a of NAT_TYPES) for (const b of NAT_TYPES) results.set(`${a}|${b}`, runScenario(a, b, options));
  printMatrix(title, results);
  return results;
}

function checkMatrix(results: Map<string, ScenarioResult>): void {
  for (const a of NAT_TYPES) {
    for (const b of NAT_TYPES) {
      const r = results.get(`${a}|${b}`)!;
      const what = `${a} vs ${b}`;
      expect(r.connected, what).toBe(true);
      expect(r.dataOk, what).toBe(true);
      expect(r.path, what).toBe(expectedPath(a, b));
    }
  }
}

describe('ICE NAT matrix (simulated)', () => {
  it('connects every pair of NAT types, direct where the NATs allow it, relayed otherwise', () => {
    const start = performance.now();
    const results = runMatrix('NAT matrix, no loss, 10 ms one-way delay:', { seed: 1 });
    checkMatrix(results);
    // relay first: a working path fast, the direct upgrade within 2 s
    for (const r of results.values()) {
      expect(r.connectMs!).toBeLessThan(1000);
      if (r.path === 'direct') expect(r.directMs!).toBeLessThan(2000);
    }
    console.log(`matrix ran in ${Math.round(performance.now() - start)} ms of real time`);
  });

  it('is deterministic: the same seed gives the same result', () => {
    const x = runScenario('symmetric', 'restricted', { seed: 42, link: { loss: 0.2, jitter: 30 } });
    const y = runScenario('symmetric', 'restricted', { seed: 42, link: { loss: 0.2, jitter: 30 } });
    expect(y).toEqual(x);
  });

  it('connects every pair with 20% loss and 0-30 ms jitter', () => {
    const results = runMatrix('NAT matrix, 20% loss each way, 10 ms delay + 0-30 ms jitter:', {
      seed: 2024,
      link: { loss: 0.2, delay: 10, jitter: 30 },
      limit: 20_000,
    });
    checkMatrix(results);
  });

  it('connects across every RFC 4787 mapping x filtering combination against a port-restricted and a full-cone peer', () => {
    const mappings: MappingBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'];
    const filterings: FilteringBehaviour[] = ['endpoint-independent', 'address-dependent', 'address-and-port-dependent'];
    const lines: string[] = ['RFC 4787 combinations (mapping/filtering) vs port-restricted and full-cone:'];
    for (const other of ['port-restricted', 'full-cone'] as NatType[]) {
      for (const mapping of mappings) {
        for (const filtering of filterings) {
          for (const portAllocation of ['preserving', 'random'] as const) {
            const label = `${mapping}/${filtering}/${portAllocation}`;
            const r = runScenario({ label, config: { mapping, filtering, portAllocation } }, other, { seed: 3 });
            expect(r.connected, label).toBe(true);
            expect(r.dataOk, label).toBe(true);
            // with a destination-independent mapping on both sides, a direct path always exists
            if (mapping === 'endpoint-independent') expect(r.path, label).toBe('direct');
            lines.push(`  ${label.padEnd(60)} vs ${other.padEnd(16)} ${r.path} ${Math.round(r.connectMs!)}ms`);
          }
        }
      }
    }
    console.log(lines.join('\n'));
  });
});
