/**
 * @nat/redis's rendezvous cluster and relay scope mirror against a real redis-server: two
 * rendezvous services (in-process, each its own node with its own Redis connections) and
 * @nat/client's RendezvousClient as peers. Peers on different nodes exchange an offer and an
 * answer byte for byte; an absent peer is answered peer-offline; a registration on node B closes
 * the same key's connection on node A with 4000; a name claimed on one node is refused on the
 * other with the local refusal's text; the relay scope written on A is read on B; and with Redis
 * gone a node keeps serving its own peers, answers the others peer-offline, and recovers.
 */
import { RendezvousClient, type RendezvousInbound, generateIdentity, peerIdOf } from '@nat/client';
import { type RedisNode, openRedisNode } from '@nat/redis';
import { MemoryRelayScope, type NameLimits, type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { next as nextOfType } from '../rendezvous/inbox.js';
import { type RedisServer, startRedis } from './redis.js';

const SESSION = 'Y2x1c3Rlci1zZXNzaW9uLTAx';
const PWD = 'abcdefghijklmnopqrstuvwx';

let redis: RedisServer;
const nodes: { node: RedisNode; rv: RendezvousServer; scope: MemoryRelayScope }[] = [];
const clients: RendezvousClient[] = [];

async function startNode(nodeId: string, names: NameLimits = { maxNamesPerPeer: 2 }, prefix = 'nat:', maxInFlight = 1000): Promise<(typeof nodes)[number]> {
  const node = await openRedisNode(redis.url, { nodeId, names, prefix, maxInFlight, commandTimeoutMs: 5000 });
  const scope = new MemoryRelayScope();
  const rv = await startRendezvous({ host: '127.0.0.1', port: 0, cluster: node.rendezvous, scope: node.relayScope(scope), limits: names });
  node.rendezvous.setUrl(rv.url);
  const n = { node, rv, scope };
  nodes.push(n);
  return n;
}

async function client(rv: RendezvousServer, identity = generateIdentity()): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ url: rv.url, identity, heartbeatIntervalMs: 0 });
  clients.push(c);
  return c;
}

/** Polls `ok` (bounded) until it holds. */
async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let a: (typeof nodes)[number];
let b: (typeof nodes)[number];

beforeAll(async () => {
  redis = await startRedis();
  a = await startNode('node-a');
  b = await startNode('node-b');
});

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const n of nodes) {
    await n.rv.close();
    await n.node.close();
  }
  await redis?.stop();
});

