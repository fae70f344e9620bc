/**
 * The TURN server's error paths and security properties, over real sockets on loopback, with
 * requests built by hand (see raw.ts): RFC 8656's error codes, the peer policy (no relaying to
 * loopback/private/link-local/multicast, nor to their IPv4-mapped forms), quotas, isolation of
 * one client's allocation from another, and hostile packets leaving sessions untouched.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Attr, StunClass, StunMethod, type TransportAddress, attr, encodeChannelData, encodeStunMessage, verifyMessageIntegrity } from '@nat/protocol';
import { startStunServer, staticUsers, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawTurn, codeOf } from './raw.js';

const { Allocate, Refresh, CreatePermission, ChannelBind, Send } = StunMethod;
let strict: StunServer; // default peer policy
let open: StunServer; // loopback peers allowed, small quotas
const clients: RawTurn[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  const auth = staticUsers({ alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' });
  strict = await startStunServer({
    listen: ['127.0.0.1', '::1'],
    port: 0,
    altPort: null,
    tcp: false,
    rateLimit: { perSecond: 0 },
    turn: { realm: 'strict.test', auth, relayPorts: { min: 40000, max: 44999 } },
  });
  open = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    rateLimit: { perSecond: 0 },
    turn: {
      realm: 'open.test',
      auth,
      peers: { allow: ['127.0.0.0/8'] },
      userQuota: 2,
      totalQuota: 4,
      maxPermissions: 3,
      relayPorts: { min: 45000, max: 49999 },
    },
  });
});
afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sockets) s.close();
  await Promise.all([strict.close(), open.close()]);
});

const addr = (s: StunServer, family: 'IPv4' | 'IPv6' = 'IPv4'): TransportAddress =>
  s.listeners.find((l) => l.transport === 'udp' && l.address.family === family)!.address;
async function client(s: StunServer, user = 'alice', family: 'IPv4' | 'IPv6' = 'IPv4', password = `${user}-pw`): Promise<RawTurn> {
  const c = await RawTurn.open(addr(s, family), user, password, family === 'IPv6' ? '::1' : '127.0.0.1');
  clients.push(c);
  return c;
}
async function peer(ip = '127.0.0.7'): Promise<{ socket: Socket; address: TransportAddress; received: Buffer[] }> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, ip, () => r()));
  sockets.push(socket);
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  return { socket, address: { family: 'IPv4', address: ip, port: socket.address().port }, received };
}
const until = async (cond: () => boolean, ms = 1500): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

describe('authentication', () => {
  it('refuses an unauthenticated Allocate with 401, REALM and a nonce with the RFC 8489 cookie', async () => {
    const c = await client(strict);
    const r = await c.request(Allocate, [attr(Attr.RequestedTransport, 17)], { auth: false });
    expect(codeOf(r)).toBe(401);
    expect(r.get(Attr.Realm)).toBe('strict.test');
    expect(r.get(Attr.Nonce)).toMatch(/^obMatJos2/);
    expect(strict.turn!.size).toBe(0);
  });

  it('refuses a wrong password with 401 and signs nothing', async () => {
    const c = await client(strict, 'alice', 'IPv4', 'wrong');
    const r = await c.allocate();
    expect(codeOf(r)).toBe(401);
    expect(r.integrityOffset).toBe(-1);
  });

  it('answers 438 with a fresh nonce when the nonce is not valid for this client', async () => {
    const c = await client(strict);
    await c.learnNonce(Allocate, [attr(Attr.RequestedTransport, 17)]);
    c.nonce = `${c.nonce.slice(0, -4)}AAAA`;
    const r = await c.request(Allocate, [attr(Attr.RequestedTransport, 17)]);
    expect(codeOf(r)).toBe(438);
    expect(r.get(Attr.Nonce)).toBeDefined();
  });

  it('refuses a PASSWORD-ALGORITHMS echo that differs from the offer (RFC 8489 bid-down protection)', async () => {
    const c = await client(strict);
    const challenge = await c.learnNonce(Allocate, [attr(Attr.RequestedTransport, 17)]);
    expect(challenge.get(Attr.PasswordAlgorithms)?.map((p) => p.algorithm)).toEqual([1, 2]);
    const onlyMd5 = attr(Attr.PasswordAlgorithms, [{ algorithm: 1, parameters: new Uint8Array(0) }]);
    expect(
      codeOf(
        await c.request(Allocate, [attr(Attr.RequestedTransport, 17), onlyMd5, attr(Attr.PasswordAlgorithm, { algorithm: 1, parameters: new Uint8Array(0) })]),
      ),
    ).toBe(400);
    // the exact echo with MD5 is accepted
    const echo = attr(
      Attr.PasswordAlgorithms,
      [1, 2].map((algorithm) => ({ algorithm, parameters: new Uint8Array(0) })),
    );
    const ok = await c.request(Allocate, [
      attr(Attr.RequestedTransport, 17),
      echo,
      attr(Attr.PasswordAlgorithm, { algorithm: 1, parameters: new Uint8Array(0) }),
    ]);
    expect(ok.class).toBe(StunClass.SuccessResponse);
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });

  it('allocates with the right password and signs the response with the long-term key', async () => {
    const c = await client(strict);
    const r = await c.allocate();
    expect(r.class).toBe(StunClass.SuccessResponse);
    expect(verifyMessageIntegrity(r, c.key)).toBe(true);
    expect(r.get(Attr.XorRelayedAddress)?.address).toBe('127.0.0.1');
    expect(r.get(Attr.Lifetime)).toBe(600);
    expect(r.get(Attr.XorMappedAddress)).toEqual(c.local);
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });
});

describe('RFC 8656 error codes', () => {
  it('400 without REQUESTED-TRANSPORT, 442 for an unsupported protocol, 400 for a TCP relay over UDP (RFC 6062 section 5.1)', async () => {
    const c = await client(strict);
    expect(codeOf(await c.allocate([attr(Attr.Lifetime, 600)]))).toBe(400);
    expect(codeOf(await c.request(Allocate, [attr(Attr.RequestedTransport, 132)]))).toBe(442);
    expect(codeOf(await c.request(Allocate, [attr(Attr.RequestedTransport, 6)]))).toBe(400);
  });

  it('437 for a second Allocate on the same 5-tuple, the same answer for a retransmission', async () => {
    const c = await client(strict);
    await c.learnNonce(Allocate, [attr(Attr.RequestedTransport, 17)]);
    const tid = crypto.getRandomValues(new Uint8Array(12));
    const first = await c.request(Allocate, [attr(Attr.RequestedTransport, 17)], { transactionId: tid });
    const again = await c.request(Allocate, [attr(Attr.RequestedTransport, 17)], { transactionId: tid });
    expect(first.class).toBe(StunClass.SuccessResponse);
    expect(Buffer.from(again.bytes)).toEqual(Buffer.from(first.bytes));
    expect(codeOf(await c.request(Allocate, [attr(Attr.RequestedTransport, 17)]))).toBe(437);
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });

  it('437 for Refresh, CreatePermission and ChannelBind without an allocation', async () => {
    const c = await client(strict);
    await c.learnNonce(Refresh, []);
    expect(codeOf(await c.request(Refresh, []))).toBe(437);
    expect(codeOf(await c.request(CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '198.51.100.1', port: 1 })]))).toBe(437);
  });

  it('440 when the relay has no address of the requested family', async () => {
    const c = await client(open);
    expect(codeOf(await c.allocate([attr(Attr.RequestedTransport, 17), attr(Attr.RequestedAddressFamily, 'IPv6')]))).toBe(440);
  });

  it('443 for a peer of the other family, 400 for bad channel numbers and double bindings', async () => {
    const c = await client(strict);
    await c.allocate();
    const v6peer = { family: 'IPv6' as const, address: '2001:db8::1', port: 9 };
    expect(codeOf(await c.request(CreatePermission, [attr(Attr.XorPeerAddress, v6peer)]))).toBe(443);
    const p = { family: 'IPv4' as const, address: '198.51.100.1', port: 9 };
    expect(codeOf(await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x3fff), attr(Attr.XorPeerAddress, p)]))).toBe(400);
    expect(codeOf(await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x8000), attr(Attr.XorPeerAddress, p)]))).toBe(400);
    expect((await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, p)])).class).toBe(StunClass.SuccessResponse);
    // the same channel to another peer, and the same peer on another channel
    expect(codeOf(await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, { ...p, port: 10 })]))).toBe(400);
    expect(codeOf(await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x4001), attr(Attr.XorPeerAddress, p)]))).toBe(400);
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });

  it('420 with UNKNOWN-ATTRIBUTES for an unknown comprehension-required attribute', async () => {
    const c = await client(strict);
    await c.learnNonce(Allocate, [attr(Attr.RequestedTransport, 17)]);
    const { rawAttribute } = await import('@nat/protocol');
    const r = await c.request(Allocate, [attr(Attr.RequestedTransport, 17), rawAttribute(0x7123, new Uint8Array(4))]);
    expect(codeOf(r)).toBe(420);
    expect(r.get(Attr.UnknownAttributes)).toEqual([0x7123]);
  });
});

describe('peer policy', () => {
  const forbidden = ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.1.1', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255'];
  it.each(forbidden)('refuses %s with 403 by default', async (ip) => {
    const c = await client(strict);
    await c.allocate();
    expect(codeOf(await c.request(CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: ip, port: 1 })]))).toBe(403);
    expect(codeOf(await c.request(ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, { family: 'IPv4', address: ip, port: 1 })]))).toBe(
      403,
    );
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });

  it.each(['::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::a00:1', '2002:c0a8:101::1', 'fe80::1', 'fc00::1', 'ff02::1'])(
    'refuses IPv6 peer %s (loopback, private and their IPv4-mapped/NAT64/6to4 forms) with 403',
    async (ip) => {
      const c = await client(strict, 'bob', 'IPv6');
      const r = await c.allocate([attr(Attr.RequestedTransport, 17), attr(Attr.RequestedAddressFamily, 'IPv6')]);
      expect(r.get(Attr.XorRelayedAddress)?.family).toBe('IPv6');
      expect(codeOf(await c.request(CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv6', address: ip, port: 1 })]))).toBe(403);
      await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
    },
  );

  it('allows a public peer', async () => {
    const c = await client(strict);
    await c.allocate();
    expect((await c.request(CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '198.51.100.9', port: 1 })])).class).toBe(
      StunClass.SuccessResponse,
    );
    await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });
});

describe('quotas', () => {
  it('486 beyond the per-user quota, 508 beyond the total, 508 beyond the permission cap', async () => {
    expect(open.turn!.size).toBe(0);
    const a1 = await client(open, 'carol');
    const a2 = await client(open, 'carol');
    const a3 = await client(open, 'carol');
    expect((await a1.allocate()).class).toBe(StunClass.SuccessResponse);
    expect((await a2.allocate()).class).toBe(StunClass.SuccessResponse);
    expect(codeOf(await a3.allocate())).toBe(486);
    const b1 = await client(open, 'bob');
    const b2 = await client(open, 'bob');
    const b3 = await client(open, 'alice'); // alice is under her own quota
    expect((await b1.allocate()).class).toBe(StunClass.SuccessResponse);
    expect((await b2.allocate()).class).toBe(StunClass.SuccessResponse);
    expect(codeOf(await b3.allocate())).toBe(508); // 4 allocations in total
    const peers = ['127.0.1.1', '127.0.1.2', '127.0.1.3', '127.0.1.4'].map((address) =>
      attr(Attr.XorPeerAddress, { family: 'IPv4' as const, address, port: 1 }),
    );
    expect(codeOf(await a1.request(CreatePermission, peers))).toBe(508);
    expect((await a1.request(CreatePermission, peers.slice(0, 3))).class).toBe(StunClass.SuccessResponse);
    for (const c of [a1, a2, b1, b2]) await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
    expect(open.turn!.size).toBe(0);
  });
});

describe('isolation and hostile input', () => {
  it('relays only for the 5-tuple that owns the allocation, and only from permitted peers', async () => {
    const alice = await client(open, 'alice');
    const mallory = await client(open, 'bob');
    const p = await peer();
    const stranger = await peer('127.0.0.8'); // permissions are per IP (RFC 8656 section 9): another IP
    const relayed = (await alice.allocate()).get(Attr.XorRelayedAddress)!;
    await alice.request(ChannelBind, [attr(Attr.ChannelNumber, 0x4001), attr(Attr.XorPeerAddress, p.address)]);
    // alice -> peer through her channel works
    alice.sendRaw(encodeChannelData(0x4001, Buffer.from('from alice')));
    expect(await until(() => p.received.some((m) => m.toString() === 'from alice'))).toBe(true);
    // mallory (another 5-tuple, no allocation) uses alice's channel number and a Send indication
    mallory.sendRaw(encodeChannelData(0x4001, Buffer.from('from mallory')));
    mallory.sendRaw(
      encodeStunMessage({
        method: Send,
        class: StunClass.Indication,
        attributes: [attr(Attr.XorPeerAddress, p.address), attr(Attr.Data, Buffer.from('indication from mallory'))],
      }),
    );
    // a peer without permission writes to alice's relayed address
    stranger.socket.send(Buffer.from('unsolicited'), relayed.port, relayed.address);
    // hostile junk at the server port and at the relay port
    for (let i = 0; i < 500; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(1 + (i % 120)));
      mallory.sendRaw(junk);
      stranger.socket.send(junk, relayed.port, relayed.address);
    }
    // the permitted peer still reaches alice, on her channel (resent: the junk may have filled
    // the kernel's socket buffers, where a datagram can be lost)
    const resend = setInterval(() => p.socket.send(Buffer.from('to alice'), relayed.port, relayed.address), 50);
    const got = await until(() => alice.inbox.some((m) => m.subarray(4).toString() === 'to alice'), 3000);
    clearInterval(resend);
    expect(got).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(p.received.map(String)).toEqual(['from alice']);
    expect(alice.inbox.some((m) => m.includes(Buffer.from('unsolicited')))).toBe(false);
    // alice's session still works after all that
    alice.sendRaw(encodeChannelData(0x4001, Buffer.from('still here')));
    expect(await until(() => p.received.some((m) => m.toString() === 'still here'))).toBe(true);
    await alice.request(Refresh, [attr(Attr.Lifetime, 0)]);
  });

  it('deletes the allocation and its relay socket on Refresh with LIFETIME 0', async () => {
    const c = await client(open, 'alice');
    const relayed = (await c.allocate()).get(Attr.XorRelayedAddress)!;
    const before = open.turn!.size;
    const r = await c.request(Refresh, [attr(Attr.Lifetime, 0)]);
    expect(r.get(Attr.Lifetime)).toBe(0);
    expect(open.turn!.size).toBe(before - 1);
    // the port is free again
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(relayed.port, relayed.address, () => resolve());
    });
    s.close();
  });
});
