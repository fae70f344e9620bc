// Per-user shares of the STUN/TURN TCP/TLS slots (issue 14: "shares per source address and per
// user on every pool"): once a connection carries an allocation, it counts against its user
// (REST credentials of one user with different expiries are one user); the connection over
// `streams.perUser` is closed with a refused event (cause user-quota), other users are served.
import { type Socket, connect as tcpConnect } from 'node:net';
import { Attr, StunClass, StunMethod, type StunMessage, StunStreamFramer, attr, decodeStunMessage, encodeStunMessage, longTermKey } from '@nat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type ServerEvent, ServerEventHub, type StunServer, restApiCredentials, restApiSecrets, startStunServer } from '../src/index.js';

const REALM = 'users.test';
const SECRET = 'users-secret';
let server: StunServer | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
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
  s.on('data', (d: Buffer) => {
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
  /** Allocate with the 401 dance (RFC 8656 section 7.2). */
  const allocate = async (username: string, password: string): Promise<StunMessage> => {
    const attrs = [attr(Attr.RequestedTransport, 17)];
    const challenge = await request(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: attrs }));
    const nonce = challenge.get(Attr.Nonce)!;
    const all = [...attrs, attr(Attr.Username, username), attr(Attr.Realm, REALM), attr(Attr.Nonce, nonce)];
    const key = longTermKey({ username, realm: REALM, password });
    return request(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: all }, { integrity: key }));
  };
  return { socket: s, allocate, isClosed: () => closed };
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
});
