/**
 * @nat/client's TurnClient against @nat/server's TURN relay, in process on loopback, over UDP,
 * TCP and TLS: two clients (alice and bob) allocate, give each other permissions, and exchange
 * data through Send/Data indications and then through channels; wrong credentials fail with
 * 401; a 300 redirect is followed; closing deallocates.
 */
import { createSocket } from 'node:dgram';
import { type StunServer, startStunServer, staticUsers } from '@nat/server';
import { type TransportAddress, formatTransportAddress } from '@nat/protocol';
import { type TurnClient as TurnClientType, type TurnPeerData, TurnClient, isStunClientError } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REALM = 'client-server.test';
const USERS = { alice: 'alice-pw', bob: 'bob-pw' };

let server: StunServer;

beforeAll(async () => {
  server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tlsPort: 0,
    rateLimit: { perSecond: 0 },
    turn: { realm: REALM, auth: staticUsers(USERS), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 10_000 },
  });
});
afterAll(() => server?.close());

function listener(transport: 'udp' | 'tcp' | 'tls'): string {
  return formatTransportAddress(server.listeners.find((l) => l.transport === transport && l.role === 'PP')!.address);
}

function connect(user: keyof typeof USERS, transport: 'udp' | 'tcp' | 'tls', extra: { password?: string; server?: string } = {}): Promise<TurnClientType> {
  return TurnClient.connect({
    server: extra.server ?? listener(transport),
    username: user,
    password: extra.password ?? USERS[user],
    transport,
    tls: { rejectUnauthorized: false },
    retransmission: { rto: 100, rc: 5, rm: 4 },
    signal: AbortSignal.timeout(10_000),
  });
}

/** The next data event of `client` that satisfies `pred`, or a rejection after `ms`. */
function nextData(client: TurnClientType, pred: (m: TurnPeerData) => boolean = () => true, ms = 3000): Promise<TurnPeerData> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('data', on);
      reject(new Error(`no data within ${ms} ms`));
    }, ms);
    const on = (m: TurnPeerData): void => {
      if (!pred(m)) return;
      clearTimeout(timer);
      client.off('data', on);
      resolve(m);
    };
    client.on('data', on);
  });
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const same = (a: TransportAddress, b: TransportAddress): boolean => a.address === b.address && a.port === b.port;

