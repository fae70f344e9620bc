/**
 * The rendezvous service's typed events, for real protocol exchanges on loopback aliases
 * 127.0.20.x: peers online and offline (with the cause), a brokered session, authentication
 * failures with their reasons, refusals with their cause and pool, rate limits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { type ServerEvent, ServerEventHub } from '../src/events.js';
import { type RendezvousServer, type StartRendezvousOptions, startRendezvous } from '../src/rendezvous/index.js';
import { type Identity, Peer, identity } from './rendezvous-helpers.js';

const running: RendezvousServer[] = [];
const peers: Peer[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.ws.terminate();
  await Promise.all(running.splice(0).map((r) => r.close()));
});

/** A server whose events are collected in `events`. */
async function server(options: Partial<StartRendezvousOptions> = {}): Promise<{ rv: RendezvousServer; events: ServerEvent[] }> {
  const hub = new ServerEventHub();
  const events: ServerEvent[] = [];
  hub.subscribe((e) => events.push(e));
  const rv = await startRendezvous({ host: '127.0.20.1', port: 0, events: hub.sink, ...options });
  running.push(rv);
  return { rv, events };
}

async function open(url: string, from: string, options: WebSocket.ClientOptions = {}): Promise<Peer> {
  const p = await Peer.open(url, { localAddress: from, ...options });
  peers.push(p);
  return p;
}

async function registered(url: string, from: string, me = identity(), options: WebSocket.ClientOptions = {}): Promise<{ peer: Peer; me: Identity }> {
  const peer = await open(url, from, options);
  expect((await peer.register(me)).type).toBe('registered');
  return { peer, me };
}

/** Waits until `events` holds a match (up to 5 s). */
async function until(events: ServerEvent[], match: (e: ServerEvent) => boolean): Promise<void> {
  for (let i = 0; i < 100 && !events.some(match); i++) await new Promise((r) => setTimeout(r, 50));
  expect(events.some(match)).toBe(true);
}

const SESSION = 'c2Vzc2lvbi1pZC0xMjM0NTY';

