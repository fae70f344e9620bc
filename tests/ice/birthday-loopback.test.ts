// Birthday punching in the socket driver, on loopback. There is no NAT here, so this tests the
// mechanics, not the odds: the NAT info travels in the offer and answer `app` payload, the roles
// come out of it, the hard side opens its extra sockets on the ICE socket's address and closes
// them once the connection is up, and the connection works throughout.
import type { IceConnectionOptions } from '@nat/client';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPair, echo } from './peers.js';

let rv: RendezvousServer;

beforeAll(async () => {
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await rv?.close();
});

const SOCKETS = 16;
const base: IceConnectionOptions = { hostAddresses: ['127.0.0.1'], iceServers: [] };

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('birthday punching in the socket driver (loopback)', () => {
  it('hard side opens its extra sockets, closes them once connected, and the connection works', async () => {
    const p = await connectPair(
      rv.url,
      { ...base, punch: { mapping: 'address-and-port-dependent', ports: 'random', privateTargets: true, plainCheckWaitMs: 0, options: { sockets: SOCKETS } } },
      { ...base, punch: { mapping: 'endpoint-independent', ports: 'preserving', privateTargets: true, plainCheckWaitMs: 0, options: { sockets: SOCKETS } } },
    );
    try {
      // the offer carried alice's NAT info
      expect(p.offers[0]!.app).toEqual({ 'nat.mapping': 'address-and-port-dependent', 'nat.ports': 'random' });
      const bob = p.accepted[0]!;
      await bob.ready;
      // alice is hard, bob easy
      await until(() => p.conn.punch?.outcome !== undefined && bob.punch?.outcome !== undefined);
      const a = p.conn.punch!;
      const b = bob.punch!;
      expect(a).toMatchObject({ role: 'hard', started: true, socketsOpened: SOCKETS });
      expect(a.probesSent).toBeGreaterThanOrEqual(1);
      expect(b).toMatchObject({ role: 'easy', started: true, socketsOpened: 0, socketsOpen: 0 });
      expect(['hit', 'stopped']).toContain(a.outcome);
      // a direct pair is up, so every extra socket is closed but the punched one, and that only when the selected pair uses it
      expect(p.conn.path!.path).toBe('direct');
      await until(() => p.conn.punch!.socketsOpen === (p.conn.path!.punched ? 1 : 0));
      if (a.outcome === 'hit') {
        // a hit on an extra socket: alice's probe reached bob's ICE socket, bob's answer came back on that socket
        expect(typeof a.hit!.socket).toBe('number');
        expect(b.hit).toMatchObject({ socket: 'primary', remote: { address: '127.0.0.1' } });
      }
      expect(await echo(p.conn, 'punched?')).toBe('punched?!');
      expect(await p.conn.ping()).toBeGreaterThan(0);
      await p.conn.close();
      expect(p.conn.punch!.socketsOpen).toBe(0);
    } finally {
      await p.cleanup();
    }
  });

  it('works the other way round: the callee is hard, opens its sockets on its ICE address and closes them', async () => {
    const p = await connectPair(
      rv.url,
      { ...base, punch: { mapping: 'endpoint-independent', ports: 'preserving', privateTargets: true, plainCheckWaitMs: 0 } },
      { ...base, punch: { mapping: 'address-dependent', ports: 'sequential', privateTargets: true, plainCheckWaitMs: 0, options: { sockets: SOCKETS } } },
    );
    try {
      const bob = p.accepted[0]!;
      await bob.ready;
      await until(() => p.conn.punch?.outcome !== undefined && bob.punch?.outcome !== undefined);
      expect(p.conn.punch).toMatchObject({ role: 'easy', started: true, socketsOpened: 0 });
      expect(bob.punch).toMatchObject({ role: 'hard', started: true, socketsOpened: SOCKETS });
      await until(() => bob.punch!.socketsOpen === (bob.path!.punched ? 1 : 0));
      // `punched` says whether the selected pair leaves from bob's ICE socket (in his answer) or a punched one
      expect(p.answers[0]!.app).toEqual({ 'nat.mapping': 'address-dependent', 'nat.ports': 'sequential' });
      const bobHostPort = Number(p.answers[0]!.candidates[0]!.split(' ')[5]);
      expect(bob.path!.punched).toBe(bob.path!.localCandidate.address.port !== bobHostPort);
      expect(await echo(p.conn, 'x')).toBe('x!');
    } finally {
      await p.cleanup();
    }
  });

  it('by default does not punch once the plain checks connect directly (as against a cone NAT that filters by address only)', async () => {
    const p = await connectPair(
      rv.url,
      { ...base, punch: { mapping: 'address-and-port-dependent', ports: 'random', privateTargets: true, options: { sockets: SOCKETS } } },
      { ...base, punch: { mapping: 'endpoint-independent', ports: 'preserving', privateTargets: true } },
    );
    try {
      const bob = p.accepted[0]!;
      await bob.ready;
      expect(p.conn.path).toMatchObject({ path: 'direct', punched: false });
      // longer than the wait (MAX_PLAIN_CHECK_WAIT_MS): punching would have started by now
      await new Promise((r) => setTimeout(r, 1200));
      expect(p.conn.punch).toMatchObject({ role: 'hard', started: false, socketsOpened: 0, probesSent: 0 });
      expect(bob.punch).toMatchObject({ role: 'easy', started: false, socketsOpened: 0, probesSent: 0 });
      expect(await echo(p.conn, 'plain ICE')).toBe('plain ICE!');
    } finally {
      await p.cleanup();
    }
  });

  it('opens no extra sockets when both sides are hard (relay role), but still sends its NAT info', async () => {
    const hard = {
      ...base,
      punch: { mapping: 'address-and-port-dependent', privateTargets: true, plainCheckWaitMs: 0, options: { sockets: SOCKETS } },
    } as const;
    const p = await connectPair(rv.url, hard, hard);
    try {
      const bob = p.accepted[0]!;
      await bob.ready;
      expect(p.offers[0]!.app).toEqual({ 'nat.mapping': 'address-and-port-dependent', 'nat.ports': 'unknown' });
      for (const r of [p.conn.punch!, bob.punch!]) expect(r).toMatchObject({ role: 'relay', started: false, socketsOpened: 0, socketsOpen: 0, probesSent: 0 });
      expect(p.conn.path).toMatchObject({ path: 'direct', punched: false });
      expect(await echo(p.conn, 'no punch')).toBe('no punch!');
    } finally {
      await p.cleanup();
    }
  });

  it('without the punch option: no app keys, no report, and a peer that punches falls back to role none', async () => {
    const p = await connectPair(rv.url, base, { ...base, punch: { mapping: 'endpoint-independent', privateTargets: true, plainCheckWaitMs: 0 } });
    try {
      const bob = p.accepted[0]!;
      await bob.ready;
      expect(p.offers[0]!.app).toBeUndefined();
      expect(p.conn.punch).toBeUndefined();
      expect(bob.punch).toMatchObject({ role: 'none', started: false, socketsOpened: 0 });
      expect(p.conn.path!.punched).toBe(false);
      expect(await echo(p.conn, 'plain')).toBe('plain!');
    } finally {
      await p.cleanup();
    }
  });
});
