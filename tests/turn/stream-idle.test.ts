// Issue 14 finding 8 (first part): the 30 s idle timeout of the TCP/TLS listeners cut a
// TURN-over-TCP control connection (deleting its allocation) and a bound RFC 6062 data
// connection. Now only connections that carry nothing are cut; an allocation's own lifetime
// governs its connection. The idle timeout is shortened to 2 s here.
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';
import { TurnClient } from '@nat/client';
import {
  Attr,
  type AttributeEntry,
  StunClass,
  StunMethod,
  type StunMessage,
  StunStreamFramer,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  longTermKey,
} from '@nat/protocol';
import { type StunServer, startStunServer, staticUsers } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const IDLE_MS = 2000;
let server: StunServer;
let port: number;
let echo: Server;
let echoPort: number;

beforeAll(async () => {
  server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: true,
    idleTimeoutMs: IDLE_MS,
    turn: { realm: 'idle.test', auth: staticUsers({ alice: 'pw' }), peers: { allow: ['127.0.0.0/8'] } },
  });
  port = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.12', () => r()));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(async () => {
  await server.close();
  await new Promise<void>((r) => echo.close(() => r()));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A hand-made TURN client on one TCP connection (RFC 6062 needs what @nat/client does not do). */
class StreamTurn {
  readonly inbox: StunMessage[] = [];
  readonly framer = new StunStreamFramer();
  closed = false;
  realm = '';
  nonce = '';
  key: Uint8Array = new Uint8Array(0);
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.framer.push(new Uint8Array(d));
      for (let f = this.framer.next(); f; f = this.framer.next()) this.inbox.push(decodeStunMessage(f.bytes));
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
  static open(): Promise<StreamTurn> {
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.13' }, () => resolve(new StreamTurn(s)));
      s.once('error', reject);
    });
  }
  async request(method: StunMethod, attributes: AttributeEntry[], auth = true): Promise<StunMessage> {
    const all = auth ? [...attributes, attr(Attr.Username, 'alice'), attr(Attr.Realm, this.realm), attr(Attr.Nonce, this.nonce)] : attributes;
    const bytes = encodeStunMessage({ method, class: StunClass.Request, attributes: all }, auth ? { integrity: this.key } : {});
    const tid = Buffer.from(bytes.subarray(8, 20)).toString('hex');
    this.socket.write(bytes);
    const deadline = Date.now() + 5000;
    for (;;) {
      const i = this.inbox.findIndex((m) => Buffer.from(m.transactionId).toString('hex') === tid);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no answer to method ${method}`);
      await sleep(10);
    }
  }
  /** Learns realm and nonce from a 401 (credentials as `from`'s when given). */
  async login(from?: StreamTurn): Promise<void> {
    if (from) return void Object.assign(this, { realm: from.realm, nonce: from.nonce, key: from.key });
    const r = await this.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 6)], false);
    this.realm = r.get(Attr.Realm)!;
    this.nonce = r.get(Attr.Nonce)!;
    this.key = longTermKey({ username: 'alice', realm: this.realm, password: 'pw' });
  }
}

describe('TCP listener idle rule', () => {
  it('finding 8: a TURN-over-TCP allocation and a bound RFC 6062 data connection outlive the idle timeout; a bare connection is cut', async () => {
    // A TURN-over-TCP allocation (UDP relay) held by @nat/client.
    const client = await TurnClient.connect({ server: `127.0.0.1:${port}`, transport: 'tcp', username: 'alice', password: 'pw' });
    let lost: unknown = null;
    client.on('close', (e) => (lost = e ?? 'closed'));
    // An RFC 6062 TCP allocation with a bound data connection to a TCP echo peer.
    const control = await StreamTurn.open();
    await control.login();
    const allocated = await control.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 6)]);
    expect(allocated.class).toBe(StunClass.SuccessResponse);
    const connected = await control.request(StunMethod.Connect, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.0.12', port: echoPort })]);
    expect(connected.class).toBe(StunClass.SuccessResponse);
    const data = await StreamTurn.open();
    await data.login(control);
    const bound = await data.request(StunMethod.ConnectionBind, [attr(Attr.ConnectionId, connected.get(Attr.ConnectionId)!)]);
    expect(bound.class).toBe(StunClass.SuccessResponse);
    data.socket.removeAllListeners('data');
    // Connections that carry nothing: one silent, one that only asked for a Binding.
    const bare = await StreamTurn.open();
    const binder = await StreamTurn.open();
    expect((await binder.request(StunMethod.Binding, [], false)).class).toBe(StunClass.SuccessResponse);
    try {
      await sleep(IDLE_MS * 2.5);
      expect(bare.closed).toBe(true);
      expect(binder.closed).toBe(true);
      expect(control.closed).toBe(false);
      expect(data.closed).toBe(false);
      expect(lost).toBe(null);
      // Both allocations still work: the data connection relays to the peer and back ...
      const echoed = new Promise<string>((resolve) => data.socket.once('data', (d: Buffer) => resolve(d.toString())));
      data.socket.write('still here');
      expect(await echoed).toBe('still here');
      // ... and the @nat/client allocation answers a request.
      await client.createPermission('127.0.0.12');
      expect(server.turn!.size).toBe(2);
    } finally {
      await client.close();
      for (const s of [control, data, bare, binder]) s.socket.destroy();
    }
  }, 30_000);
});
