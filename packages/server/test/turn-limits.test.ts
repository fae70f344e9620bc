/**
 * Issue 14's TURN findings on the sans-I/O core, with a virtual clock: quotas per user (not per
 * REST credential), reserved ports counted, per-source shares, RFC 6062 connection caps, bounded
 * and rate-limited error answers, and the server's own service addresses refused as peers.
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
  encodeStunMessage,
  longTermKey,
  rawAttribute,
  sourceKey,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import {
  type ClientEndpoint,
  PeerPolicy,
  TurnCore,
  type TurnCoreInit,
  type TurnOutput,
  restApiCredentials,
  restApiSecrets,
  quotaUser,
  staticUsers,
} from '../src/index.js';

const SERVER: TransportAddress = { family: 'IPv4', address: '203.0.113.1', port: 3478 };
let nextPort = 5000;
const endpointOf = (address = '198.51.100.20', transport: ClientEndpoint['transport'] = 'udp'): ClientEndpoint => {
  const port = nextPort++;
  const family = address.includes(':') ? 'IPv6' : 'IPv4';
  return { key: `${transport}|${address}|${port}`, client: { family, address, port }, server: SERVER, transport };
};

/** A core whose driver opens every relay at once (relayed port 50000 + allocation id). */
function harness(init: Partial<TurnCoreInit> = {}) {
  const core = new TurnCore({ realm: 'r', auth: staticUsers({ u: 'p', v: 'p', w: 'p' }), ...init });
  let now = 1_700_000_000_000;
  const outputs: TurnOutput[] = [];
  const pump = (): TurnOutput[] => {
    const out = core.drain();
    for (const o of out) {
      if (o.kind === 'open-relay')
        for (const f of o.families)
          core.relayOpened(o.allocation, f, { family: f, address: f === 'IPv4' ? SERVER.address : '2001:db8::1', port: 50000 + o.allocation });
      if (o.kind === 'tcp-connect') core.tcpConnected(o.connectionId, now);
    }
    const all = [...out, ...core.drain()];
    outputs.push(...all);
    return all;
  };
  const replyTo = (endpoint: ClientEndpoint, bytes: Uint8Array): StunMessage | undefined => {
    core.handleStun(decodeStunMessage(bytes), endpoint, now);
    const reply = pump().find((o) => o.kind === 'to-client' && o.endpoint.key === endpoint.key);
    return reply && reply.kind === 'to-client' ? decodeStunMessage(reply.bytes) : undefined;
  };
  /** A client: its endpoint and credentials, with the 401 dance done on the first request. */
  const client = (username = 'u', password = 'p', endpoint = endpointOf()) => {
    const key = longTermKey({ username, realm: 'r', password });
    let nonce = '';
    const request = (method: number, attrs: AttributeEntry[]): StunMessage => {
      if (nonce === '') nonce = replyTo(endpoint, encodeStunMessage({ method, class: StunClass.Request, attributes: attrs }))!.get(Attr.Nonce)!;
      const all = [...attrs, attr(Attr.Username, username), attr(Attr.Realm, 'r'), attr(Attr.Nonce, nonce)];
      return replyTo(endpoint, encodeStunMessage({ method, class: StunClass.Request, attributes: all }, { integrity: key }))!;
    };
    return { endpoint, request, allocate: (extra: AttributeEntry[] = []) => request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), ...extra]) };
  };
  return {
    core,
    client,
    pump,
    replyTo,
    outputs,
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

const codeOf = (m: StunMessage | undefined): number | undefined => (m?.class === StunClass.ErrorResponse ? m.get(Attr.ErrorCode)?.code : m ? 0 : undefined);

describe('TURN quotas (finding 6)', () => {
  it('finding 6: REST usernames with different expiries count against one user quota', () => {
    const secret = 'rest-secret';
    const h = harness({ auth: restApiSecrets([secret]), userQuota: 3 });
    const codes: (number | undefined)[] = [];
    for (let i = 0; i < 9; i++) {
      // a new expiry each "second", as a client minting credentials would get
      const c = restApiCredentials(secret, 'mallory', 600 + i, h.now);
      codes.push(codeOf(h.client(c.username, c.password, endpointOf(`198.51.100.${30 + i}`)).allocate()));
    }
    expect(codes.filter((c) => c === 0)).toHaveLength(3);
    expect(codes.filter((c) => c === 486)).toHaveLength(6);
    expect(h.core.size).toBe(3);
    expect(h.core.stats.quotaRejected).toBe(6);
    // another user is still served
    const other = restApiCredentials(secret, 'alice', 600, h.now);
    expect(codeOf(h.client(other.username, other.password, endpointOf('198.51.100.60')).allocate())).toBe(0);
    expect(quotaUser('1700000000:mallory')).toBe('mallory');
    expect(quotaUser('1700000000')).toBe('');
    expect(quotaUser('alice:x')).toBe('alice:x');
  });

  it('finding 6: an EVEN-PORT reservation counts against the user and total quotas until used or expired', () => {
    const h = harness({ userQuota: 2 });
    const first = h.client('u').allocate([attr(Attr.EvenPort, { reserve: true })]);
    expect(codeOf(first)).toBe(0);
    const token = first.get(Attr.ReservationToken)!;
    expect(token).toHaveLength(8);
    // one allocation + one reserved port = the quota of 2: neither another reservation nor a plain allocation fits
    expect(codeOf(h.client('u').allocate([attr(Attr.EvenPort, { reserve: true })]))).toBe(486);
    expect(codeOf(h.client('u').allocate())).toBe(486);
    // using the token passes the reservation's slot to the new allocation
    expect(codeOf(h.client('u').request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17), attr(Attr.ReservationToken, token)]))).toBe(0);
    expect(h.core.size).toBe(2);
    expect(codeOf(h.client('u').allocate())).toBe(486);

    // an unused reservation stops counting once it expires (30 s, RFC 8656 section 7.2)
    const g = harness({ userQuota: 5, totalQuota: 2 });
    expect(codeOf(g.client('u').allocate([attr(Attr.EvenPort, { reserve: true })]))).toBe(0);
    expect(codeOf(g.client('v').allocate())).toBe(508); // the total counts the reserved port
    g.advance(29_000);
    expect(codeOf(g.client('v').allocate())).toBe(508);
    g.advance(3_000);
    expect(codeOf(g.client('v').allocate())).toBe(0);
  });

  it('a reservation whose relay never opened frees its slot (the new count does not leak)', () => {
    const core = new TurnCore({ realm: 'r', auth: staticUsers({ u: 'p' }), userQuota: 2 });
    const ep = endpointOf();
    core.handleStun(
      decodeStunMessage(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] })),
      ep,
      0,
    );
    const nonce = decodeStunMessage((core.drain()[0] as { bytes: Uint8Array }).bytes).get(Attr.Nonce)!;
    const allocate = (endpoint: ClientEndpoint): TurnOutput[] => {
      const attrs = [
        attr(Attr.RequestedTransport, 17),
        attr(Attr.EvenPort, { reserve: true }),
        attr(Attr.Username, 'u'),
        attr(Attr.Realm, 'r'),
        attr(Attr.Nonce, nonce),
      ];
      core.handleStun(
        decodeStunMessage(
          encodeStunMessage(
            { method: StunMethod.Allocate, class: StunClass.Request, attributes: attrs },
            { integrity: longTermKey({ username: 'u', realm: 'r', password: 'p' }) },
          ),
        ),
        endpoint,
        0,
      );
      return core.drain();
    };
    const open = allocate(ep).find((o) => o.kind === 'open-relay');
    expect(open?.kind).toBe('open-relay');
    core.relayFailed(open!.kind === 'open-relay' ? open!.allocation : 0, 508);
    core.drain();
    expect(allocate(endpointOf()).some((o) => o.kind === 'open-relay')).toBe(true);
  });
});

