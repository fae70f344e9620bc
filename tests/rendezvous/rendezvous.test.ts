/**
 * End to end on loopback: @nat/client's RendezvousClient against @nat/server's rendezvous
 * service, with the server's TURN: two peers register, exchange an offer, an answer, trickled
 * candidates and end-of-candidates; a call to an absent peer is answered peer-offline at once;
 * a second registration of the same identity replaces the first; and the TURN credentials the
 * rendezvous handed out allocate a relay through @nat/client's TurnClient.
 */
import { RendezvousClient, TurnClient, generateIdentity, peerIdOf } from '@nat/client';
import { type RendezvousServer, type StunServer, anonymousRelayTier, startRendezvous, startStunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { next } from './inbox.js';

const SECRET = 'e2e-shared-secret';
/** TURN's anonymous tier relays only toward what the rendezvous recorded of each peer's sessions. */
const tier = anonymousRelayTier({ secrets: [SECRET], ownRelayIps: ['127.0.0.1'] });
const REALM = 'e2e.rendezvous';
const SESSION = 'ZTJlLXNlc3Npb24tMDAwMDE';
const PWD = 'abcdefghijklmnopqrstuvwx';

let stun: StunServer;
let rv: RendezvousServer;
let turnPort = 0;

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: { realm: REALM, ...tier.turn() },
  });
  turnPort = stun.listeners.find((l) => l.transport === 'udp')!.address.port;
  rv = await startRendezvous({
    host: '127.0.0.1',
    port: 0,
    ...tier.rendezvous([`stun:127.0.0.1:${turnPort}`, `turn:127.0.0.1:${turnPort}`], 300),
  });
});

afterAll(async () => {
  await rv?.close();
  await stun?.close();
});

describe('rendezvous end to end', () => {
  it('two peers register and exchange offer, answer and trickled candidates', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const bobIn = bob.messages();
      const aliceIn = alice.messages();
      alice.send({
        type: 'offer',
        to: bob.id,
        sessionId: SESSION,
        ufrag: 'alic',
        pwd: PWD,
        candidates: ['candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host'],
      });
      const offer = await next(bobIn, 'offer');
      expect(offer).toMatchObject({ from: alice.id, to: bob.id, ufrag: 'alic' });
      bob.send({ type: 'answer', to: offer.from, sessionId: offer.sessionId, ufrag: 'bobb', pwd: PWD, candidates: [] });
      bob.send({ type: 'candidate', to: offer.from, sessionId: offer.sessionId, candidate: 'candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host' });
      bob.send({ type: 'end-of-candidates', to: offer.from, sessionId: offer.sessionId });
      expect(await next(aliceIn, 'answer')).toMatchObject({ from: bob.id, ufrag: 'bobb' });
      expect(await next(aliceIn, 'candidate')).toMatchObject({ candidate: 'candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host' });
      expect(await next(aliceIn, 'end-of-candidates')).toMatchObject({ from: bob.id });
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  it('answers peer-offline within 100 ms for an absent peer', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const inbox = alice.messages();
      const t0 = performance.now();
      const ref = alice.send({ type: 'offer', to: peerIdOf(generateIdentity()), sessionId: SESSION, ufrag: 'alic', pwd: PWD, candidates: [] });
      const err = await next(inbox, 'error');
      expect(performance.now() - t0).toBeLessThan(100);
      expect(err).toMatchObject({ code: 'peer-offline', ref });
    } finally {
      await alice.close();
    }
  });

  it('a second connection of the same identity replaces the first', async () => {
    const identity = generateIdentity();
    const first = await RendezvousClient.connect({ url: rv.url, identity });
    const second = await RendezvousClient.connect({ url: rv.url, identity });
    try {
      expect((await first.closed).code).toBe(4000);
      expect(second.id).toBe(first.id);
      expect(await second.ping()).toBeLessThan(1000);
    } finally {
      await second.close();
    }
  });

  it('the TURN credentials handed out at registration allocate a relay', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      expect(alice.iceServers[0]).toEqual({ urls: [`stun:127.0.0.1:${turnPort}`] });
      const turn = alice.iceServers[1]!;
      expect(turn.username).toMatch(new RegExp(`^\\d+:~${alice.id}$`));
      const relay = await TurnClient.connect({ server: `127.0.0.1:${turnPort}`, username: turn.username!, password: turn.credential! });
      try {
        expect(relay.relayedAddress).toMatchObject({ family: 'IPv4', address: '127.0.0.1' });
      } finally {
        await relay.close();
      }
    } finally {
      await alice.close();
    }
  });
});
