/**
 * Offers from strangers (issue 14, finding 5): throwaway keys flood a `nat listen` with offers.
 * The listener (in-process `nat`, against an in-process `nat-server` with TURN and a
 * rendezvous) must stay up and registered, answer no more sessions than its caps, open no more
 * TURN allocations than those sessions need, refuse the rest cheaply without tripping its own
 * rendezvous rate limit, and still answer a legitimate ping afterwards.
 */
import { type createSocket } from 'node:dgram';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RendezvousClient, generateIdentity, peerIdOf } from '@nat/client';
import { startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '@nat/cli';
import type { RunningServer } from '@nat/server-app';
import { capture } from '../tunnel/helpers.js';
import { PeerRuns } from './harness.js';

let dir: string;
const runs = new PeerRuns();
const clients: RendezvousClient[] = [];
const start = (args: string[]) => runs.start(args);
const startServer = (host: string) => runs.startServer(host, ['--auth-secret', 'S3CRET']);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nat-offer-flood-'));
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await runs.close();
  await rm(dir, { recursive: true, force: true });
});

/** node:dgram's CommonJS exports, which a test may wrap (syncBuiltinESMExports carries that to ESM importers). */
const dgram = createRequire(import.meta.url)('node:dgram') as { createSocket: typeof createSocket };

const allocationsCreated = (s: RunningServer): number => s.stun.stats().turn?.allocationsCreated ?? 0;

/** A throwaway key on the rendezvous that sends offers to `to` and counts what comes back per session. */
async function flooder(url: string, to: string) {
  const rv = await RendezvousClient.connect({ url, identity: generateIdentity() });
  clients.push(rv);
  const sessions: string[] = [];
  const answered = new Set<string>();
  const refused = new Map<string, string>();
  rv.on('message', (m) => {
    if (m.type === 'answer') answered.add(m.sessionId);
    if (m.type === 'bye') refused.set(m.sessionId, m.reason ?? '');
  });
  return {
    rv,
    answered,
    refused,
    offer(): void {
      const sessionId = randomBytes(16).toString('base64url');
      sessions.push(sessionId);
      rv.send({ type: 'offer', to, sessionId, ufrag: 'fl00', pwd: 'floodfloodfloodflood00', candidates: [] });
    },
    byeAll(): void {
      for (const sessionId of sessions) if (!refused.has(sessionId)) rv.send({ type: 'bye', to, sessionId });
    },
  };
}