describe.each(['udp', 'tcp', 'tls'] as const)('TurnClient over %s against our TURN server', (transport) => {
  it('two clients relay to each other through indications, then through channels, and deallocate on close', async () => {
    const before = server.stats().turn!.allocations;
    const alice = await connect('alice', transport);
    const bob = await connect('bob', transport);
    try {
      expect(alice.relayedAddress.address).toBe('127.0.0.1');
      expect(alice.mappedAddress).toEqual(alice.localAddress);
      expect(alice.allocation.lifetime).toBe(600);
      expect(server.stats().turn!.allocations).toBe(before + 2);

      await Promise.all([alice.createPermission(bob.relayedAddress), bob.createPermission([alice.relayedAddress.address])]);

      // Indications both ways.
      let got = nextData(bob);
      expect(alice.send(bob.relayedAddress, text('hello bob'))).toBe('indication');
      let m = await got;
      expect(str(m.data)).toBe('hello bob');
      expect(same(m.peer, alice.relayedAddress)).toBe(true);
      expect(m.channel).toBeUndefined();

      got = nextData(alice);
      expect(bob.send(alice.relayedAddress, text('hello alice'))).toBe('indication');
      m = await got;
      expect(str(m.data)).toBe('hello alice');
      expect(same(m.peer, bob.relayedAddress)).toBe(true);

      // Channels both ways; odd lengths check the stream padding.
      const [ca, cb] = await Promise.all([alice.bindChannel(bob.relayedAddress), bob.bindChannel(alice.relayedAddress)]);
      expect(ca).toBe(0x4000);
      expect(cb).toBe(0x4000);
      got = nextData(bob);
      expect(alice.send(bob.relayedAddress, text('via channel, 21 bytes'))).toBe('channel');
      m = await got;
      expect(str(m.data)).toBe('via channel, 21 bytes');
      expect(m.channel).toBe(0x4000);
      expect(same(m.peer, alice.relayedAddress)).toBe(true);

      got = nextData(alice);
      expect(bob.send(alice.relayedAddress, text('back, 7'))).toBe('channel');
      m = await got;
      expect(str(m.data)).toBe('back, 7');
      expect(m.channel).toBe(0x4000);

      // A burst, in order on a stream, complete on loopback UDP.
      const received: string[] = [];
      const all = new Promise<void>((resolve) =>
        bob.on('data', (d) => {
          received.push(str(d.data));
          if (received.length === 50) resolve();
        }),
      );
      for (let i = 0; i < 50; i++) alice.send(bob.relayedAddress, text(`packet ${i}`));
      await all;
      if (transport !== 'udp') expect(received).toEqual(Array.from({ length: 50 }, (_, i) => `packet ${i}`));
      else expect(new Set(received).size).toBe(50);
      expect(alice.stats.channelDataSent).toBeGreaterThanOrEqual(51);
      expect(alice.stats.indicationsSent).toBe(1);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
    // Refresh with LIFETIME 0 deleted both allocations (over TCP/TLS the connection's end would too).
    expect(alice.state).toBe('closed');
    await expect.poll(() => server.stats().turn!.allocations).toBe(before);
  });

  it('data sent before the permission exists is queued and delivered once it is installed', async () => {
    const alice = await connect('alice', transport);
    const bob = await connect('bob', transport);
    try {
      await bob.createPermission(alice.relayedAddress);
      const got = nextData(bob);
      expect(alice.send(bob.relayedAddress, text('early'))).toBe('queued');
      const m = await got;
      expect(str(m.data)).toBe('early');
      expect(alice.send(bob.relayedAddress, text('later'))).toBe('indication');
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it('a wrong password fails with 401 after one authenticated attempt', async () => {
    const before = server.stats().turn!;
    const error = await connect('alice', transport, { password: 'wrong' }).catch((e: unknown) => e);
    expect(isStunClientError(error, 'ERROR_RESPONSE')).toBe(true);
    expect((error as { stunErrorCode: number }).stunErrorCode).toBe(401);
    const after = server.stats().turn!;
    // Two 401s: the unauthenticated Allocate's challenge, then the refused credentials.
    expect(after.unauthorized - before.unauthorized).toBe(2);
    expect(after.allocations).toBe(before.allocations);
  });
});

describe('TurnClient against our TURN server: errors and redirection', () => {
  it('a forbidden peer fails createPermission with 403, the allocation lives on, bad input and aborts reject', async () => {
    const alice = await connect('alice', 'udp');
    try {
      const error = await alice.createPermission('10.1.2.3').catch((e: unknown) => e);
      expect(isStunClientError(error, 'ERROR_RESPONSE')).toBe(true);
      expect((error as { stunErrorCode: number }).stunErrorCode).toBe(403);
      expect(alice.state).toBe('allocated');
      await alice.createPermission('127.0.0.1');
      await expect(alice.bindChannel('not-an-address')).rejects.toMatchObject({ code: 'BAD_ADDRESS' });
      await expect(alice.createPermission('127.0.0.2', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
      const ac = new AbortController();
      const pending = alice.bindChannel('127.0.0.1:9999', { signal: ac.signal });
      ac.abort();
      await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      await alice.close();
    }
  });

  it('authenticates with SHA-256 (RFC 8489 PASSWORD-ALGORITHM) when asked', async () => {
    const alice = await TurnClient.connect({ server: listener('udp'), username: 'alice', password: 'alice-pw', passwordAlgorithm: 'SHA-256' });
    const bob = await connect('bob', 'udp');
    try {
      await alice.createPermission(bob.relayedAddress);
      await bob.bindChannel(alice.relayedAddress);
      const got = nextData(alice);
      bob.send(alice.relayedAddress, text('sha-256'));
      expect(str((await got).data)).toBe('sha-256');
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it('EVEN-PORT with a reservation, then RESERVATION-TOKEN, LIFETIME and an unsupported address family', async () => {
    const base = { server: listener('udp'), password: 'alice-pw', retransmission: { rto: 100, rc: 5, rm: 4 } } as const;
    const first = await TurnClient.connect({ ...base, username: 'alice', evenPort: { reserve: true }, lifetime: 1800, dontFragment: true });
    try {
      expect(first.relayedAddress.port % 2).toBe(0);
      expect(first.allocation.reservationToken?.length).toBe(8);
      expect(first.allocation.lifetime).toBe(1800);
      const second = await TurnClient.connect({ ...base, username: 'alice', reservationToken: first.allocation.reservationToken! });
      try {
        expect(second.relayedAddress.port).toBe(first.relayedAddress.port + 1);
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
    }
    const error = await TurnClient.connect({ ...base, username: 'alice', requestedAddressFamily: 'IPv6' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERROR_RESPONSE', stunErrorCode: 440 });
  });

  it('keeps a short-lived allocation alive with refreshes', async () => {
    const short = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      turn: { realm: REALM, auth: staticUsers(USERS), peers: { allow: ['127.0.0.0/8'] }, defaultLifetime: 2, maxLifetime: 2, unauthenticatedRate: 10_000 },
    });
    try {
      const alice = await connect('alice', 'udp', { server: formatTransportAddress(short.listeners.find((l) => l.transport === 'udp')!.address) });
      try {
        expect(alice.allocation.lifetime).toBe(2);
        const lifetimes: number[] = [];
        alice.on('refresh', (l) => lifetimes.push(l));
        await new Promise((r) => setTimeout(r, 4500)); // the server sweeps expired allocations every second
        expect(lifetimes.length).toBeGreaterThanOrEqual(3); // every second: half of 2 s
        expect(lifetimes.every((l) => l === 2)).toBe(true);
        expect(short.stats().turn!.allocations).toBe(1);
        expect(alice.state).toBe('allocated');
      } finally {
        await alice.close();
      }
      expect(short.stats().turn!.allocations).toBe(0);
    } finally {
      await short.close();
    }
  });

  it('follows 300 Try Alternate to the alternate server', async () => {
    const target = server.listeners.find((l) => l.transport === 'udp')!.address;
    const redirector = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      turn: { realm: REALM, auth: staticUsers(USERS), alternateServer: target, unauthenticatedRate: 10_000 },
    });
    try {
      const before = server.stats().turn!.allocations;
      const alice = await connect('alice', 'udp', { server: formatTransportAddress(redirector.listeners.find((l) => l.transport === 'udp')!.address) });
      try {
        expect(same(alice.serverAddress, target)).toBe(true);
        expect(server.stats().turn!.allocations).toBe(before + 1);
        expect(redirector.stats().turn!.allocations).toBe(0);
      } finally {
        await alice.close();
      }
    } finally {
      await redirector.close();
    }
  });

  it('a redirect loop ends after maxRedirects with a 300 error', async () => {
    // A server that redirects to itself: its port has to be chosen before it starts.
    let loop: StunServer | undefined;
    let self: TransportAddress | undefined;
    for (let attempt = 0; attempt < 20 && !loop; attempt++) {
      self = { family: 'IPv4', address: '127.0.0.1', port: 20_000 + Math.floor(Math.random() * 30_000) };
      loop = await startStunServer({
        listen: ['127.0.0.1'],
        port: self.port,
        altPort: null,
        tcp: false,
        rateLimit: { perSecond: 0 },
        turn: { realm: REALM, auth: staticUsers(USERS), alternateServer: self, unauthenticatedRate: 10_000 },
      }).catch(() => undefined);
    }
    expect(loop).toBeDefined();
    try {
      const error = await TurnClient.connect({ server: self!, username: 'alice', password: 'alice-pw', maxRedirects: 2 }).catch((e: unknown) => e);
      expect(isStunClientError(error, 'ERROR_RESPONSE')).toBe(true);
      expect((error as { stunErrorCode: number }).stunErrorCode).toBe(300);
      expect((error as Error).message).toMatch(/too many 300/);
    } finally {
      await loop!.close();
    }
  });

  it('an aborted connect rejects with ABORTED and leaves nothing behind', async () => {
    const ac = new AbortController();
    ac.abort();
    const error = await TurnClient.connect({ server: listener('udp'), username: 'alice', password: 'alice-pw', signal: ac.signal }).catch((e: unknown) => e);
    expect(isStunClientError(error, 'ABORTED')).toBe(true);
  });

  it('a server that is not listening fails fast with SOCKET (ICMP port unreachable on loopback)', async () => {
    const probe = createSocket('udp4');
    const port = await new Promise<number>((r) => probe.bind(0, '127.0.0.1', () => r(probe.address().port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const started = Date.now();
    const error = await TurnClient.connect({ server: `127.0.0.1:${port}`, username: 'alice', password: 'alice-pw' }).catch((e: unknown) => e);
    expect(isStunClientError(error, 'SOCKET', 'TIMEOUT')).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('the end of the TCP connection ends the allocation with a SOCKET error', async () => {
    const own = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      turn: { realm: REALM, auth: staticUsers(USERS), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 10_000 },
    });
    const alice = await connect('alice', 'tcp', { server: formatTransportAddress(own.listeners.find((l) => l.transport === 'tcp')!.address) });
    const closed = new Promise<unknown>((r) => alice.on('close', r));
    await own.close();
    const error = await closed;
    expect(isStunClientError(error, 'SOCKET')).toBe(true);
    expect(alice.state).toBe('failed');
    await expect(alice.createPermission('127.0.0.1')).rejects.toMatchObject({ code: 'SOCKET' });
    expect(alice.send(alice.relayedAddress, text('x'))).toBe('dropped');
    await alice.close();
  });

  it('messages() iterates data until the client closes', async () => {
    const alice = await connect('alice', 'udp');
    const bob = await connect('bob', 'udp');
    try {
      await Promise.all([alice.createPermission(bob.relayedAddress), bob.createPermission(alice.relayedAddress)]);
      const seen: string[] = [];
      const reader = (async () => {
        for await (const m of bob.messages()) seen.push(str(m.data));
      })();
      for (const s of ['one', 'two', 'three']) alice.send(bob.relayedAddress, text(s));
      await expect.poll(() => seen.length).toBe(3);
      await bob.close();
      await reader;
      expect(seen.sort()).toEqual(['one', 'three', 'two']);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});