describe('shares per source and per TCP allocation (finding 7)', () => {
  it('finding 7: one source address (one /64 for IPv6) holds at most sourceQuota allocations', () => {
    const h = harness({ sourceQuota: 2, userQuota: 10, relayFamilies: ['IPv4', 'IPv6'] });
    expect(codeOf(h.client('u', 'p', endpointOf('198.51.100.20')).allocate())).toBe(0);
    expect(codeOf(h.client('v', 'p', endpointOf('198.51.100.20')).allocate())).toBe(0);
    expect(codeOf(h.client('w', 'p', endpointOf('198.51.100.20')).allocate())).toBe(486);
    expect(codeOf(h.client('w', 'p', endpointOf('198.51.100.21')).allocate())).toBe(0); // another source is served
    for (const ip of ['2001:db8:1:2::a', '2001:db8:1:2:ffff::b']) expect(codeOf(h.client('u', 'p', endpointOf(ip)).allocate())).toBe(0);
    expect(codeOf(h.client('v', 'p', endpointOf('2001:db8:1:2:1234::c')).allocate())).toBe(486);
    expect(codeOf(h.client('v', 'p', endpointOf('2001:db8:1:3::c')).allocate())).toBe(0);
    expect(sourceKey('2001:db8:1:2::a')).toBe(sourceKey('2001:0db8:0001:0002:ffff::1'));
    expect(sourceKey('::ffff:198.51.100.20')).toBe('198.51.100.20');
  });

  it('finding 7: a TCP allocation holds at most tcpConnectsPerAllocation Connects and tcpIncomingPerAllocation peer connections', () => {
    const h = harness({ tcpConnectsPerAllocation: 3, tcpIncomingPerAllocation: 2 });
    const c = h.client('u', 'p', endpointOf('198.51.100.20', 'tcp'));
    expect(codeOf(c.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 6)]))).toBe(0);
    const connect = (port: number): StunMessage =>
      c.request(StunMethod.Connect, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: '198.51.100.99', port })]);
    expect([7001, 7002, 7003].map((p) => codeOf(connect(p)))).toEqual([0, 0, 0]);
    const refused = connect(7004);
    expect(codeOf(refused)).toBe(508);
    expect(codeOf(connect(7001))).toBe(446); // the same peer again: Connection Already Exists
    // a closed connection frees its place
    const ids = h.outputs.filter((o) => o.kind === 'tcp-connect').map((o) => (o.kind === 'tcp-connect' ? o.connectionId : 0));
    h.core.tcpClosed(ids[0]!);
    expect(codeOf(connect(7004))).toBe(0);
    // incoming: two peer connections, the third is refused (the driver closes it)
    const allocation = h.core.allocationOf(c.endpoint.key)!.id;
    const peer = (port: number): TransportAddress => ({ family: 'IPv4', address: '198.51.100.99', port });
    expect(h.core.tcpIncoming(allocation, peer(9001), h.now)).toBeTypeOf('number');
    expect(h.core.tcpIncoming(allocation, peer(9002), h.now)).toBeTypeOf('number');
    expect(h.core.tcpIncoming(allocation, peer(9003), h.now)).toBeUndefined();
    expect(h.core.stats.tcpRefused).toBe(2);
    // unbound incoming connections expire after 30 s (RFC 6062), and their places with them
    h.advance(31_000);
    expect(h.core.tcpIncoming(allocation, peer(9004), h.now)).toBeTypeOf('number');
  });
});

