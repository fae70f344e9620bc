/**
 * The TURN core's typed events, with real STUN messages (encoded with @nat/protocol) through the
 * sans-I/O core and a virtual clock: every kind it emits, with its exact content.
 */
import {
  Attr,
  StunClass,
  StunMethod,
  type AttributeEntry,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeChannelData,
  encodeStunMessage,
  longTermKey,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import {
  type ClientEndpoint,
  MemoryRelayScope,
  RelayTiers,
  type ServerEvent,
  TurnCore,
  type TurnCoreInit,
  anonymousRelayCredentials,
  anonymousRelayUsers,
  anyOf,
  staticUsers,
} from '../src/index.js';

const SERVER: TransportAddress = { family: 'IPv4', address: '203.0.113.1', port: 3478 };
const PEER: TransportAddress = { family: 'IPv4', address: '198.51.100.99', port: 7000 };
const SECRET = 'anon-secret';
let nextPort = 20_000;
const endpointOf = (address = '198.51.100.20', transport: ClientEndpoint['transport'] = 'udp'): ClientEndpoint => {
  const port = nextPort++;
  return { key: `${transport}|${address}|${port}`, client: { family: 'IPv4', address, port }, server: SERVER, transport };
};

/** A core whose driver opens every relay at once, with its events collected. */
function harness(init: Partial<TurnCoreInit> = {}, opts: { openRelays?: boolean } = {}) {
  const events: ServerEvent[] = [];
  const core = new TurnCore({ realm: 'r', auth: staticUsers({ u: 'p', v: 'p' }), events: (e) => events.push(e), ...init });
  let now = 1_700_000_000_000;
  const pump = () => {
    const out = core.drain();
    if (opts.openRelays !== false)
      for (const o of out)
        if (o.kind === 'open-relay')
          for (const f of o.families) core.relayOpened(o.allocation, f, { family: f, address: SERVER.address, port: 50000 + o.allocation });
    return [...out, ...core.drain()];
  };
  const send = (endpoint: ClientEndpoint, bytes: Uint8Array): StunMessage | undefined => {
    core.handleStun(decodeStunMessage(bytes), endpoint, now);
    const reply = pump().find((o) => o.kind === 'to-client' && o.endpoint.key === endpoint.key);
    return reply?.kind === 'to-client' ? decodeStunMessage(reply.bytes) : undefined;
  };
  /** A client: the 401 dance on its first request, then requests signed with its password. */
  const client = (username = 'u', password = 'p', endpoint = endpointOf()) => {
    const key = longTermKey({ username, realm: 'r', password });
    let nonce = '';
    const request = (method: number, attrs: AttributeEntry[]): StunMessage => {
      if (nonce === '') nonce = send(endpoint, encodeStunMessage({ method, class: StunClass.Request, attributes: attrs }))!.get(Attr.Nonce)!;
      const all = [...attrs, attr(Attr.Username, username), attr(Attr.Realm, 'r'), attr(Attr.Nonce, nonce)];
      return send(endpoint, encodeStunMessage({ method, class: StunClass.Request, attributes: all }, { integrity: key }))!;
    };
    const code = (m: StunMessage): number => (m.class === StunClass.ErrorResponse ? m.get(Attr.ErrorCode)!.code : 0);
    return {
      endpoint,
      request,
      allocate: (extra: AttributeEntry[] = [], transport = 17) => code(request(StunMethod.Allocate, [attr(Attr.RequestedTransport, transport), ...extra])),
      permit: (peer: TransportAddress) => code(request(StunMethod.CreatePermission, [attr(Attr.XorPeerAddress, peer)])),
      id: () => core.allocationOf(endpoint.key)!.id,
    };
  };
  /** Takes the events so far, without the 401 dance's `missing` challenges. */
  const take = (): ServerEvent[] => events.splice(0).filter((e) => !(e.type === 'auth-failure' && e.reason === 'missing'));
  return {
    core,
    events,
    take,
    client,
    pump,
    send,
    advance: (ms: number) => {
      now += ms;
      core.sweep(now);
      pump();
    },
    get now() {
      return now;
    },
  };
}

describe('TURN core events: allocations', () => {
  it('allocation-created, -refreshed, relayed (summed, at most once a second, and at the end) and allocation-ended (deleted)', () => {
    const h = harness();
    const c = h.client('u', 'p', endpointOf('198.51.100.20'));
    expect(c.allocate([attr(Attr.Lifetime, 700)])).toBe(0);
    const id = c.id();
    expect(h.events.splice(0)).toEqual([
      { type: 'auth-failure', service: 'turn', reason: 'missing', source: '198.51.100.20' },
      { type: 'allocation-created', allocation: id, user: 'u', source: '198.51.100.20', transport: 'udp', relay: 'udp', lifetimeS: 700, anonymous: false },
    ]);
    expect(c.request(StunMethod.Refresh, [attr(Attr.Lifetime, 900)]).class).toBe(StunClass.SuccessResponse);
    expect(h.take()).toEqual([{ type: 'allocation-refreshed', allocation: id, user: 'u', lifetimeS: 900 }]);
    expect(c.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, PEER)]).class).toBe(StunClass.SuccessResponse);
    // 1,000 packets each way: no event per packet
    for (let i = 0; i < 1000; i++) {
      h.core.handleChannelData(encodeChannelData(0x4000, new Uint8Array(100)), c.endpoint, h.now);
      h.core.handlePeerData(id, new Uint8Array(50), PEER, h.now);
    }
    expect(h.pump().filter((o) => o.kind === 'to-peer' || o.kind === 'to-client')).toHaveLength(2000);
    expect(h.take()).toEqual([]);
    h.advance(1000);
    const relayed = { type: 'relayed', allocation: id, user: 'u' };
    expect(h.take()).toEqual([{ ...relayed, packetsToPeer: 1000, bytesToPeer: 100_000, packetsToClient: 1000, bytesToClient: 50_000 }]);
    // within the second after an event: nothing, however often swept
    h.core.handleChannelData(encodeChannelData(0x4000, new Uint8Array(10)), c.endpoint, h.now);
    h.advance(400);
    h.advance(400);
    expect(h.take()).toEqual([]);
    // nothing relayed: nothing emitted
    h.advance(1000);
    expect(h.take()).toEqual([{ ...relayed, packetsToPeer: 1, bytesToPeer: 10, packetsToClient: 0, bytesToClient: 0 }]);
    h.advance(1000);
    expect(h.take()).toEqual([]);
    // the rest is reported when the allocation ends
    h.core.handlePeerData(id, new Uint8Array(7), PEER, h.now);
    expect(h.pump().filter((o) => o.kind === 'to-client')).toHaveLength(1);
    expect(c.request(StunMethod.Refresh, [attr(Attr.Lifetime, 0)]).get(Attr.Lifetime)).toBe(0);
    expect(h.take()).toEqual([
      { ...relayed, packetsToPeer: 0, bytesToPeer: 0, packetsToClient: 1, bytesToClient: 7 },
      { type: 'allocation-ended', allocation: id, user: 'u', relay: 'udp', cause: 'deleted' },
    ]);
  });

  it('allocation-ended with cause expired, connection-closed, relay-failed (and no-ports) and server-close', () => {
    const h = harness();
    const ended = (id: number, cause: string, relay = 'udp') => ({ type: 'allocation-ended', allocation: id, user: 'u', relay, cause });
    const a = h.client('u');
    expect(a.allocate()).toBe(0);
    h.take();
    h.advance(600_000);
    expect(h.take()).toEqual([ended(1, 'expired')]);

    const tcp = h.client('u', 'p', endpointOf('198.51.100.20', 'tcp'));
    expect(tcp.allocate([], 6)).toBe(0);
    expect(h.take()).toMatchObject([{ type: 'allocation-created', allocation: 2, transport: 'tcp', relay: 'tcp' }]);
    h.core.handleEndpointClosed(tcp.endpoint.key);
    expect(h.take()).toEqual([ended(2, 'connection-closed', 'tcp')]);

    const g = harness({}, { openRelays: false });
    const f = g.client('u', 'p', endpointOf('198.51.100.21'));
    f.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]); // no answer until the relay opens: undefined reply
    g.take();
    g.core.relayFailed(1, 508);
    const answer = g.pump().find((o) => o.kind === 'to-client');
    expect(answer?.kind === 'to-client' && decodeStunMessage(answer.bytes).get(Attr.ErrorCode)?.code).toBe(508);
    expect(g.take()).toEqual([
      ended(1, 'relay-failed'),
      { type: 'refused', service: 'turn', cause: 'no-ports', pool: 'relay-ports', source: '198.51.100.21', user: 'u' },
    ]);

    const b = h.client('u');
    const c = h.client('v');
    expect([b.allocate(), c.allocate()]).toEqual([0, 0]);
    h.take();
    h.core.close(h.now);
    expect(h.take()).toEqual([ended(3, 'server-close'), { ...ended(4, 'server-close'), user: 'v' }]);
    expect(h.core.size).toBe(0);
    expect(h.pump().filter((o) => o.kind === 'close-relay')).toHaveLength(2);
  });
});

