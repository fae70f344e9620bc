/**
 * TURN trust tiers on the sans-I/O core with a virtual clock: anonymous relay credentials
 * (`EXPIRY:~PEERID`) get UDP relays only, a quota per peer id whatever their expiry, a share of
 * the server for all of them, a bandwidth cap, and permissions only toward what their sessions
 * signalled; operator users are untouched.
 */
import { Attr, StunClass, StunMethod, type AttributeEntry, type StunMessage, attr, decodeStunMessage, encodeStunMessage, longTermKey } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import {
  type ClientEndpoint,
  MemoryRelayScope,
  RelayTiers,
  type RelayTiersOptions,
  TurnCore,
  type TurnCoreInit,
  isRelayRefusal,
  anonymousRelayCredentials,
  anonymousRelayUsers,
  anyOf,
  recordSignalledCandidates,
  staticUsers,
} from '../src/index.js';

const SECRET = 's3cret';
const PEER_A = 'a'.repeat(32);
const PEER_B = 'b'.repeat(32);
const PEER_C = 'c'.repeat(32);
const PEER_D = 'd'.repeat(32);
let port = 5000;

function setup(limits: Partial<RelayTiersOptions> = {}, init: Partial<TurnCoreInit> = {}) {
  const scope = new MemoryRelayScope();
  let now = 1_000_000;
  const tiers = new RelayTiers({ scope, ownRelayIps: ['203.0.113.1'], clock: () => now, ...limits });
  const core = new TurnCore({ realm: 'r', auth: anyOf(staticUsers({ op: 'op-pw' }), anonymousRelayUsers([SECRET])), tiers, bandwidth: 0, ...init });
  const pump = () => {
    const out = core.drain();
    for (const o of out)
      if (o.kind === 'open-relay') core.relayOpened(o.allocation, 'IPv4', { family: 'IPv4', address: '203.0.113.1', port: 50000 + o.allocation });
    return [...out, ...core.drain()];
  };
  /** A client (its own 5-tuple) with a username and password. */
  const client = (username: string, password: string, transport: 'udp' | 'tcp' = 'udp', address = '198.51.100.20') => {
    const endpoint: ClientEndpoint = {
      key: `${transport}|${port}`,
      client: { family: 'IPv4', address, port: port++ },
      server: { family: 'IPv4', address: '203.0.113.1', port: 3478 },
      transport,
    };
    const key = longTermKey({ username, realm: 'r', password });
    let nonce = '';
    const request = (method: number, attrs: AttributeEntry[]): StunMessage => {
      const send = (withAuth: boolean): StunMessage => {
        const bytes = encodeStunMessage(
          {
            method,
            class: StunClass.Request,
            attributes: withAuth ? [...attrs, attr(Attr.Username, username), attr(Attr.Realm, 'r'), attr(Attr.Nonce, nonce)] : attrs,
          },
          withAuth ? { integrity: key } : {},
        );
        core.handleStun(decodeStunMessage(bytes), endpoint, now);
        const reply = pump().find((o) => o.kind === 'to-client');
        if (reply?.kind !== 'to-client') throw new Error('no answer');
        return decodeStunMessage(reply.bytes);
      };
      if (nonce === '') nonce = send(false).get(Attr.Nonce)!;
      return send(true);
    };
    const code = (m: StunMessage): number | undefined => (m.class === StunClass.ErrorResponse ? m.get(Attr.ErrorCode)!.code : undefined);
    return {
      endpoint,
      allocate: (transportNumber = 17) => code(request(StunMethod.Allocate, [attr(Attr.RequestedTransport, transportNumber)])),
      permit: (ip: string) => code(request(StunMethod.CreatePermission, [attr(Attr.XorPeerAddress, { family: 'IPv4', address: ip, port: 7000 })])),
      release: () => code(request(StunMethod.Refresh, [attr(Attr.Lifetime, 0)])),
    };
  };
  /** Anonymous credentials of `peerId`, `skew` seconds apart (a new expiry = a new username). */
  const anonymous = (peerId: string, skew = 0, transport: 'udp' | 'tcp' = 'udp', address?: string) => {
    const c = anonymousRelayCredentials(SECRET, peerId, 600 + skew, now);
    return client(c.username, c.password, transport, address);
  };
  return {
    core,
    tiers,
    scope,
    client,
    anonymous,
    advance: (ms: number) => (now += ms),
    get now() {
      return now;
    },
  };
}

const offer = (to: string, candidates: string[], from = PEER_B) => ({
  v: 1 as const,
  type: 'offer' as const,
  from,
  to,
  sessionId: 's1',
  ufrag: 'abcd',
  pwd: 'abcdefghijklmnopqrstuv',
  candidates,
});

