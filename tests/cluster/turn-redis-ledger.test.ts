/**
 * @nat/redis's TURN pieces against a real redis-server, without nat-server: the quota ledger's
 * reservation is atomic across nodes (concurrent reservations from three nodes never pass a
 * limit), a node cut from Redis stops counting after its lease, and coturn's connection string
 * becomes a redis:// URL.
 */
import { RedisTurnQuota, connectRedis, redisUrlOf } from '@nat/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './nodes.js';
import { type RedisServer, startRedis } from './redis.js';

type Redis = Awaited<ReturnType<typeof connectRedis>>;

let redis: RedisServer;
const connections: Redis[] = [];
const ledgers: RedisTurnQuota[] = [];

async function ledger(nodeId: string, limits: { user: number; source: number; total: number }, leaseMs = 15_000): Promise<{ q: RedisTurnQuota; r: Redis }> {
  const r = await connectRedis(redis.url);
  connections.push(r);
  const q = new RedisTurnQuota(r, { nodeId, userQuota: limits.user, sourceQuota: limits.source, totalQuota: limits.total, leaseMs });
  ledgers.push(q);
  return { q, r };
}

beforeAll(async () => {
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  await Promise.all(ledgers.map((q) => q.close().catch(() => {})));
  for (const r of connections) r.disconnect();
  await redis?.stop();
});

describe('RedisTurnQuota', () => {
  it('never lets concurrent reservations from three nodes pass the user quota, the source share or the total', async () => {
    const limits = { user: 5, source: 8, total: 12 };
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => ledger(id, limits)));
    // 30 allocations of one user from one source, 10 per node, all at once.
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => nodes[i % 3]!.q.reserve(i, { user: 'u1', source: '198.51.100.1' })));
    expect(results.filter((r) => r === undefined)).toHaveLength(5);
    expect(results.filter((r) => r === 'user')).toHaveLength(25);
    // Other users of the same source: the source's share (8) stops them after 3 more.
    const more = await Promise.all(Array.from({ length: 6 }, (_, i) => nodes[i % 3]!.q.reserve(100 + i, { user: `v${i}`, source: '198.51.100.1' })));
    expect(more.filter((r) => r === undefined)).toHaveLength(3);
    expect(more.filter((r) => r === 'source')).toHaveLength(3);
    // Other sources: the total (12) stops them after 4 more.
    const others = await Promise.all(Array.from({ length: 8 }, (_, i) => nodes[i % 3]!.q.reserve(200 + i, { user: `w${i}`, source: `198.51.100.${10 + i}` })));
    expect(others.filter((r) => r === undefined)).toHaveLength(4);
    expect(others.filter((r) => r === 'total')).toHaveLength(4);
    expect(await redis.command('ZCARD', 'nat:turn:quota:total')).toBe(':12\r\n');
    // A release frees a slot for another node.
    const holder = results.findIndex((r) => r === undefined);
    nodes[holder % 3]!.q.release(holder);
    await waitFor('the released slot', async () => ((await redis.command('ZCARD', 'nat:turn:quota:total')) === ':11\r\n' ? true : undefined), 5000);
    expect(await nodes[(holder + 1) % 3]!.q.reserve(999, { user: 'u1', source: '198.51.100.99' })).toBeUndefined();
    for (const n of nodes) await n.q.close();
    expect(await redis.command('EXISTS', 'nat:turn:quota:total')).toBe(':0\r\n');
  }, 30_000);

  it("stops counting a node's reservations once it is cut from Redis for longer than its lease", async () => {
    const limits = { user: 2, source: 100, total: 100 };
    const alive = await ledger('alive', limits, 1500);
    const doomed = await ledger('doomed', limits, 1500);
    expect(await doomed.q.reserve(1, { user: 'x', source: 's' })).toBeUndefined();
    expect(await doomed.q.reserve(2, { user: 'x', source: 's' })).toBeUndefined();
    expect(await alive.q.reserve(1, { user: 'x', source: 's' })).toBe('user');
    // Renewals keep them past the lease while the node is connected.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await alive.q.reserve(2, { user: 'x', source: 's' })).toBe('user');
    doomed.r.disconnect(); // the node can no longer renew (as if it had died)
    const cut = Date.now();
    await waitFor('a slot for the live node', async () => ((await alive.q.reserve(3, { user: 'x', source: 's' })) === undefined ? true : undefined), 10_000);
    expect(Date.now() - cut).toBeLessThan(1500 + 2000);
    // Redis unreachable for the doomed node: it refuses (fail closed) instead of granting.
    expect(await doomed.q.reserve(4, { user: 'y', source: 's' })).toBe('unavailable');
  }, 30_000);
});

describe('redisUrlOf', () => {
  it("turns coturn's --redis-userdb string into a redis:// URL", () => {
    expect(redisUrlOf('host=127.0.0.1 port=6380 dbname=2')).toBe('redis://127.0.0.1:6380/2');
    expect(redisUrlOf('ip=10.0.0.5 dbname=3 password=p@ss connect_timeout=30')).toBe('redis://:p%40ss@10.0.0.5:6379/3');
    expect(redisUrlOf('redis://h:1/0')).toBe('redis://h:1/0');
    expect(redisUrlOf('host=::1 port=6379')).toBe('redis://[::1]:6379/0');
    expect(redisUrlOf('nonsense')).toBeUndefined();
    expect(redisUrlOf('host=a bogus=1')).toBeUndefined();
    expect(redisUrlOf('port=99999999')).toBeUndefined();
  });
});
