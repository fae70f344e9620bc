/**
 * Issue 14's TURN findings over real sockets on loopback, requests built by hand: quotas per
 * user (REST credentials with new expiries) and reserved ports counted (finding 6), RFC 6062
 * connections capped per allocation (finding 7), small and rate-limited error answers over UDP
 * and the server's own service ports refused as relay peers (finding 8).
 */
import { createSocket } from 'node:dgram';
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import {
  Attr,
  type AttributeEntry,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  longTermKey,
} from '@nat/protocol';
import { restApiCredentials, restApiSecrets, startStunServer, staticUsers, type StunServer } from '@nat/server';
import { run as runServer } from '@nat/server-app';
import { afterAll, describe, expect, it } from 'vitest';
import { RawTurn, codeOf } from './raw.js';

const { Allocate, ChannelBind, Connect, CreatePermission, Send } = StunMethod;
const servers: StunServer[] = [];
const cleanups: (() => void)[] = [];
afterAll(async () => {
  for (const c of cleanups) c();
  await Promise.all(servers.map((s) => s.close()));
});

async function turnServer(
  turn: Partial<Parameters<typeof startStunServer>[0]['turn']> & { auth: ReturnType<typeof staticUsers> },
  tcp = false,
): Promise<StunServer> {
  const s = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp,
    rateLimit: { perSecond: 0 },
    turn: { realm: 'limits.test', relayPorts: { min: 30000, max: 39999 }, ...turn },
  });
  servers.push(s);
  return s;
}
const udpAddr = (s: StunServer): TransportAddress => s.listeners.find((l) => l.transport === 'udp')!.address;
async function client(s: StunServer, user: string, password: string, local = '127.0.0.1'): Promise<RawTurn> {
  const c = await RawTurn.open(udpAddr(s), user, password, local);
  cleanups.push(() => c.close());
  return c;
}

/** A TURN client on one TCP connection (RFC 8489 section 6.2.2: STUN messages back to back). */
class TcpTurn {
  readonly #messages: StunMessage[] = [];
  #buffer = Buffer.alloc(0);
  nonce = '';
  readonly key: Uint8Array;
  private constructor(
    readonly socket: Socket,
    readonly user: string,
    readonly password: string,
  ) {
    this.key = longTermKey({ username: user, realm: 'limits.test', password });
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 20 && this.#buffer.length >= 20 + this.#buffer.readUInt16BE(2)) {
        const n = 20 + this.#buffer.readUInt16BE(2);
        this.#messages.push(decodeStunMessage(this.#buffer.subarray(0, n)));
        this.#buffer = this.#buffer.subarray(n);
      }
    });
    socket.on('error', () => {});
  }
  static async open(to: TransportAddress, user: string, password: string): Promise<TcpTurn> {
    const socket = tcpConnect({ host: to.address, port: to.port, localAddress: '127.0.0.1' });
    await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j));
    const t = new TcpTurn(socket, user, password);
    cleanups.push(() => socket.destroy());
    return t;
  }
  async request(method: number, attrs: AttributeEntry[]): Promise<StunMessage> {
    if (this.nonce === '') this.nonce = (await this.#send(method, attrs, false)).get(Attr.Nonce)!;
    return this.#send(method, attrs, true);
  }
  async #send(method: number, attrs: AttributeEntry[], auth: boolean): Promise<StunMessage> {
    const all = auth ? [...attrs, attr(Attr.Username, this.user), attr(Attr.Realm, 'limits.test'), attr(Attr.Nonce, this.nonce)] : attrs;
    const bytes = encodeStunMessage({ method, class: StunClass.Request, attributes: all }, auth ? { integrity: this.key } : {});
    const tid = Buffer.from(bytes.subarray(8, 20)).toString('hex');
    this.socket.write(bytes);
    const deadline = Date.now() + 5000;
    for (;;) {
      const i = this.#messages.findIndex((m) => Buffer.from(m.transactionId).toString('hex') === tid);
      if (i >= 0) return this.#messages.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no answer to method ${method}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

async function tcpListenerAt(ip: string): Promise<{ server: Server; address: TransportAddress; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s.on('error', () => {})));
  await new Promise<void>((r) => server.listen(0, ip, () => r()));
  cleanups.push(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });
  return { server, address: { family: 'IPv4', address: ip, port: (server.address() as { port: number }).port }, accepted };
}

