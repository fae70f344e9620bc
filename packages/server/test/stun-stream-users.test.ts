// Per-user shares of the STUN/TURN TCP/TLS slots (issue 14: "shares per source address and per
// user on every pool"): once a connection carries an allocation, it counts against its user
// (REST credentials of one user with different expiries are one user); the connection over
// `streams.perUser` is closed with a refused event (cause user-quota), other users are served.
import { type Server, type Socket, createServer, connect as tcpConnect } from 'node:net';
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
import { afterEach, describe, expect, it } from 'vitest';
import { type ServerEvent, ServerEventHub, type StunServer, restApiCredentials, restApiSecrets, startStunServer } from '../src/index.js';

const REALM = 'users.test';
const SECRET = 'users-secret';
let server: StunServer | undefined;
const peerServers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
  await Promise.all(peerServers.splice(0).map((p) => new Promise((r) => p.close(r))));
});

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

/** A TURN-over-TCP client connection: request() waits for the answer to each request. */
async function connection(port: number, localAddress: string) {
  const s = await new Promise<Socket>((resolve, reject) => {
    const c = tcpConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(c));
    c.on('error', reject);
    sockets.push(c);
  });
  const framer = new StunStreamFramer();
  const waiting: ((m: StunMessage) => void)[] = [];
  let raw = false;
  s.on('data', (d: Buffer) => {
    if (raw) return; // a bound RFC 6062 data connection carries the peer's bytes
    framer.push(new Uint8Array(d));
    for (let f = framer.next(); f; f = framer.next()) waiting.shift()?.(decodeStunMessage(f.bytes));
  });
  let closed = false;
  s.once('close', () => (closed = true));
  const request = (bytes: Uint8Array): Promise<StunMessage> =>
    new Promise((resolve) => {
      waiting.push(resolve);
      s.write(bytes);
    });
  /** An authenticated request, with the 401 dance (RFC 8656 section 7.2) for its nonce. */
  const authenticated = async (method: number, attrs: AttributeEntry[], username: string, password: string): Promise<StunMessage> => {
    const challenge = await request(encodeStunMessage({ method, class: StunClass.Request, attributes: attrs }));
    const nonce = challenge.get(Attr.Nonce)!;
    const all = [...attrs, attr(Attr.Username, username), attr(Attr.Realm, REALM), attr(Attr.Nonce, nonce)];
    const key = longTermKey({ username, realm: REALM, password });
    return request(encodeStunMessage({ method, class: StunClass.Request, attributes: all }, { integrity: key }));
  };
  /** Allocate a UDP relay (17) or an RFC 6062 TCP relay (6). */
  const allocate = (username: string, password: string, transport = 17): Promise<StunMessage> =>
    authenticated(StunMethod.Allocate, [attr(Attr.RequestedTransport, transport)], username, password);
  return { socket: s, allocate, authenticated, isClosed: () => closed, goRaw: () => (raw = true) };
}

