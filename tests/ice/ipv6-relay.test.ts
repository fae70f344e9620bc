// ICE over IPv6 on loopback: the rendezvous and TURN server listen on ::1 (and TURN on 127.0.0.1
// too, relaying from both), peers register over IPv6, and a relay-only peer reaches a peer that
// has only an IPv6 host candidate through the IPv6 relayed address of its dual-stack allocation
// (RFC 8656 ADDITIONAL-ADDRESS-FAMILY). With both families on offer, the IPv6 relay is chosen
// (RFC 8421: IPv6 preferred).
import {
  type RendezvousServer,
  type StunServer,
  MemoryRelayScope,
  RelayTiers,
  anonymousRelayUsers,
  anyOf,
  restApiSecrets,
  startRendezvous,
  startStunServer,
  staticUsers,
} from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPair, echo } from './peers.js';

const SECRET = 'ice-ipv6-relay-test-secret';
const scope = new MemoryRelayScope();
let stun: StunServer;
let rv: RendezvousServer;
let port6: number;

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1', '::1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: {
      realm: 'ice6.test',
      auth: anyOf(restApiSecrets([SECRET]), anonymousRelayUsers([SECRET]), staticUsers({ operator: 'operator-password' })),
      tiers: new RelayTiers({ scope, ownRelayIps: ['127.0.0.1', '::1'] }),
      peers: { allow: ['127.0.0.0/8', '::1/128'] },
    },
  });
  port6 = stun.listeners.find((l) => l.transport === 'udp' && l.address.family === 'IPv6')!.address.port;
  rv = await startRendezvous({ host: '::1', port: 0, scope, turn: { urls: [`turn:[::1]:${port6}`], secret: SECRET, ttl: 300 } });
});

afterAll(async () => {
  await rv?.close();
  await stun?.close();
});

describe('ICE over IPv6 (loopback)', () => {
  it('relays a relay-only peer to a peer with only an IPv6 host candidate, through an IPv6 relayed address', async () => {
    expect(rv.url).toContain('[::1]');
    const p = await connectPair(rv.url, { hostCandidates: false }, { hostAddresses: ['::1'], relay: false });
    try {
      expect(p.conn.path).toMatchObject({
        path: 'relay',
        localCandidate: { type: 'relay', address: { family: 'IPv6', address: '::1' } },
        remoteCandidate: { type: 'host', address: { family: 'IPv6', address: '::1' } },
      });
      expect(await echo(p.conn, 'over IPv6')).toBe('over IPv6!');
      // both relayed addresses were offered (IPv4 and IPv6); bob saw the IPv6 one
      expect(p.conn.diagnosis.local.relay).toBe(2);
      expect((await p.accepted[0]!.ready).remoteCandidate).toMatchObject({ type: 'relay', address: { family: 'IPv6', address: '::1' } });
    } finally {
      await p.cleanup();
    }
  });

  it('prefers the IPv6 relayed address when the peer has host candidates of both families', async () => {
    // An operator's user (not the anonymous tier, which relays only toward the family a peer
    // registered from: see below), so that the IPv4 relay could reach bob's 127.0.0.1 too; bob
    // lists 127.0.0.1 first, so only the relays' own local preference puts the IPv6 pair first.
    const iceServers = [{ urls: `turn:[::1]:${port6}`, username: 'operator', credential: 'operator-password' }];
    const p = await connectPair(rv.url, { hostCandidates: false, iceServers }, { hostAddresses: ['127.0.0.1', '::1'], relay: false });
    try {
      expect(p.conn.path).toMatchObject({ path: 'relay', localCandidate: { type: 'relay', address: { family: 'IPv6' } } });
      expect(p.conn.diagnosis.permissionsRefused).toEqual([]);
      expect(await echo(p.conn, 'preferred')).toBe('preferred!');
    } finally {
      await p.cleanup();
    }
  });

  // Server limitation (packages/server/src/rendezvous/scope.ts, recordSignalledCandidates): the
  // anonymous tier records only candidates on the sender's own source address, so a peer that
  // registered over IPv6 can never be relayed to on its IPv4 addresses (nor an IPv4-registered
  // one on IPv6): CreatePermission gets 403 "peer address not signalled in this credential's
  // sessions". Expected to fail until the server records a dual-stack peer's other family;
  // drop `.fails` then.
  it.fails('relays with anonymous credentials toward the IPv4 host of a peer registered over IPv6', async () => {
    const p = await connectPair(rv.url, { hostCandidates: false }, { hostAddresses: ['127.0.0.1'], relay: false });
    try {
      expect(p.conn.path).toMatchObject({ path: 'relay', remoteCandidate: { address: { address: '127.0.0.1' } } });
    } finally {
      await p.cleanup();
    }
  });
});