describe('TURN core events: authentication and rate limits', () => {
  it('auth-failure with reason missing, unknown-user, bad-integrity, stale-nonce and wrong-tier', () => {
    const scope = new MemoryRelayScope();
    const h = harness({
      auth: anyOf(staticUsers({ u: 'p' }), anonymousRelayUsers([SECRET])),
      tiers: new RelayTiers({ scope, ownRelayIps: [SERVER.address] }),
      nonceLifetimeMs: 60_000,
    });
    const ep = endpointOf('198.51.100.30');
    const allocate = (attrs: AttributeEntry[] = [], key?: Uint8Array) =>
      h.send(
        ep,
        encodeStunMessage(
          { method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17), ...attrs] },
          key ? { integrity: key } : {},
        ),
      )!;
    const first = allocate();
    expect(first.get(Attr.ErrorCode)?.code).toBe(401);
    const nonce = first.get(Attr.Nonce)!;
    const creds = (user: string, n = nonce) => [attr(Attr.Username, user), attr(Attr.Realm, 'r'), attr(Attr.Nonce, n)];
    const keyOf = (user: string, password: string) => longTermKey({ username: user, realm: 'r', password });
    expect(allocate(creds('nobody'), keyOf('nobody', 'p')).get(Attr.ErrorCode)?.code).toBe(401);
    expect(allocate(creds('u'), keyOf('u', 'wrong')).get(Attr.ErrorCode)?.code).toBe(401);
    h.advance(61_000);
    expect(allocate(creds('u'), keyOf('u', 'p')).get(Attr.ErrorCode)?.code).toBe(438);
    const anon = anonymousRelayCredentials(SECRET, 'a'.repeat(32), 600, h.now);
    const tcp = h.client(anon.username, anon.password, endpointOf('198.51.100.31', 'tcp'));
    expect(tcp.allocate([], 6)).toBe(442);
    const failure = { type: 'auth-failure', service: 'turn' };
    expect(h.events.splice(0)).toEqual([
      { ...failure, reason: 'missing', source: '198.51.100.30' },
      { ...failure, reason: 'unknown-user', source: '198.51.100.30', user: 'nobody' },
      { ...failure, reason: 'bad-integrity', source: '198.51.100.30', user: 'u' },
      { ...failure, reason: 'stale-nonce', source: '198.51.100.30', user: 'u' },
      { ...failure, reason: 'missing', source: '198.51.100.31' },
      { ...failure, reason: 'wrong-tier', source: '198.51.100.31', user: anon.username },
    ]);
  });

  it('rate-limited: a flood of unauthenticated requests from one source gets one event per second, its answers held back', () => {
    const h = harness({ unauthenticatedRate: 2 }); // bursts of 4
    const ep = endpointOf('198.51.100.40');
    const minimal = () => encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] });
    const answers = Array.from({ length: 10 }, () => h.send(ep, minimal())).filter((m) => m !== undefined);
    expect(answers).toHaveLength(4);
    expect(h.core.stats.rateLimited).toBe(6);
    const rateLimited = { type: 'rate-limited', service: 'turn', source: '198.51.100.40', what: 'error-answers' };
    expect(h.events.splice(0)).toEqual([...Array(4).fill({ type: 'auth-failure', service: 'turn', reason: 'missing', source: '198.51.100.40' }), rateLimited]);
    h.advance(1000); // two tokens back
    for (let i = 0; i < 10; i++) h.send(ep, minimal());
    expect(h.events.splice(0).map((e) => e.type)).toEqual(['auth-failure', 'auth-failure', 'rate-limited']);
  });
});

