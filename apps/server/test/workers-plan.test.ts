import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { shardOf, shareOf, workerConfig, workerCount } from '../src/workers/plan.js';

const config = (extra: Record<string, unknown> = {}) => resolveConfig({ listen: '203.0.113.1', realm: 'r', users: ['a:b'], ...extra }, {}, 'test');

describe('nat-server --workers: dividing one configuration', () => {
  it('divides every pool so that the workers together hold exactly the configured figure', () => {
    for (const [total, n] of [
      [3, 2],
      [64, 2],
      [10_000, 3],
      [1, 4],
    ] as const) {
      const shares = Array.from({ length: n }, (_, k) => shareOf(total, n, k));
      expect(shares.reduce((a, b) => a + b, 0)).toBe(total);
      expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
    }
    const c = config({ sourceQuota: 5, totalQuota: 7, minPort: 50000, maxPort: 50009 });
    const parts = [0, 1].map((k) => workerConfig(c, 2, k));
    expect(parts.map((p) => p.sourceQuota)).toEqual([3, 2]);
    expect(parts.map((p) => p.totalQuota)).toEqual([4, 3]);
    // Relay port slices: disjoint, covering the range.
    expect(parts.map((p) => [p.minPort, p.maxPort])).toEqual([
      [50000, 50004],
      [50005, 50009],
    ]);
    // A user's quota is not divided: users are sharded instead.
    expect(parts.map((p) => p.userQuota)).toEqual([c.userQuota, c.userQuota]);
  });

  it("shards a user's allocations to one worker, REST API expiry stripped as the quota counts it", () => {
    expect(shardOf('1700000000:alice', 4)).toBe(shardOf('alice', 4));
    expect(shardOf('1800000000:alice', 4)).toBe(shardOf('alice', 4));
    const seen = new Set(Array.from({ length: 40 }, (_, i) => shardOf(`user${i}`, 2)));
    expect(seen).toEqual(new Set([0, 1]));
  });

  it('runs one per core by default, one on a loopback-only server, the number given otherwise', () => {
    expect(workerCount(config(), 8)).toBe(8);
    expect(workerCount(config({ listen: ['127.0.0.1', '::1'] }), 8)).toBe(1);
    expect(workerCount(config({ listen: '127.0.0.1', workers: 3 }), 8)).toBe(3);
    expect(workerCount(config({ workers: 1 }), 8)).toBe(1);
    // The TLS port carrying the rendezvous too (one port for restrictive networks): one process.
    expect(workerCount(config({ tlsPort: 443, rendezvousPort: 8443 }), 8)).toBe(1);
    expect(workerCount(config({ tlsPort: 443 }), 8)).toBe(8);
    expect(() => config({ workers: 0 })).toThrow(/workers/);
  });
});