describe('per-user share of the TCP slots', () => {
  it('finding 7: a user holds at most streams.perUser connections, whatever its credentials expiry or source', async () => {
    const hub = new ServerEventHub();
    const seen: ServerEvent[] = [];
    hub.subscribe((e) => seen.push(e));
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: true,
      events: hub.sink,
      streams: { perUser: 2 },
      turn: { realm: REALM, auth: restApiSecrets([SECRET]), relayPorts: { min: 40000, max: 60000 } },
    });
    const port = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
    const mallory = (i: number) => restApiCredentials(SECRET, 'mallory', 600 + i);
    const held = [];
    for (let i = 0; i < 2; i++) {
      const c = await connection(port, `127.0.7.${1 + i}`);
      const cred = mallory(i);
      expect((await c.allocate(cred.username, cred.password)).class).toBe(StunClass.SuccessResponse);
      held.push(c);
    }
    // The third connection of the same user (new expiry, new source) is closed once it allocates.
    const third = await connection(port, '127.0.7.3');
    const cred = mallory(2);
    void third.allocate(cred.username, cred.password);
    expect(await until(() => third.isClosed(), 5000)).toBe(true);
    expect(seen.filter((e) => e.type === 'refused')).toEqual([
      { type: 'refused', service: 'turn', cause: 'user-quota', source: '127.0.7.3', user: 'mallory', pool: 'connections' },
    ]);
    expect(seen.find((e) => e.type === 'connection-closed')).toMatchObject({ source: '127.0.7.3', cause: 'refused' });
    expect(server.stats().streams.refusedPerUser).toBe(1);
    // Its allocation went with the connection; the two first ones still stand.
    expect(await until(() => server!.turn!.size === 2, 5000)).toBe(true);
    expect(held.every((c) => !c.isClosed())).toBe(true);
    // Another user is served.
    const alice = restApiCredentials(SECRET, 'alice', 600);
    const other = await connection(port, '127.0.7.4');
    expect((await other.allocate(alice.username, alice.password)).class).toBe(StunClass.SuccessResponse);
    // A connection that closes gives its slot back.
    held[0]!.socket.destroy();
    expect(await until(() => server!.turn!.size === 2, 5000)).toBe(true);
    const again = await connection(port, '127.0.7.5');
    const next = mallory(3);
    expect((await again.allocate(next.username, next.password)).class).toBe(StunClass.SuccessResponse);
    await new Promise((r) => setTimeout(r, 200));
    expect(again.isClosed()).toBe(false);
    expect(server.stats().streams.refusedPerUser).toBe(1);
  });

  it('finding 7: RFC 6062 data connections count against the user of their allocation', async () => {
    const hub = new ServerEventHub();
    const seen: ServerEvent[] = [];
    hub.subscribe((e) => seen.push(e));
    /** A TCP peer on loopback that echoes (one per Connect: a second Connect to the same peer is 446). */
    const echoPeer = async (): Promise<number> => {
      const peer = createServer((c) => c.pipe(c));
      peerServers.push(peer);
      await new Promise<void>((r) => peer.listen(0, '127.0.0.1', () => r()));
      return (peer.address() as { port: number }).port;
    };
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      tcp: true,
      events: hub.sink,
      streams: { perUser: 2 },
      turn: { realm: REALM, auth: restApiSecrets([SECRET]), peers: { allow: ['127.0.0.0/8'] } },
    });
    const port = server.listeners.find((l) => l.transport === 'tcp')!.address.port;
    const cred = restApiCredentials(SECRET, 'carol', 600);
    const control = await connection(port, '127.0.8.1');
    expect((await control.allocate(cred.username, cred.password, 6)).class).toBe(StunClass.SuccessResponse);
    /** Connect to the peer, then bind a new data connection to it (RFC 6062 sections 5.2 and 5.4). */
    const dataConnection = async (from: string) => {
      const peerPort = await echoPeer();
      const connected = await control.authenticated(
        StunMethod.Connect,
        [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.0.1', port: peerPort })],
        cred.username,
        cred.password,
      );
      expect(connected.class).toBe(StunClass.SuccessResponse);
      const data = await connection(port, from);
      const bound = await data.authenticated(
        StunMethod.ConnectionBind,
        [attr(Attr.ConnectionId, connected.get(Attr.ConnectionId)!)],
        cred.username,
        cred.password,
      );
      data.goRaw();
      return { data, bound };
    };
    // The control connection and one data connection: the user's two.
    const first = await dataConnection('127.0.8.2');
    expect(first.bound.class).toBe(StunClass.SuccessResponse);
    const echoed = new Promise<string>((r) => first.data.socket.once('data', (d: Buffer) => r(d.toString())));
    first.data.socket.write('through the relay');
    expect(await echoed).toBe('through the relay');
    // A second data connection would be the user's third: closed.
    const second = await dataConnection('127.0.8.3');
    expect(await until(() => second.data.isClosed(), 5000)).toBe(true);
    expect(seen.filter((e) => e.type === 'refused')).toEqual([
      { type: 'refused', service: 'turn', cause: 'user-quota', source: '127.0.8.3', user: 'carol', pool: 'connections' },
    ]);
    expect(first.data.isClosed()).toBe(false);
    expect(control.isClosed()).toBe(false);
  });
});