describe('TURN core events: refusals', () => {
  const refused = (cause: string, pool: string, source: string, user?: string) => ({
    type: 'refused',
    service: 'turn',
    cause,
    pool,
    source,
    ...(user !== undefined ? { user } : {}),
  });

  it('refused with cause user-quota, source-share and global-cap (allocations), peer-denied and user-quota (permissions, channels)', () => {
    const h = harness({ userQuota: 1, sourceQuota: 2, totalQuota: 3 });
    expect(h.client('u', 'p', endpointOf('198.51.100.50')).allocate()).toBe(0);
    expect(h.client('u', 'p', endpointOf('198.51.100.51')).allocate()).toBe(486);
    expect(h.client('v', 'p', endpointOf('198.51.100.50')).allocate()).toBe(0);
    const w = harness({ userQuota: 5, sourceQuota: 1 });
    expect(w.client('u', 'p', endpointOf('198.51.100.52')).allocate()).toBe(0);
    expect(w.client('v', 'p', endpointOf('198.51.100.52')).allocate()).toBe(486);
    const t = harness({ totalQuota: 1 });
    expect(t.client('u', 'p', endpointOf('198.51.100.53')).allocate()).toBe(0);
    expect(t.client('v', 'p', endpointOf('198.51.100.54')).allocate()).toBe(508);
    expect([...h.take(), ...w.take(), ...t.take()].filter((e) => e.type === 'refused')).toEqual([
      refused('user-quota', 'allocations', '198.51.100.51', 'u'),
      refused('source-share', 'allocations', '198.51.100.52', 'v'),
      refused('global-cap', 'allocations', '198.51.100.54', 'v'),
    ]);

    const p = harness({ maxPermissions: 1 });
    const c = p.client('v', 'p', endpointOf('198.51.100.55'));
    expect(c.allocate()).toBe(0);
    expect(c.permit({ family: 'IPv4', address: '10.0.0.1', port: 1 })).toBe(403);
    expect(c.permit(PEER)).toBe(0);
    expect(c.permit({ ...PEER, address: '198.51.100.98' })).toBe(508);
    const bind = c.request(StunMethod.ChannelBind, [
      attr(Attr.ChannelNumber, 0x4000),
      attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.0.1', port: 9 }),
    ]);
    expect(bind.get(Attr.ErrorCode)?.code).toBe(403);
    expect(p.take().filter((e) => e.type === 'refused')).toEqual([
      refused('peer-denied', 'permissions', '198.51.100.55', 'v'),
      refused('user-quota', 'permissions', '198.51.100.55', 'v'),
      refused('peer-denied', 'channels', '198.51.100.55', 'v'),
    ]);
  });

  it('refused with cause anonymous-tier (per peer, and the tier total) and out-of-scope for anonymous credentials', () => {
    const scope = new MemoryRelayScope();
    const h = harness({
      auth: anyOf(staticUsers({ u: 'p' }), anonymousRelayUsers([SECRET])),
      tiers: new RelayTiers({ scope, ownRelayIps: [SERVER.address], perPeer: 1, total: 2 }),
    });
    const anon = (peer: string, ip: string) => {
      const c = anonymousRelayCredentials(SECRET, peer.repeat(32), 600, h.now);
      return { ...h.client(c.username, c.password, endpointOf(ip)), username: c.username };
    };
    const a = anon('a', '198.51.100.60');
    expect(a.allocate()).toBe(0);
    expect(h.take()).toMatchObject([{ type: 'allocation-created', user: a.username, anonymous: true }]);
    const a2 = anon('a', '198.51.100.61');
    expect(a2.allocate()).toBe(486);
    expect(anon('b', '198.51.100.62').allocate()).toBe(0);
    const c = anon('c', '198.51.100.63');
    expect(c.allocate()).toBe(486);
    expect(a.permit(PEER)).toBe(403);
    expect(h.take().filter((e) => e.type === 'refused')).toEqual([
      refused('anonymous-tier', 'allocations', '198.51.100.61', a2.username),
      refused('anonymous-tier', 'allocations', '198.51.100.63', c.username),
      refused('out-of-scope', 'permissions', '198.51.100.60', a.username),
    ]);
  });

  it('refused with cause bandwidth: one event per allocation and second while packets are dropped over the cap', () => {
    const h = harness({ bandwidth: 1000 });
    const c = h.client('u', 'p', endpointOf('198.51.100.70'));
    expect(c.allocate()).toBe(0);
    expect(c.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, PEER)]).class).toBe(StunClass.SuccessResponse);
    h.take();
    for (let i = 0; i < 30; i++) h.core.handleChannelData(encodeChannelData(0x4000, new Uint8Array(100)), c.endpoint, h.now);
    expect(h.pump().filter((o) => o.kind === 'to-peer')).toHaveLength(10);
    expect(h.take()).toEqual([]);
    h.advance(1000);
    expect(h.take()).toEqual([
      { type: 'relayed', allocation: 1, user: 'u', packetsToPeer: 10, bytesToPeer: 1000, packetsToClient: 0, bytesToClient: 0 },
      refused('bandwidth', 'relayed-bytes', '198.51.100.70', 'u'),
    ]);
    h.advance(1000);
    expect(h.take()).toEqual([]);
  });
});