describe('answers and peers (finding 8)', () => {
  it('finding 8: unauthenticated TURN error answers over UDP are no larger than needed and rate limited per source', () => {
    const h = harness({ unauthenticatedRate: 10 });
    const ep = endpointOf('198.51.100.40');
    // a 20-byte request of an unsupported method: 400 of at most 28 bytes (header + ERROR-CODE)
    const bytes = encodeStunMessage({ method: 0x00d, class: StunClass.Request, attributes: [] });
    expect(bytes).toHaveLength(20);
    h.core.handleStun(decodeStunMessage(bytes), ep, h.now);
    const answer = h.pump().find((o) => o.kind === 'to-client');
    expect(answer?.kind === 'to-client' && answer.bytes.length).toBeLessThanOrEqual(28);
    expect(codeOf(decodeStunMessage((answer as { bytes: Uint8Array }).bytes))).toBe(400);
    // 420 for four unknown comprehension-required attributes: no larger than the request
    const unknown = encodeStunMessage({
      method: StunMethod.Allocate,
      class: StunClass.Request,
      attributes: [0x7a01, 0x7a02, 0x7a03, 0x7a04].map((t) => rawAttribute(t, new Uint8Array(0))),
    });
    h.core.handleStun(decodeStunMessage(unknown), ep, h.now);
    const a420 = h.pump().find((o) => o.kind === 'to-client') as { bytes: Uint8Array };
    expect(a420.bytes.length).toBeLessThanOrEqual(unknown.length);
    expect(decodeStunMessage(a420.bytes).get(Attr.UnknownAttributes)?.length).toBeGreaterThanOrEqual(1);
    // over TCP the answer keeps its reason phrase
    h.core.handleStun(decodeStunMessage(bytes), endpointOf('198.51.100.41', 'tcp'), h.now);
    const tcp = h.pump().find((o) => o.kind === 'to-client') as { bytes: Uint8Array };
    expect(decodeStunMessage(tcp.bytes).get(Attr.ErrorCode)?.reason).toMatch(/unsupported method/);
    // a flood of 200 at one instant: at most the burst (2 x 10) answered, the rest counted
    let answered = 0;
    for (let i = 0; i < 200; i++) {
      h.core.handleStun(decodeStunMessage(encodeStunMessage({ method: 0x00d, class: StunClass.Request, attributes: [] })), ep, h.now);
      answered += h.pump().filter((o) => o.kind === 'to-client').length;
    }
    expect(answered).toBeLessThanOrEqual(20);
    expect(h.core.stats.rateLimited).toBeGreaterThanOrEqual(180);
    // another source is still answered
    h.core.handleStun(decodeStunMessage(bytes), endpointOf('198.51.100.42'), h.now);
    expect(h.pump().filter((o) => o.kind === 'to-client')).toHaveLength(1);
  });

  it('401 challenges to unauthenticated requests carry only what they need over UDP (REALM, NONCE, PASSWORD-ALGORITHMS)', () => {
    const h = harness({ software: 'nat-server test build' });
    // a minimal Allocate: header + REQUESTED-TRANSPORT, 28 bytes
    const minimal = encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] });
    expect(minimal).toHaveLength(28);
    const ep = endpointOf('198.51.100.45');
    h.core.handleStun(decodeStunMessage(minimal), ep, h.now);
    const udp = h.pump().find((o) => o.kind === 'to-client') as { bytes: Uint8Array };
    // 20 header + 8 ERROR-CODE (no reason phrase) + 8 REALM "r" + 40 NONCE (35 characters) + 12 PASSWORD-ALGORITHMS
    expect(udp.bytes.length).toBe(88);
    const m = decodeStunMessage(udp.bytes);
    expect(m.get(Attr.ErrorCode)).toEqual({ code: 401, reason: '' });
    expect(m.get(Attr.Realm)).toBe('r');
    expect(m.get(Attr.Nonce)).toHaveLength(35);
    expect(m.get(Attr.PasswordAlgorithms)).toHaveLength(2);
    expect(m.get(Attr.Software)).toBeUndefined();
    // the nonce works: the client's next request authenticates
    expect(codeOf(h.client('u', 'p', ep).allocate())).toBe(0);
    // a request large enough to hold them gets the reason phrase and SOFTWARE back
    const padded = encodeStunMessage({
      method: StunMethod.Allocate,
      class: StunClass.Request,
      attributes: [attr(Attr.RequestedTransport, 17), attr(Attr.Software, 'x'.repeat(100))],
    });
    h.core.handleStun(decodeStunMessage(padded), endpointOf('198.51.100.46'), h.now);
    const full = decodeStunMessage((h.pump().find((o) => o.kind === 'to-client') as { bytes: Uint8Array }).bytes);
    expect(full.get(Attr.ErrorCode)).toEqual({ code: 401, reason: 'Unauthenticated' });
    expect(full.get(Attr.Software)).toBe('nat-server test build');
    // over TCP (no amplification) the challenge is complete
    h.core.handleStun(decodeStunMessage(minimal), endpointOf('198.51.100.47', 'tcp'), h.now);
    const tcp = decodeStunMessage((h.pump().find((o) => o.kind === 'to-client') as { bytes: Uint8Array }).bytes);
    expect(tcp.get(Attr.ErrorCode)?.reason).toBe('Unauthenticated');
    expect(tcp.get(Attr.Software)).toBe('nat-server test build');
  });

  it('401 challenges are rate limited per source (an IPv6 /64 is one source): a flood gets at most the burst, another source its own', () => {
    const h = harness({ unauthenticatedRate: 5 }); // bursts of 10
    const minimal = () => encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: [attr(Attr.RequestedTransport, 17)] });
    const challenges = (ip: string, n: number): number => {
      let answered = 0;
      for (let i = 0; i < n; i++) {
        h.core.handleStun(decodeStunMessage(minimal()), endpointOf(ip), h.now);
        answered += h.pump().filter((o) => o.kind === 'to-client' && codeOf(decodeStunMessage(o.bytes)) === 401).length;
      }
      return answered;
    };
    expect(challenges('198.51.100.80', 100)).toBe(10);
    expect(h.core.stats.rateLimited).toBe(90);
    expect(challenges('198.51.100.81', 100)).toBe(10); // another source gets its own
    // one /64: every address in it counts against the same source
    let answered = 0;
    for (let i = 1; i <= 100; i++) answered += challenges(`2001:db8:1:2::${i.toString(16)}`, 1);
    expect(answered).toBe(10);
    expect(challenges('2001:db8:1:3::1', 100)).toBe(10);
    // a second later, the source has 5 more
    h.advance(1000);
    expect(challenges('198.51.100.80', 100)).toBe(5);
  });

  it("finding 8: the server's own service addresses are never relay peers; its allocations' relayed addresses are", () => {
    const h = harness({ peers: { allow: ['203.0.113.0/24'] } });
    h.core.addServiceAddresses([SERVER, { family: 'IPv4', address: '203.0.113.1', port: 8080 }]);
    const a = h.client('u');
    const b = h.client('v');
    expect(codeOf(a.allocate())).toBe(0);
    expect(codeOf(b.allocate())).toBe(0);
    const bRelayed = h.core.allocationOf(b.endpoint.key)!.relayed.IPv4!;
    // ChannelBind to the TURN listener and to the rendezvous port: 403
    expect(codeOf(a.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, SERVER)]))).toBe(403);
    expect(codeOf(a.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4001), attr(Attr.XorPeerAddress, { ...SERVER, port: 8080 })]))).toBe(403);
    // a permission is per IP: the server's IP is allowed (its relayed addresses live there)
    expect(codeOf(a.request(StunMethod.CreatePermission, [attr(Attr.XorPeerAddress, bRelayed)]))).toBe(0);
    const send = (to: TransportAddress): TurnOutput[] => {
      h.core.handleStun(
        decodeStunMessage(
          encodeStunMessage({
            method: StunMethod.Send,
            class: StunClass.Indication,
            attributes: [attr(Attr.XorPeerAddress, to), attr(Attr.Data, Buffer.from('x'))],
          }),
        ),
        a.endpoint,
        h.now,
      );
      return h.pump().filter((o) => o.kind === 'to-peer');
    };
    expect(send(SERVER)).toHaveLength(0);
    expect(send({ ...SERVER, port: 8080 })).toHaveLength(0);
    expect(send(bRelayed)).toHaveLength(1);
    expect(codeOf(a.request(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4002), attr(Attr.XorPeerAddress, bRelayed)]))).toBe(0);
    expect(h.core.stats.forbidden).toBe(2);
    // TCP: a Connect to the rendezvous port is refused too
    const t = h.client('w', 'p', endpointOf('198.51.100.20', 'tcp'));
    expect(codeOf(t.request(StunMethod.Allocate, [attr(Attr.RequestedTransport, 6)]))).toBe(0);
    expect(codeOf(t.request(StunMethod.Connect, [attr(Attr.XorPeerAddress, { ...SERVER, port: 8080 })]))).toBe(403);
  });

  it('finding 8: SIIT (::ffff:0:0:0/96), Teredo (2001::/32, and its embedded IPv4) and site-local (fec0::/10) peers are refused by default', () => {
    const policy = new PeerPolicy();
    for (const ip of ['::ffff:0:c633:6401', '2001:0:4136:e378:8000:63bf:3fff:fdd2', 'fec0::1', 'feff::1']) expect(policy.check(ip).allowed, ip).toBe(false);
    expect(policy.check('2001:db8::1').allowed).toBe(true);
    expect(policy.check('2a00:1450::1').allowed).toBe(true);
    // without the default list, a Teredo address is checked by the IPv4 it embeds (here 127.0.0.1, inverted)
    const custom = new PeerPolicy({ denyDefaults: false, deny: ['127.0.0.0/8'] });
    expect(custom.check('2001:0:0:0:0:0:80ff:fffe').allowed).toBe(false);
    expect(custom.check('2001:0:0:0:0:0:3700:ff01').allowed).toBe(true); // 200.255.0.254 (inverted), not denied here
    expect(custom.check('::ffff:0:7f00:1').allowed).toBe(false); // SIIT of 127.0.0.1
  });
});
