/**
 * TURN across nodes sharing one real redis-server (`nat-server --redis`): a user quota of 2 is
 * held across two nodes (one allocation on each, the third refused 486 on either, a freed slot
 * usable on the other node); a node killed with SIGKILL stops counting within its quota lease;
 * a node at `--alternate-over` sends a new Allocate to the less loaded node with 300
 * ALTERNATE-SERVER, TurnClient follows it and the allocation lives there; the workers of a
 * `--workers 2` node each count in the same ledger.
 */
import { StunClientError, TurnClient } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Node, randomNet, startNode, waitFor } from './nodes.js';
import { type RedisServer, startRedis } from './redis.js';

const NET = randomNet();
const REALM = 'cluster.test';
const PASSWORD = 'pw-cluster';
const LEASE_S = 6;

let redis: RedisServer;
/** The load spreading nodes' own Redis: the quota nodes would be redirect targets too. */
let redis2: RedisServer;
const nodes: Node[] = [];

function connect(node: Node, username: string): Promise<TurnClient> {
  return TurnClient.connect({
    server: node.server,
    username,
    password: PASSWORD,
    localAddress: `${NET}.50`,
    retransmission: { rto: 200, rc: 5, rm: 8 },
    closeTimeoutMs: 1000,
  });
}

/** The STUN error code an Allocate on `node` gets (throws when it succeeds). */
async function refusal(node: Node, username: string): Promise<number | undefined> {
  const r = await connect(node, username).catch((e: unknown) => e);
  if (r instanceof TurnClient) {
    await r.close();
    throw new Error(`an allocation on ${node.server} was granted to ${username}`);
  }
  if (r instanceof StunClientError) return r.stunErrorCode;
  throw r;
}

function nodeArgs(id: string, more: string[] = [], url = redis.url): string[] {
  const users = ['alice', 'bob', 'carol', 'dave'].flatMap((u) => ['--user', `${u}:${PASSWORD}`]);
  return ['--realm', REALM, ...users, '--redis', url, '--node-id', id, '--quota-lease', String(LEASE_S), '--allow-peer', '127.0.0.0/8', ...more];
}

beforeAll(async () => {
  [redis, redis2] = await Promise.all([startRedis(), startRedis()]);
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop({ kill: true })));
  await Promise.all([redis?.stop(), redis2?.stop()]);
});

describe('nat-server --redis: TURN quotas across nodes', () => {
  let a: Node;
  let b: Node;
  beforeAll(async () => {
    [a, b] = await Promise.all([
      startNode(`${NET}.1`, nodeArgs('node-a', ['--user-quota', '2'])),
      startNode(`${NET}.2`, nodeArgs('node-b', ['--user-quota', '2'])),
    ]);
    nodes.push(a, b);
  }, 90_000);

  it('holds a user quota of 2 across two nodes, and frees the slot of a deallocation', async () => {
    const onA = await connect(a, 'alice');
    const onB = await connect(b, 'alice');
    expect(onA.serverAddress.address).toBe(a.ip);
    expect(onB.serverAddress.address).toBe(b.ip);
    expect(await redis.command('ZCARD', 'nat:turn:quota:user:alice')).toBe(':2\r\n');
    expect(await refusal(a, 'alice')).toBe(486);
    expect(await refusal(b, 'alice')).toBe(486);
    // Another user is not affected.
    const other = await connect(a, 'bob');
    await other.close();
    await onA.close();
    const again = await connect(b, 'alice');
    expect(again.serverAddress.address).toBe(b.ip);
    expect(await refusal(a, 'alice')).toBe(486);
    // Node A counts the refusals as quota refusals in their metrics.
    expect(await a.metric('nat_refusals_total')).toMatch(/cause="user-quota"/);
    await Promise.all([onB.close(), again.close()]);
    expect(await redis.command('ZCARD', 'nat:turn:quota:user:alice')).toBe(':0\r\n');
  }, 60_000);

  it("releases a killed node's reservations within the lease", async () => {
    const held = [await connect(b, 'carol'), await connect(b, 'carol')];
    expect(await refusal(a, 'carol')).toBe(486);
    await b.stop({ kill: true });
    const killedAt = Date.now();
    // Still counted right after the crash (the lease holds them), then gone within the lease.
    expect(await refusal(a, 'carol')).toBe(486);
    const granted = await waitFor(
      'an allocation for carol on node A',
      async () => {
        const c = await connect(a, 'carol').catch(() => undefined);
        return c;
      },
      (LEASE_S + 10) * 1000,
    );
    const waited = Date.now() - killedAt;
    expect(waited).toBeLessThan((LEASE_S + 3) * 1000);
    expect(granted.serverAddress.address).toBe(a.ip);
    await granted.close();
    // Their server is gone: close() gives up on the deallocation's answer after closeTimeoutMs.
    await Promise.all(held.map((h) => h.close()));
  }, 60_000);
});

describe('nat-server --redis --alternate-over: load spreading', () => {
  let c: Node;
  let d: Node;
  beforeAll(async () => {
    [c, d] = await Promise.all([
      startNode(`${NET}.3`, nodeArgs('node-c', ['--alternate-over', '1'], redis2.url)),
      startNode(`${NET}.4`, nodeArgs('node-d', ['--alternate-over', '1'], redis2.url)),
    ]);
    nodes.push(c, d);
    // Each node publishes its load every second and reads the others': wait until C knows D.
    await waitFor('node C seeing node D', async () =>
      /nat_cluster_turn_allocations\{node="node-d"\} 0/.test(await c.metric('nat_cluster_turn')) ? true : undefined,
    );
  }, 90_000);

  it('redirects an Allocate from the node at its threshold to the less loaded node (300), where it is allocated', async () => {
    const first = await connect(c, 'dave');
    expect(first.serverAddress.address).toBe(c.ip);
    const second = await connect(c, 'dave');
    expect(second.serverAddress.address).toBe(d.ip);
    expect(second.serverAddress.port).toBe(d.port);
    expect(second.relayedAddress.address).toBe(d.ip);
    await waitFor('the allocation on node D', async () =>
      /nat_turn_allocations_active 1/.test(await d.metric('nat_turn_allocations_active')) ? true : undefined,
    );
    await Promise.all([first.close(), second.close()]);
  }, 60_000);
});

describe('nat-server --redis --workers 2: each worker a node of the shared ledger', () => {
  let w: Node;
  let e: Node;
  beforeAll(async () => {
    [w, e] = await Promise.all([
      startNode(`${NET}.5`, nodeArgs('node-w', ['--user-quota', '2', '--workers', '2'], redis2.url)),
      startNode(`${NET}.6`, nodeArgs('node-e', ['--user-quota', '2'], redis2.url)),
    ]);
    nodes.push(w, e);
  }, 90_000);

  it('holds a user quota of 2 across a node of two workers and a single-process node', async () => {
    const onW = await connect(w, 'bob'); // redirected (300) to the worker that owns bob
    expect(onW.serverAddress.address).toBe(w.ip);
    const onE = await connect(e, 'bob');
    expect(await refusal(w, 'bob')).toBe(486);
    expect(await refusal(e, 'bob')).toBe(486);
    await onE.close();
    const again = await connect(w, 'bob');
    await Promise.all([onW.close(), again.close()]);
    expect(await redis2.command('ZCARD', 'nat:turn:quota:user:bob')).toBe(':0\r\n');
  }, 60_000);
});
