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
import { type IceConnection, IceError, RendezvousClient, TurnClient, acceptPeers, connectPeer, connectionDiagnosis, generateIdentity } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPair, echo } from './peers.js';

const SECRET = 'ice-ipv6-relay-test-secret';
const scope = new MemoryRelayScope();
let stun: StunServer;
let rv: RendezvousServer;
let port6: number;
let port4: number;

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
  port4 = stun.listeners.find((l) => l.transport === 'udp' && l.address.family === 'IPv4')!.address.port;
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
    // An operator's user (not the anonymous tier, which relays toward a peer's other family only
    // once the peer proved it: see below), so that the IPv4 relay could reach bob's 127.0.0.1 too; bob
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

  // The anonymous tier relays toward a candidate only when something proves the peer that
  // signalled it is there: its rendezvous connection's own address, or (a dual-stack peer's other
  // family) an Allocate it signed from that address with the nonce the server sent there.
  it('refuses (403) anonymous relaying toward the IPv4 host of a peer registered over IPv6 that never reached this server over IPv4: nothing proves that address is its own', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const stop = acceptPeers(bob, () => {}, { hostAddresses: ['127.0.0.1'], relay: false });
    try {
      const e = await connectPeer(alice, bob.id, { hostCandidates: false, agent: { failureTimeout: 6000 } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(IceError);
      expect(connectionDiagnosis(e)?.permissionsRefused).toContainEqual(expect.objectContaining({ ip: '127.0.0.1', code: 403 }));
    } finally {
      stop();
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it('relays with anonymous credentials toward the IPv4 host of a peer registered over IPv6 once that peer allocated from its IPv4 address', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const accepted: IceConnection[] = [];
    const stop = acceptPeers(
      bob,
      (c) => {
        accepted.push(c);
        c.on('data', (d) => c.send(new Uint8Array([...d, 0x21])));
      },
      { hostAddresses: ['127.0.0.1'], relay: false },
    );
    // bob's anonymous credentials (from its IPv6 registration), used once over IPv4
    const creds = bob.iceServers.find((s) => s.username !== undefined)!;
    const proof = await TurnClient.connect({ server: `127.0.0.1:${port4}`, username: creds.username!, password: creds.credential! });
    let conn: IceConnection | undefined;
    try {
      conn = await connectPeer(alice, bob.id, { hostCandidates: false });
      expect(conn.path).toMatchObject({
        path: 'relay',
        localCandidate: { type: 'relay' },
        remoteCandidate: { type: 'host', address: { address: '127.0.0.1' } },
      });
      expect(await echo(conn, 'over IPv4')).toBe('over IPv4!');
    } finally {
      stop();
      await conn?.close();
      await Promise.all(accepted.map((c) => c.close()));
      await proof.close();
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});