describe('the rendezvous across two nodes sharing Redis', () => {
  it('relays an offer and an answer between peers on different nodes, unchanged, and records presence per node', async () => {
    const alice = await client(a.rv);
    const bob = await client(b.rv);
    expect(await redis.command('GET', `nat:peer:${bob.id}`)).toContain(b.node.rendezvous.instance);
    const bobIn = bob.messages();
    const aliceIn = alice.messages();
    const candidate = 'candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host';
    alice.send({ type: 'offer', to: bob.id, sessionId: SESSION, ufrag: 'alic', pwd: PWD, candidates: [candidate] });
    const offer = await next(bobIn, 'offer');
    expect(offer).toMatchObject({ from: alice.id, to: bob.id, sessionId: SESSION, ufrag: 'alic', pwd: PWD, candidates: [candidate] });
    bob.send({ type: 'answer', to: alice.id, sessionId: SESSION, ufrag: 'bobb', pwd: PWD, candidates: [] });
    expect(await next(aliceIn, 'answer')).toMatchObject({ from: bob.id, to: alice.id, ufrag: 'bobb' });
    expect(a.rv.stats().cluster).toMatchObject({ forwarded: 1, storeUp: 1 });
    await until('node A to count both nodes (heartbeat: 1 s)', () => a.rv.stats().cluster?.nodes === 2);
    expect(b.rv.stats().cluster).toMatchObject({ forwarded: 1, delivered: 1 });
    // the relay scope: alice signalled a candidate on her own address (127.0.0.1) through node A;
    // node B's TURN (which reads b.scope) lets bob relay there
    await until('the scope on node B', () => b.scope.lookup(bob.id, '127.0.0.1', Date.now()) === 'source');
    expect(a.scope.lookup(bob.id, '127.0.0.1', Date.now())).toBe('source');
  });

  it('mirrors the relay scope of one signalling message in one PUBLISH (INFO commandstats), applied whole on the other node', async () => {
    const alice = await client(a.rv);
    const bob = await client(b.rv);
    const bobIn = bob.messages();
    const publishes = async (): Promise<number> => Number(/calls=(\d+)/.exec((await redis.info('commandstats')).get('cmdstat_publish') ?? '')?.[1] ?? 0);
    const applied = (): number => b.node.relayScope(b.scope).counts.applied;
    const offer = async (candidates: string[]): Promise<number> => {
      const [before, appliedBefore] = [await publishes(), applied()];
      alice.send({ type: 'offer', to: bob.id, sessionId: SESSION, ufrag: 'alic', pwd: PWD, candidates });
      await next(bobIn, 'offer');
      await until('node B to apply every scope write of the offer', () => applied() === appliedBefore + candidates.length);
      return (await publishes()) - before;
    };
    // the forward alone (one EVALSHA, whose PUBLISH to node B's channel counts as a call)
    const forwardOnly = await offer([]);
    // host on alice's own address (source add), a relay address (relay add), a srflx elsewhere (claim)
    const withThree = await offer([
      'candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host',
      'candidate:2 1 udp 16777215 192.0.2.10 50000 typ relay raddr 0.0.0.0 rport 0',
      'candidate:3 1 udp 1694498815 198.51.100.5 40001 typ srflx raddr 127.0.0.1 rport 40000',
    ]);
    expect(forwardOnly).toBeGreaterThanOrEqual(1);
    expect(withThree - forwardOnly).toBe(1);
    expect(b.scope.lookup(bob.id, '192.0.2.10', Date.now())).toBe('relay');
    expect(b.scope.lookup(bob.id, '127.0.0.1', Date.now())).toBe('source');
    expect(b.scope.lookup(bob.id, '198.51.100.5', Date.now())).toBeUndefined(); // a claim only, until sighted
  });

  it('answers peer-offline for a peer on no node, at once', async () => {
    const alice = await client(a.rv);
    const inbox = alice.messages();
    const t0 = performance.now();
    const ref = alice.send({ type: 'offer', to: peerIdOf(generateIdentity()), sessionId: SESSION, ufrag: 'alic', pwd: PWD, candidates: [] });
    expect(await next(inbox, 'error')).toMatchObject({ code: 'peer-offline', ref });
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('newest wins across nodes: registering on B closes the connection on A with 4000, and messages reach B', async () => {
    const identity = generateIdentity();
    const onA = await client(a.rv, identity);
    const onB = await client(b.rv, identity);
    expect((await onA.closed).code).toBe(4000);
    expect(onB.closeInfo).toBeUndefined();
    const sender = await client(a.rv);
    const inbox = onB.messages();
    sender.send({ type: 'offer', to: onB.id, sessionId: SESSION, ufrag: 'send', pwd: PWD, candidates: [] });
    expect(await next(inbox, 'offer')).toMatchObject({ from: sender.id });
    expect(a.rv.stats().replaced).toBeGreaterThanOrEqual(1);
  });

  it('after a loss of Redis a node re-registers its peers, except one that registered on another node meanwhile', async () => {
    const peer = peerIdOf(generateIdentity()); // no connection: the store itself
    const seqA = await a.node.rendezvous.register(peer);
    const seqB = await b.node.rendezvous.register(peer);
    expect(seqB).toBeGreaterThan(seqA!);
    expect(await a.node.rendezvous.register(peer, true)).toBe(0);
    expect(await redis.command('GET', `nat:peer:${peer}`)).toContain(`${b.node.rendezvous.instance} ${seqB}`);
    expect(await b.node.rendezvous.register(peer, true)).toBeGreaterThan(seqB!);
    b.node.rendezvous.leave(peer, seqB!); // the leave of an older registration: the newer one stays
    expect(await b.node.rendezvous.online(peer)).toBe(true); // runs after the leave, on the same connection
  });

  it('a name claimed on one node is refused on the other, with the limits of one node', async () => {
    const aliceKey = generateIdentity();
    const alice = await client(a.rv, aliceKey);
    const bob = await client(b.rv);
    expect(await alice.claimName('shop')).toEqual({ peerId: alice.id, online: true });
    const taken = await bob.claimName('shop').catch((e: unknown) => e as Error);
    expect(taken).toBeInstanceOf(Error);
    expect((taken as Error).message).toMatch(/the name shop belongs to another peer/);
    expect(await bob.resolveName('shop')).toEqual({ peerId: alice.id, online: true });
    // two names per key (maxNamesPerPeer 2), counted across nodes: the key moves to node B
    await alice.claimName('shop-two');
    const aliceOnB = await client(b.rv, aliceKey);
    await alice.closed;
    const third = await aliceOnB.claimName('shop-three').catch((e: unknown) => e as Error);
    expect((third as Error).message).toMatch(/this key holds the most names it may/);
    expect(await aliceOnB.claimName('shop')).toEqual({ peerId: aliceOnB.id, online: true });
    await aliceOnB.close();
    await until('alice offline', async () => (await bob.resolveName('shop')).online === false);
    expect(await bob.resolveName('shop')).toEqual({ peerId: aliceOnB.id, online: false });
  });

  it('names: the per-source window, the global cap and the TTL after the owner leaves hold across nodes', async () => {
    const limits = { maxNamesPerPeer: 4, nameClaimsPerSource: 2, maxNames: 3, nameTtlMs: 1500 };
    const c = await startNode('node-c', limits, 'ttl:');
    const d = await startNode('node-d', { ...limits, nameClaimsPerSource: 10 }, 'ttl:');
    const one = await client(c.rv);
    const two = await client(d.rv);
    await one.claimName('n-1');
    await one.claimName('n-2');
    // node C allows 2 claims per source per window: the third from 127.0.0.1 is refused there
    expect(((await one.claimName('n-3').catch((e: unknown) => e)) as Error).message).toMatch(/too many names claimed from this address lately/);
    // node D allows more per source, but the table holds 3 names in all, counted over both nodes
    await two.claimName('n-3');
    expect(((await two.claimName('n-4').catch((e: unknown) => e)) as Error).message).toMatch(/the name table of this rendezvous is full/);
    // the owner of n-1 leaves: after the TTL the name is free for another key, on the other node
    await one.close();
    await until('n-1 released', async () => (await two.claimName('n-1').catch(() => undefined)) !== undefined, 10_000);
    expect(await two.resolveName('n-1')).toEqual({ peerId: two.id, online: true });
    expect(await redis.command('GET', 'ttl:name:n-1')).toContain(two.id);
  }, 20_000);

  it('while Redis is slow, forwards beyond maxInFlight are refused at once (rate-limited), not queued', async () => {
    const e = await startNode('node-e', {}, 'busy:', 8);
    const f = await startNode('node-f', {}, 'busy:');
    const alice = await client(e.rv);
    const bob = await client(f.rv);
    const errors: number[] = [];
    const offers: number[] = [];
    alice.on('message', (m) => void (m.type === 'error' && m.code === 'rate-limited' && errors.push(performance.now())));
    bob.on('message', (m) => void (m.type === 'offer' && offers.push(performance.now())));
    expect(await redis.command('CLIENT', 'PAUSE', '1500', 'ALL')).toBe('+OK\r\n');
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) alice.send({ type: 'offer', to: bob.id, sessionId: SESSION, ufrag: 'slow', pwd: PWD, candidates: [] });
    await until('every offer answered or delivered', () => errors.length + offers.length === 20, 10_000);
    // at most 8 waited for Redis (the heartbeat takes its share); the others were refused at once, before Redis answered anything
    expect(offers.length).toBeLessThanOrEqual(8);
    expect(errors.length).toBeGreaterThanOrEqual(12);
    expect(Math.max(...errors) - t0).toBeLessThan(Math.min(...offers) - t0);
    expect(e.rv.stats().cluster?.forwardFailures).toBe(errors.length);
  }, 20_000);

  it('without Redis a node serves its own peers, answers others peer-offline, and recovers when Redis is back', async () => {
    const local1 = await client(a.rv);
    const local2 = await client(a.rv);
    const remote = await client(b.rv);
    const port = redis.port;
    await redis.stop({ kill: true });
    await until('node A to notice', () => a.rv.stats().cluster?.storeUp === 0);
    const in2 = local2.messages();
    local1.send({ type: 'offer', to: local2.id, sessionId: SESSION, ufrag: 'loca', pwd: PWD, candidates: [] });
    expect(await next(in2, 'offer')).toMatchObject({ from: local1.id });
    const in1 = local1.messages();
    const ref = local1.send({ type: 'offer', to: remote.id, sessionId: SESSION, ufrag: 'loca', pwd: PWD, candidates: [] });
    expect(await next(in1, 'error')).toMatchObject({ code: 'peer-offline', ref });
    redis = await startRedis({ port }); // empty: every node registers its peers again
    await until('node A back', () => a.rv.stats().cluster?.storeUp === 1, 15_000);
    await until('presence again', async () => (await redis.command('GET', `nat:peer:${remote.id}`)).includes(b.node.rendezvous.instance), 15_000);
    const inRemote = remote.messages();
    local1.send({ type: 'offer', to: remote.id, sessionId: SESSION, ufrag: 'back', pwd: PWD, candidates: [] });
    expect(await next(inRemote, 'offer')).toMatchObject({ from: local1.id, ufrag: 'back' });
    expect(a.rv.stats().cluster?.storeLosses).toBe(1);
  }, 40_000);
});

/** The next message of `type` (5 s: Redis round trips on a busy machine). */
function next<T extends RendezvousInbound['type']>(iter: AsyncIterator<RendezvousInbound>, type: T): Promise<Extract<RendezvousInbound, { type: T }>> {
  return nextOfType(iter, type, 5000);
}