describe('TURN trust tiers', () => {
  it('anonymous credentials relay UDP only: a TCP allocation (RFC 6062) is 442', () => {
    const h = setup();
    expect(h.anonymous(PEER_A, 0, 'tcp').allocate(6)).toBe(442);
    expect(h.tiers.stats.refusedTransport).toBe(1);
    expect(h.client('op', 'op-pw', 'tcp').allocate(6)).toBeUndefined();
  });

  it('the quota is per peer id, whatever the expiry in the username; it comes back when an allocation goes', () => {
    const h = setup({ perPeer: 2 });
    const a1 = h.anonymous(PEER_A, 1);
    expect(a1.allocate()).toBeUndefined();
    expect(h.anonymous(PEER_A, 2).allocate()).toBeUndefined();
    expect(h.anonymous(PEER_A, 3).allocate()).toBe(486);
    expect(h.tiers.stats.refusedPeerQuota).toBe(1);
    expect(h.anonymous(PEER_B).allocate()).toBeUndefined();
    a1.release();
    expect(h.anonymous(PEER_A, 4).allocate()).toBeUndefined();
  });

  it('an anonymous allocation is counted once: a peer gets exactly perPeer (not the smaller user quota), and a release frees exactly one slot in both views', () => {
    // perPeer above the operators' per-user quota: the anonymous peer is held to perPeer alone
    const h = setup({ perPeer: 5, total: 100 }, { userQuota: 3 });
    const clients = Array.from({ length: 6 }, (_, i) => h.anonymous(PEER_A, i));
    expect(clients.map((c) => c.allocate())).toEqual([undefined, undefined, undefined, undefined, undefined, 486]);
    expect(h.core.size).toBe(5);
    expect(h.tiers.stats.anonymousAllocations).toBe(5);
    expect(h.tiers.stats.refusedPeerQuota).toBe(1);
    expect(h.core.stats.quotaRejected).toBe(1);
    // one released: exactly one slot back, in the tier's view and in the core's ledger
    expect(clients[2]!.release()).toBeUndefined();
    expect(h.core.size).toBe(4);
    expect(h.tiers.stats.anonymousAllocations).toBe(4);
    expect(h.anonymous(PEER_A, 10).allocate()).toBeUndefined();
    expect(h.anonymous(PEER_A, 11).allocate()).toBe(486);
    expect(h.tiers.stats.anonymousAllocations).toBe(5);
    expect(h.tiers.stats.refusedPeerQuota).toBe(2);
    // operators keep their own quota (3), apart from the anonymous peers'
    expect(Array.from({ length: 4 }, () => h.client('op', 'op-pw').allocate())).toEqual([undefined, undefined, undefined, 486]);
    expect(h.tiers.stats.anonymousAllocations).toBe(5);
  });

  it('all anonymous peers together hold at most their share; operators are not counted in it', () => {
    const h = setup({ total: 3 });
    for (let i = 0; i < 3; i++) expect(h.anonymous(String.fromCharCode(99 + i).repeat(32)).allocate()).toBeUndefined();
    expect(h.anonymous(PEER_A).allocate()).toBe(486);
    expect(h.tiers.stats.refusedTotalShare).toBe(1);
    expect(h.client('op', 'op-pw').allocate()).toBeUndefined();
    expect(h.tiers.stats.anonymousAllocations).toBe(3);
  });

  it("permissions only toward what the peer's sessions signalled from the sender's own address, or relayed candidates on this server", () => {
    const h = setup();
    const a = h.anonymous(PEER_A);
    expect(a.allocate()).toBeUndefined();
    expect(a.permit('198.51.100.77')).toBe(403);
    // B, connected from 198.51.100.77, offers a host candidate there, one elsewhere, and two relayed ones
    recordSignalledCandidates(
      h.scope,
      offer(PEER_A, [
        'candidate:1 1 udp 2130706431 198.51.100.77 4000 typ host',
        'candidate:2 1 udp 2130706431 192.0.2.200 4000 typ host',
        'candidate:3 1 udp 16777215 203.0.113.1 50999 typ relay raddr 198.51.100.77 rport 4000',
        'candidate:4 1 udp 16777215 192.0.2.55 3478 typ relay raddr 198.51.100.77 rport 4000',
      ]),
      '198.51.100.77',
      h.now,
    );
    expect(a.permit('198.51.100.77')).toBeUndefined();
    expect(a.permit('203.0.113.1')).toBeUndefined(); // another allocation of this server
    expect(a.permit('192.0.2.200')).toBe(403); // named, but not where B is
    expect(a.permit('192.0.2.55')).toBe(403); // a "relay" elsewhere: could be anything
    expect(h.tiers.stats.refusedOutOfScope).toBe(3);
    // the scope belongs to A: B's own allocation may not use what B itself signalled
    const b = h.anonymous(PEER_B);
    expect(b.allocate()).toBeUndefined();
    expect(b.permit('198.51.100.77')).toBe(403);
    // an operator relays as configured
    const op = h.client('op', 'op-pw');
    expect(op.allocate()).toBeUndefined();
    expect(op.permit('192.0.2.200')).toBeUndefined();
  });

  it("a dual-stack peer's candidate in its other family is in scope only once that peer proved it receives there (a signed Allocate from it), never on its word", () => {
    const h = setup();
    const a = h.anonymous(PEER_A);
    expect(a.allocate()).toBeUndefined();
    const host = (ip: string): string => `candidate:1 1 udp 2130706431 ${ip} 4000 typ host`;
    // B registered over IPv6 and names two IPv4 addresses: its own and a third party's
    recordSignalledCandidates(h.scope, offer(PEER_A, [host('198.51.100.30'), host('192.0.2.200')]), '2001:db8:b::2', h.now);
    expect(a.permit('198.51.100.30')).toBe(403); // B's word only
    // B allocates from 198.51.100.30 with its anonymous credentials: the nonce of the 401 went there
    expect(h.anonymous(PEER_B, 0, 'udp', '198.51.100.30').allocate()).toBeUndefined();
    expect(a.permit('198.51.100.30')).toBeUndefined();
    expect(a.permit('192.0.2.200')).toBe(403); // B was never seen there
    // C, seen at 192.0.2.200, never named it to A: that proves nothing for B's claim
    expect(h.anonymous(PEER_C, 0, 'udp', '192.0.2.200').allocate()).toBeUndefined();
    expect(a.permit('192.0.2.200')).toBe(403);
    // the proof counts for what B signalled to A only: D, to whom B named nothing, gets nothing
    const d = h.anonymous(PEER_D);
    expect(d.allocate()).toBeUndefined();
    expect(d.permit('198.51.100.30')).toBe(403);
    // seen first, named after: C names 192.0.2.200 (where it was seen) to A from its IPv6 connection
    recordSignalledCandidates(h.scope, offer(PEER_A, [host('192.0.2.200')], PEER_C), '2001:db8:c::2', h.now);
    expect(a.permit('192.0.2.200')).toBeUndefined();
    expect(h.tiers.stats.refusedOutOfScope).toBe(4);
  });

  it('a scope entry lives 6 hours after it was last signalled or used: permissions refreshed keep it, a silent one expires', () => {
    const h = setup();
    const lease = h.tiers.allocate(anonymousRelayCredentials(SECRET, PEER_A, 600, h.now).username, 'udp', h.now);
    if (lease === undefined || isRelayRefusal(lease)) throw new Error('no lease');
    recordSignalledCandidates(h.scope, offer(PEER_A, ['candidate:1 1 udp 2130706431 198.51.100.77 4000 typ host']), '198.51.100.77', h.now);
    recordSignalledCandidates(h.scope, offer(PEER_A, ['candidate:1 1 udp 2130706431 198.51.100.88 4000 typ host']), '198.51.100.88', h.now);
    for (let i = 0; i < 5; i++) {
      h.advance(2 * 3600_000);
      expect(lease.permit('198.51.100.77')).toBe(true); // used every 2 h (permission refreshes): still in scope after 10 h
    }
    expect(lease.permit('198.51.100.88')).toBe(false); // not used: gone after 6 h
  });

  it('relayed bytes over the anonymous bandwidth are dropped', () => {
    const h = setup({ bandwidth: 1000, totalBandwidth: 0 });
    const a = h.anonymous(PEER_A);
    expect(a.allocate()).toBeUndefined();
    recordSignalledCandidates(h.scope, offer(PEER_A, ['candidate:1 1 udp 2130706431 198.51.100.77 4000 typ host']), '198.51.100.77', h.now);
    expect(a.permit('198.51.100.77')).toBeUndefined();
    const id = h.core.allocationOf(a.endpoint.key)!.id;
    const relayed = () => h.core.drain().filter((o) => o.kind === 'to-client').length;
    for (let i = 0; i < 5; i++) h.core.handlePeerData(id, new Uint8Array(400), { family: 'IPv4', address: '198.51.100.77', port: 7000 }, h.now);
    expect(relayed()).toBe(2);
    expect(h.tiers.stats.droppedOverBandwidth).toBe(3);
  });
});