const until = async (what: string, ok: () => boolean, ms = 20_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('nat listen under an offer flood', () => {
  it('finding 5: offers from throwaway keys are capped and refused cheaply; the listener stays registered and answers a real ping', async () => {
    const host = '127.0.14.30';
    const { url, server } = await startServer(host);
    const listen = start([
      'listen',
      '--rendezvous',
      url,
      '--identity',
      join(dir, 'listener.pem'),
      '--no-punch',
      '--json',
      '--host-address',
      host,
      '--max-sessions',
      '8',
      '--max-offers-per-peer',
      '2',
    ]);
    const ready = await listen.waitFor((l) => typeof l.id === 'string');
    const id = String(ready.id);

    // one legitimate ping first: what one session costs in TURN allocations (both sides)
    const before = allocationsCreated(server);
    const ping1 = capture();
    expect(await runCli(['ping', id, '--rendezvous', url, '--count', '1', '--no-punch', '--host-address', host], ping1.io), ping1.err()).toBe(0);
    const perSession = Math.max(1, allocationsCreated(server) - before);

    // the flood: one key sends 48 offers, six more keys 6 each (84 offers)
    const heavy = await flooder(url, id);
    const others = await Promise.all(Array.from({ length: 6 }, () => flooder(url, id)));
    const floodStart = allocationsCreated(server);
    for (let i = 0; i < 48; i++) heavy.offer();
    for (const f of others) for (let i = 0; i < 6; i++) f.offer();
    // give the listener time to answer (or not) everything it got
    await new Promise((r) => setTimeout(r, 4000));
    const all = [heavy, ...others];
    const answers = all.reduce((n, f) => n + f.answered.size, 0);
    expect(heavy.answered.size).toBeLessThanOrEqual(2);
    for (const f of others) expect(f.answered.size).toBeLessThanOrEqual(2);
    expect(answers).toBeLessThanOrEqual(8);
    expect(answers).toBeGreaterThan(0);
    // refusals are few (rate limited) and say why
    const refusals = all.reduce((n, f) => n + f.refused.size, 0);
    expect(refusals).toBeGreaterThan(0);
    expect(refusals).toBeLessThan(40);
    expect([...heavy.refused.values()].some((r) => /too many/.test(r))).toBe(true);
    // TURN: no more allocations than the answered sessions need
    expect(allocationsCreated(server) - floodStart).toBeLessThanOrEqual(8 * perSession);

    // the flooders give up; the listener is still up, still registered, and answers a real ping
    for (const f of all) f.byeAll();
    await new Promise((r) => setTimeout(r, 500));
    const ping2 = capture();
    expect(await runCli(['ping', id, '--rendezvous', url, '--count', '1', '--no-punch', '--host-address', host], ping2.io), ping2.err()).toBe(0);
    const events = listen
      .out()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.event === 'rendezvous-lost')).toEqual([]);
    let ended = false;
    void listen.done.then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(ended).toBe(false);
    listen.stop.abort();
    expect(await listen.done).toBe(0);
  }, 90_000);

  it('finding 5: nat expose refuses a peer not in --allow before opening any socket or TURN allocation', async () => {
    const host = '127.0.14.31';
    const { url, server } = await startServer(host);
    const allowed = generateIdentity();
    const expose = start([
      'expose',
      `${host}:9`,
      '--name',
      'flood-svc',
      '--allow',
      peerIdOf(allowed),
      '--rendezvous',
      url,
      '--identity',
      join(dir, 'exposer.pem'),
      '--no-punch',
      '--json',
      '--host-address',
      host,
    ]);
    const ready = await expose.waitFor((l) => l.event === 'ready');
    const before = allocationsCreated(server);
    const stranger = await flooder(url, String(ready.id));
    // count the UDP sockets this process opens meanwhile (nothing else here opens any)
    let udpSockets = 0;
    const createUdp = dgram.createSocket;
    dgram.createSocket = ((...args: Parameters<typeof createUdp>) => {
      udpSockets++;
      return createUdp(...args);
    }) as typeof createUdp;
    syncBuiltinESMExports();
    try {
      for (let i = 0; i < 20; i++) stranger.offer();
      await until('a refusal', () => stranger.refused.size > 0);
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      dgram.createSocket = createUdp;
      syncBuiltinESMExports();
    }
    expect(udpSockets).toBe(0);
    expect([...stranger.refused.values()]).toContain('not allowed');
    expect(stranger.answered.size).toBe(0);
    expect(allocationsCreated(server)).toBe(before);
    expect(stranger.refused.size).toBeLessThanOrEqual(8);
    await expose.waitFor((l) => l.event === 'refused' && l.reason === 'not-allowed');
    expose.stop.abort();
    expect(await expose.done).toBe(0);
  }, 60_000);

  it('finding 5: closed by its rendezvous for its rate (4003), nat listen waits, registers again and stays up', async () => {
    const host = '127.0.14.32';
    // a rendezvous with a tiny message rate: answering three offers trips it
    const rv = await startRendezvous({ host, port: 0, limits: { messagesPerSecond: 1, burst: 3, maxDropped: 2 } });
    runs.keep({ stop: () => rv.close() });
    const listen = start(['listen', '--rendezvous', rv.url, '--identity', join(dir, 'limited.pem'), '--no-punch', '--json', '--host-address', host]);
    const ready = await listen.waitFor((l) => typeof l.id === 'string');
    const offerers = await Promise.all(Array.from({ length: 3 }, () => flooder(rv.url, String(ready.id))));
    for (const f of offerers) f.offer();
    const lost = await listen.waitFor((l) => l.event === 'rendezvous-lost', 20_000);
    const lostAt = Date.now();
    expect(lost.code).toBe(4003);
    expect(lost.retryMs).toBeGreaterThanOrEqual(1000);
    await listen.waitFor((l) => l.event === 'rendezvous-reconnected' && l.id === ready.id, 30_000);
    expect(Date.now() - lostAt).toBeGreaterThanOrEqual(900);
    let ended = false;
    void listen.done.then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(ended).toBe(false);
    listen.stop.abort();
    expect(await listen.done).toBe(0);
  }, 60_000);
});