describe('finding 6 over UDP', () => {
  it('finding 6: nine REST credentials of one user with new expiries get no more than its quota of 3 allocations', async () => {
    const secret = 'limits-secret';
    const s = await turnServer({ auth: restApiSecrets([secret]), userQuota: 3 });
    const codes: (number | undefined)[] = [];
    for (let i = 0; i < 9; i++) {
      const cred = restApiCredentials(secret, 'mallory', 600 + i);
      const c = await client(s, cred.username, cred.password);
      codes.push(codeOf(await c.allocate()));
    }
    expect(codes.filter((c) => c === undefined)).toHaveLength(3);
    expect(codes.filter((c) => c === 486)).toHaveLength(6);
    expect(s.turn!.size).toBe(3);
    const other = restApiCredentials(secret, 'alice', 600);
    expect(codeOf(await (await client(s, other.username, other.password)).allocate())).toBeUndefined();
  });

  it('finding 6: reserved ports (EVEN-PORT with R) count against the quota: one user with a quota of 2 holds one allocation and one reservation', async () => {
    const s = await turnServer({ auth: staticUsers({ u: 'u-pw' }), userQuota: 2 });
    const results: (number | undefined)[] = [];
    let token: Uint8Array | undefined;
    for (let i = 0; i < 6; i++) {
      const r = await (await client(s, 'u', 'u-pw')).allocate([attr(Attr.RequestedTransport, 17), attr(Attr.EvenPort, { reserve: true })]);
      results.push(codeOf(r));
      token ??= r.get(Attr.ReservationToken);
    }
    expect(results).toEqual([undefined, 486, 486, 486, 486, 486]);
    // the reserved port itself is usable, and its slot passes to the allocation that uses it
    const used = await (await client(s, 'u', 'u-pw')).allocate([attr(Attr.RequestedTransport, 17), attr(Attr.ReservationToken, token!)]);
    expect(codeOf(used)).toBeUndefined();
    expect(s.turn!.size).toBe(2);
  });
});

