/**
 * 1:1 NAT (`startStunServer`'s `external`, nat-server's --external-ip): the server binds
 * 127.0.17.1 (and 127.0.17.2 as its RFC 5780 alternate) and tells clients 127.0.17.9 (and
 * 127.0.17.10), the "public" addresses a cloud provider would map to them. Nothing listens on
 * the public addresses here, so relaying between two allocations only works when the server
 * reaches its own public relayed addresses inside.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Attr, StunClass, StunMethod, type StunMessage, type TransportAddress, attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { TurnClient, type TurnPeerData } from '@nat/client';
import { ServerError, type StunServer, startStunServer, staticUsers } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawTurn, codeOf } from './raw.js';

const PRIVATE = '127.0.17.1';
const PRIVATE_ALT = '127.0.17.2';
const PUBLIC = '127.0.17.9';
const PUBLIC_ALT = '127.0.17.10';
const USERS = { alice: 'alice-pw', bob: 'bob-pw' };

let server: StunServer;
let probe: Socket;

beforeAll(async () => {
  server = await startStunServer({
    listen: [PRIVATE],
    alternate: [PRIVATE_ALT],
    port: 0,
    altPort: 0,
    rateLimit: { perSecond: 0 },
    external: [
      { public: PUBLIC, private: PRIVATE },
      { public: PUBLIC_ALT, private: PRIVATE_ALT },
    ],
    turn: { realm: 'external-ip.test', auth: staticUsers(USERS), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 10_000 },
  });
  probe = createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.17.20', () => r()));
});
afterAll(async () => {
  probe?.close();
  await server?.close();
});

const primary = (): TransportAddress => ({ family: 'IPv4', address: PRIVATE, port: server.endpoints[0]!.port });

function binding(to: TransportAddress): Promise<StunMessage> {
  const bytes = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, attributes: [] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no Binding answer from ${to.address}:${to.port} within 5 s`)), 5000);
    probe.once('message', (msg) => {
      clearTimeout(timer);
      resolve(decodeStunMessage(msg));
    });
    probe.send(bytes, to.port, to.address);
  });
}

function nextData(client: TurnClient, ms = 5000): Promise<TurnPeerData> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no relayed data within ${ms} ms`)), ms);
    const on = (m: TurnPeerData): void => {
      clearTimeout(timer);
      client.off('data', on);
      resolve(m);
    };
    client.on('data', on);
  });
}

describe('a server behind a 1:1 NAT (external addresses)', () => {
  it('tells the public addresses in RESPONSE-ORIGIN and OTHER-ADDRESS, with the bound ports', async () => {
    const set = server.endpoints[0]!;
    const m = await binding(primary());
    expect(m.class).toBe(StunClass.SuccessResponse);
    expect(m.get(Attr.XorMappedAddress)).toEqual({ family: 'IPv4', address: '127.0.17.20', port: probe.address().port });
    expect(m.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv4', address: PUBLIC, port: set.port });
    expect(m.get(Attr.OtherAddress)).toEqual({ family: 'IPv4', address: PUBLIC_ALT, port: set.altPort });
    // The sockets stay on the private addresses.
    expect(server.listeners.map((l) => l.address.address).sort()).toContain(PRIVATE);
    expect(server.listeners.some((l) => l.address.address === PUBLIC)).toBe(false);
  });

  it('answers an Allocate with the public address and the bound relay port in XOR-RELAYED-ADDRESS', async () => {
    const c = await RawTurn.open(primary(), 'alice', USERS.alice, '127.0.17.21');
    try {
      const r = await c.allocate();
      expect(r.class).toBe(StunClass.SuccessResponse);
      const relayed = r.get(Attr.XorRelayedAddress)!;
      expect(relayed.address).toBe(PUBLIC);
      // The port is the relay socket's, bound on the private address: a datagram sent there reaches the client.
      const peer = createSocket('udp4');
      await new Promise<void>((ok) => peer.bind(0, '127.0.17.22', () => ok()));
      try {
        expect((await c.request(StunMethod.CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.17.22', port: 1 })])).class).toBe(
          StunClass.SuccessResponse,
        );
        peer.send(Buffer.from('to the relay'), relayed.port, PRIVATE);
        const data = await c.waitFor((m) => m.method === StunMethod.Data, 5000);
        expect(Buffer.from(data!.get(Attr.Data)!).toString()).toBe('to the relay');
      } finally {
        peer.close();
      }
    } finally {
      c.close();
    }
  });

  it('never relays to its own listeners at their public addresses', async () => {
    const c = await RawTurn.open(primary(), 'bob', USERS.bob, '127.0.17.23');
    try {
      await c.allocate();
      const self = { family: 'IPv4' as const, address: PUBLIC, port: server.endpoints[0]!.port };
      expect(codeOf(await c.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, self)]))).toBe(403);
    } finally {
      c.close();
    }
  });

  it('relays between two of its allocations through their public relayed addresses', async () => {
    const connect = (user: keyof typeof USERS, local: string) =>
      TurnClient.connect({
        server: `${PRIVATE}:${server.endpoints[0]!.port}`,
        username: user,
        password: USERS[user],
        localAddress: local,
        retransmission: { rto: 200, rc: 5, rm: 8 },
        signal: AbortSignal.timeout(10_000),
      });
    const alice = await connect('alice', '127.0.17.24');
    const bob = await connect('bob', '127.0.17.25');
    try {
      expect(alice.relayedAddress.address).toBe(PUBLIC);
      expect(bob.relayedAddress.address).toBe(PUBLIC);
      await Promise.all([alice.createPermission(bob.relayedAddress), bob.createPermission(alice.relayedAddress)]);
      const got = nextData(bob);
      alice.send(bob.relayedAddress, new TextEncoder().encode('hello via the public address'));
      const m = await got;
      expect(new TextDecoder().decode(m.data)).toBe('hello via the public address');
      // Bob sees alice's relayed (public) address as the sender, the one his permission names.
      expect(m.peer).toEqual(alice.relayedAddress);
    } finally {
      await Promise.allSettled([alice.close(), bob.close()]);
    }
  });

  it('maps each family to its own public address (IPv6 too)', async () => {
    const dual = await startStunServer({
      listen: ['127.0.17.40', '::1'],
      port: 0,
      altPort: null,
      external: [
        { public: '127.0.17.41', private: '127.0.17.40' },
        { public: '2001:db8::41', private: '::1' },
      ],
      turn: { realm: 'external-ip.test', auth: staticUsers(USERS), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 10_000 },
    });
    const v6 = dual.listeners.find((l) => l.transport === 'udp' && l.address.family === 'IPv6')!.address;
    const c = await RawTurn.open(v6, 'alice', USERS.alice, '::1');
    try {
      const r = await c.allocate([attr(Attr.RequestedTransport, 17), attr(Attr.RequestedAddressFamily, 'IPv6')]);
      expect(r.get(Attr.XorRelayedAddress)).toMatchObject({ family: 'IPv6', address: '2001:db8::41' });
      const b = await new Promise<StunMessage>((resolve) => {
        c.socket.once('message', (m) => resolve(decodeStunMessage(m)));
        c.sendRaw(encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, attributes: [] }));
      });
      expect(b.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv6', address: '2001:db8::41', port: v6.port });
    } finally {
      c.close();
      await dual.close();
    }
  });

  it('refuses a mapping whose private address it does not bind, or of two families', async () => {
    const start = (external: { public: string; private: string }[]) => startStunServer({ listen: ['127.0.17.30'], port: 0, altPort: null, external });
    await expect(start([{ public: '127.0.17.31', private: '127.0.17.32' }])).rejects.toThrow(
      /external: 127\.0\.17\.31\/127\.0\.17\.32: 127\.0\.17\.32 is not an address this server binds/,
    );
    await expect(start([{ public: '2001:db8::1', private: '127.0.17.30' }])).rejects.toThrow(ServerError);
    await expect(start([{ public: '2001:db8::1', private: '127.0.17.30' }])).rejects.toThrow(/one family/);
  });
});