describe('rendezvous events', () => {
  it('peer-online, session-brokered, peer-offline (replaced, closed, server-close)', async () => {
    const { rv, events } = await server();
    const a = await registered(rv.url, '127.0.20.2');
    const b = await registered(rv.url, '127.0.20.3');
    const offer = {
      v: 1,
      type: 'offer',
      id: 'o1',
      from: a.me.id,
      to: b.me.id,
      sessionId: SESSION,
      ufrag: 'abcd',
      pwd: 'abcdefghijklmnopqrstuvwx',
      candidates: [],
    };
    a.peer.send(offer);
    await b.peer.next('offer');
    // a's key again, on a newer connection: the old one is replaced
    await registered(rv.url, '127.0.20.2', a.me);
    b.peer.ws.close();
    await until(events, (e) => e.type === 'peer-offline' && e.peer === b.me.id);
    await rv.close();
    expect(events).toEqual([
      { type: 'peer-online', peer: a.me.id, source: '127.0.20.2', anonymous: true },
      { type: 'peer-online', peer: b.me.id, source: '127.0.20.3', anonymous: true },
      { type: 'session-brokered', from: a.me.id, to: b.me.id },
      { type: 'peer-offline', peer: a.me.id, cause: 'replaced' },
      { type: 'peer-online', peer: a.me.id, source: '127.0.20.2', anonymous: true },
      { type: 'peer-offline', peer: b.me.id, cause: 'closed' },
      { type: 'peer-offline', peer: a.me.id, cause: 'server-close' },
    ]);
  });

  it('peer-offline timeout: a peer that stops answering the heartbeat', async () => {
    const { rv, events } = await server({ limits: { heartbeatIntervalMs: 200 } });
    const a = await registered(rv.url, '127.0.20.4', identity(), { autoPong: false });
    await until(events, (e) => e.type === 'peer-offline');
    expect(events).toEqual([
      { type: 'peer-online', peer: a.me.id, source: '127.0.20.4', anonymous: true },
      { type: 'peer-offline', peer: a.me.id, cause: 'timeout' },
    ]);
  });

  it('auth-failure: a bad signature (bad-integrity), no invite token (missing), a wrong one and an unlisted key (not-allowed); a listed key is not anonymous', async () => {
    const listed = identity();
    const { rv, events } = await server({ admission: { tokens: ['invite-0123'], peerKeys: [listed.id] } });
    await expect(open(rv.url, '127.0.20.5')).rejects.toThrow(/401/);
    await expect(open(rv.url, '127.0.20.5', { headers: { authorization: 'Bearer wrong-token' } })).rejects.toThrow(/401/);
    const invited = { headers: { authorization: 'Bearer invite-0123' } };
    const forger = await open(rv.url, '127.0.20.5', invited);
    const other = identity();
    expect(await forger.register(listed, { signer: other.privateKey })).toMatchObject({ type: 'error', code: 'unauthorized' });
    const stranger = await open(rv.url, '127.0.20.5', invited);
    expect(await stranger.register(other)).toMatchObject({ type: 'error', code: 'unauthorized' });
    await registered(rv.url, '127.0.20.6', listed, invited);
    expect(events).toEqual([
      { type: 'auth-failure', service: 'rendezvous', reason: 'missing', source: '127.0.20.5' },
      { type: 'auth-failure', service: 'rendezvous', reason: 'not-allowed', source: '127.0.20.5' },
      { type: 'auth-failure', service: 'rendezvous', reason: 'bad-integrity', source: '127.0.20.5' },
      { type: 'auth-failure', service: 'rendezvous', reason: 'not-allowed', source: '127.0.20.5', user: other.id },
      { type: 'peer-online', peer: listed.id, source: '127.0.20.6', anonymous: false },
    ]);
  });

  it('refused (connections share, names: taken, per key, table full) and rate-limited (requests, name claims per source)', async () => {
    const { rv, events } = await server({
      limits: { maxConnectionsPerSource: 2, maxNamesPerPeer: 1, maxNames: 2, nameClaimsPerSource: 1, messagesPerSecond: 1, burst: 3 },
    });
    const a = await registered(rv.url, '127.0.20.7');
    const b = await registered(rv.url, '127.0.20.8');
    const c = await registered(rv.url, '127.0.20.9');
    const claim = async (p: Peer, name: string): Promise<void> => {
      const from = p.inbox.length;
      p.send({ v: 1, type: 'claim-name', id: `c-${name}`, name });
      for (let i = 0; i < 100 && !p.inbox.slice(from).some((m) => (m.type === 'name' || m.type === 'error') && 'ref' in m && m.ref === `c-${name}`); i++)
        await new Promise((r) => setTimeout(r, 20));
    };
    await claim(a.peer, 'alpha'); // ok: the one claim of 127.0.20.7 in this window
    await claim(b.peer, 'alpha'); // taken
    await claim(a.peer, 'beta'); // a holds its one name
    const a2 = await registered(rv.url, '127.0.20.7');
    await claim(a2.peer, 'epsilon'); // 127.0.20.7 claimed its one name of the window
    await new Promise((r) => setTimeout(r, 1100)); // b's message bucket refills
    await claim(b.peer, 'gamma'); // ok: 2 names in all
    await claim(c.peer, 'delta'); // the table is full
    // one source over its share of WebSockets (2)
    const third = await open(rv.url, '127.0.20.7');
    expect((await third.closed).code).toBe(1013);
    // messages over the rate
    for (let i = 0; i < 6; i++) c.peer.send({ v: 1, type: 'ping', id: `p${i}` });
    await until(events, (e) => e.type === 'rate-limited' && e.what === 'requests');
    const relevant = events.filter((e) => e.type === 'refused' || e.type === 'rate-limited');
    expect(relevant).toEqual([
      { type: 'refused', service: 'rendezvous', cause: 'name', source: '127.0.20.8', user: b.me.id, pool: 'names' },
      { type: 'refused', service: 'rendezvous', cause: 'user-quota', source: '127.0.20.7', user: a.me.id, pool: 'names' },
      { type: 'rate-limited', service: 'rendezvous', source: '127.0.20.7', what: 'registrations' },
      { type: 'refused', service: 'rendezvous', cause: 'global-cap', source: '127.0.20.9', user: c.me.id, pool: 'names' },
      { type: 'refused', service: 'rendezvous', cause: 'source-share', source: '127.0.20.7', pool: 'connections' },
      { type: 'rate-limited', service: 'rendezvous', source: '127.0.20.9', what: 'requests' },
    ]);
  });
});