describe('finding 7 over TCP', () => {
  it('finding 7: one TCP allocation opens at most tcpConnectsPerAllocation peer connections; another client is still served', async () => {
    const s = await turnServer({ auth: staticUsers({ u: 'u-pw', v: 'v-pw' }), peers: { allow: ['127.0.0.0/8'] }, tcpConnectsPerAllocation: 4 }, true);
    const tcp = s.listeners.find((l) => l.transport === 'tcp')!.address;
    const peer = await tcpListenerAt('127.0.0.31');
    const t = await TcpTurn.open(tcp, 'u', 'u-pw');
    expect(codeOf(await t.request(Allocate, [attr(Attr.RequestedTransport, 6)]))).toBeUndefined();
    expect(codeOf(await t.request(Connect, [attr(Attr.XorPeerAddress, peer.address)]))).toBeUndefined();
    expect(codeOf(await t.request(Connect, [attr(Attr.XorPeerAddress, peer.address)]))).toBe(446); // that peer again
    const peers = await Promise.all(['127.0.0.32', '127.0.0.33', '127.0.0.34', '127.0.0.35', '127.0.0.36'].map(tcpListenerAt));
    const more: (number | undefined)[] = [];
    for (const p of peers) more.push(codeOf(await t.request(Connect, [attr(Attr.XorPeerAddress, p.address)])));
    expect(more).toEqual([undefined, undefined, undefined, 508, 508]);
    expect(s.turn!.stats.tcpRefused).toBe(2);
    const connected = peer.accepted.length + peers.reduce((n, p) => n + p.accepted.length, 0);
    expect(connected).toBeLessThanOrEqual(4);
    const other = await TcpTurn.open(tcp, 'v', 'v-pw');
    expect(codeOf(await other.request(Allocate, [attr(Attr.RequestedTransport, 6)]))).toBeUndefined();
    expect(codeOf(await other.request(Connect, [attr(Attr.XorPeerAddress, peers[4]!.address)]))).toBeUndefined();
  });

  it('finding 7: peers open at most tcpIncomingPerAllocation connections to one TCP allocation; the rest are closed', async () => {
    const s = await turnServer({ auth: staticUsers({ u: 'u-pw' }), peers: { allow: ['127.0.0.0/8'] }, tcpIncomingPerAllocation: 3 }, true);
    const t = await TcpTurn.open(s.listeners.find((l) => l.transport === 'tcp')!.address, 'u', 'u-pw');
    const r = await t.request(Allocate, [attr(Attr.RequestedTransport, 6)]);
    const relayed = r.get(Attr.XorRelayedAddress)!;
    expect(codeOf(await t.request(CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.0.41', port: 1 })]))).toBeUndefined();
    let closedByServer = 0;
    const sockets: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const socket = tcpConnect({ host: relayed.address, port: relayed.port, localAddress: '127.0.0.41' });
      socket.on('error', () => {});
      socket.on('end', () => socket.destroy());
      socket.on('close', () => closedByServer++);
      cleanups.push(() => socket.destroy());
      sockets.push(socket);
      await new Promise<void>((res) => socket.once('connect', () => res()).once('close', () => res()));
    }
    const end = Date.now() + 5000;
    while (closedByServer < 5 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    expect(closedByServer).toBe(5);
    expect(sockets.filter((x) => !x.destroyed)).toHaveLength(3);
    expect(s.turn!.stats.tcpRefused).toBe(5);
  });
});

describe('finding 8 over UDP', () => {
  it('finding 8: 400/420 answers to small UDP requests are no larger than needed and rate limited per source', async () => {
    const s = await turnServer({ auth: staticUsers({ u: 'u-pw' }), unauthenticatedRate: 20 });
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.51', () => r()));
    cleanups.push(() => sock.close());
    const answers: Buffer[] = [];
    sock.on('message', (m) => answers.push(m));
    const to = udpAddr(s);
    // one 20-byte request of a method the server does not serve
    const request = encodeStunMessage({ method: 0x00d, class: StunClass.Request, attributes: [] });
    sock.send(request, to.port, to.address);
    const until = async (cond: () => boolean, ms = 3000): Promise<void> => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    };
    await until(() => answers.length === 1);
    expect(answers[0]!.length).toBeLessThanOrEqual(28);
    expect(decodeStunMessage(answers[0]!).get(Attr.ErrorCode)?.code).toBe(400);
    // a burst of 500 from one source: at most the bucket (40) answered, plus 20/s for however long
    // the busy machine takes to process the burst
    answers.length = 0;
    const started = Date.now();
    for (let i = 0; i < 500; i++) sock.send(encodeStunMessage({ method: 0x00d, class: StunClass.Request, attributes: [] }), to.port, to.address);
    await until(() => s.turn!.stats.rateLimited + answers.length >= 500, 5000);
    const allowed = 40 + Math.ceil(((Date.now() - started) / 1000) * 20) + 1;
    await new Promise((r) => setTimeout(r, 200));
    expect(answers.length).toBeLessThanOrEqual(allowed);
    expect(answers.every((a) => a.length <= 28)).toBe(true);
    expect(s.turn!.stats.rateLimited).toBeGreaterThanOrEqual(500 - allowed - 5);
    // another source is still answered and can allocate
    const c = await client(s, 'u', 'u-pw', '127.0.0.52');
    expect(codeOf(await c.allocate())).toBeUndefined();
  });

  it("finding 8: the relay refuses the server's own listeners and rendezvous port as peers, and still relays between two of its allocations", async () => {
    const stderr = new PassThrough();
    let printed = '';
    stderr.on('data', (c: Buffer) => (printed += c.toString()));
    const running = (await runServer(
      [
        '--listen',
        '127.0.0.1',
        '--port',
        '0',
        '--no-alt-port',
        '--realm',
        'limits.test',
        '--user',
        'u:u-pw',
        '--user',
        'v:v-pw',
        '--allow-peer',
        '127.0.0.0/8',
        '--rendezvous-port',
        '0',
        '--log-level',
        'silent',
      ],
      { stdout: new PassThrough(), stderr },
    ))!;
    cleanups.push(() => void running.stop());
    const s = running.stun;
    const a = await client(s, 'u', 'u-pw');
    const b = await client(s, 'v', 'v-pw');
    const aAllocation = await a.allocate();
    expect(codeOf(aAllocation)).toBeUndefined();
    const bAllocation = await b.allocate();
    expect(codeOf(bAllocation)).toBeUndefined();
    const bRelayed = bAllocation.get(Attr.XorRelayedAddress)!;
    const tcpListener = s.listeners.find((l) => l.transport === 'tcp')!.address;
    const udpListener = udpAddr(s);
    const rendezvousPort = Number(/rendezvous \w+:\/\/127\.0\.0\.1:(\d+)/.exec(printed)?.[1]);
    expect(rendezvousPort).toBeGreaterThan(0);
    for (const [n, peer] of [
      [0x4000, udpListener],
      [0x4001, tcpListener],
    ] as const) {
      expect(codeOf(await a.request(ChannelBind, [attr(Attr.ChannelNumber, n), attr(Attr.XorPeerAddress, peer)]))).toBe(403);
    }
    // A and B relay to each other through their relayed addresses on the server's own IP
    expect(codeOf(await a.request(CreatePermission, [attr(Attr.XorPeerAddress, bRelayed)]))).toBeUndefined();
    const aRelayed = aAllocation.get(Attr.XorRelayedAddress)!;
    expect(codeOf(await b.request(CreatePermission, [attr(Attr.XorPeerAddress, aRelayed)]))).toBeUndefined();
    a.sendRaw(
      encodeStunMessage({
        method: Send,
        class: StunClass.Indication,
        attributes: [attr(Attr.XorPeerAddress, bRelayed), attr(Attr.Data, Buffer.from('hello b'))],
      }),
    );
    const data = await b.waitFor((m) => m.method === StunMethod.Data, 3000);
    expect(Buffer.from(data!.get(Attr.Data)!).toString()).toBe('hello b');
    // a Send indication to the server's own listener is dropped, not relayed
    const before = s.stats().turn!.relayedToPeer;
    a.sendRaw(
      encodeStunMessage({ method: Send, class: StunClass.Indication, attributes: [attr(Attr.XorPeerAddress, udpListener), attr(Attr.Data, Buffer.from('x'))] }),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(s.stats().turn!.relayedToPeer).toBe(before);
    // RFC 6062: a Connect to the rendezvous port (the expose control's too) is refused; one to a TCP peer is not
    const t = await TcpTurn.open(tcpListener, 'u', 'u-pw');
    expect(codeOf(await t.request(Allocate, [attr(Attr.RequestedTransport, 6)]))).toBeUndefined();
    expect(codeOf(await t.request(Connect, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.0.1', port: rendezvousPort })]))).toBe(403);
    const peer = await tcpListenerAt('127.0.0.61');
    expect(codeOf(await t.request(Connect, [attr(Attr.XorPeerAddress, peer.address)]))).toBeUndefined();
  });
});
