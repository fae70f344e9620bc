/**
 * The sans-I/O TURN allocation core against a scripted server, on a virtual clock: every
 * request the core sends is decoded and checked, every answer is built by hand here.
 */
import {
  Attr,
  type AttributeEntry,
  PasswordAlgorithm,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeNonceCookie,
  encodeStunMessage,
  errorCode,
  longTermKey,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { TurnAllocationCore, type TurnAllocationOptions, type TurnEvent } from '../src/turn/index.js';

const REALM = 'example.org';
const KEY = longTermKey({ username: 'alice', realm: REALM, password: 'secret' });
const WRONG_KEY = longTermKey({ username: 'alice', realm: REALM, password: 'guess' });
const RELAYED: TransportAddress = { family: 'IPv4', address: '203.0.113.5', port: 49_200 };
const MAPPED: TransportAddress = { family: 'IPv4', address: '198.51.100.7', port: 40_001 };
const PEER: TransportAddress = { family: 'IPv4', address: '198.51.100.20', port: 5000 };
const PEER2: TransportAddress = { family: 'IPv4', address: '198.51.100.21', port: 6000 };

/** A core on a virtual clock, with everything it sent and reported. */
class Harness {
  readonly core: TurnAllocationCore;
  now = 0;
  /** Messages the core sent, not yet looked at, with the time they left. */
  readonly sent: { at: number; bytes: Uint8Array }[] = [];
  readonly events: TurnEvent[] = [];

  constructor(options: Partial<TurnAllocationOptions> = {}) {
    this.core = new TurnAllocationCore({ username: 'alice', password: 'secret', ...options });
  }

  #collect(): void {
    for (let b = this.core.pollTransmit(); b; b = this.core.pollTransmit()) this.sent.push({ at: this.now, bytes: b });
    for (let e = this.core.pollEvent(); e; e = this.core.pollEvent()) this.events.push(e);
  }

  start(): this {
    this.core.start(this.now);
    this.#collect();
    return this;
  }

  /** Advances the clock to `until`, firing every timeout on the way. */
  run(until: number): void {
    for (;;) {
      const at = this.core.pollTimeout();
      if (at === undefined || at > until) break;
      this.now = Math.max(this.now, at);
      this.core.handleTimeout(this.now);
      this.#collect();
    }
    this.now = until;
  }

  input(bytes: Uint8Array): void {
    this.core.handleInput(bytes, this.now);
    this.#collect();
  }

  call<T>(f: (core: TurnAllocationCore, now: number) => T): T {
    const r = f(this.core, this.now);
    this.#collect();
    return r;
  }

  /** The oldest unread sent message, decoded. */
  take(): StunMessage {
    const s = this.sent.shift();
    if (!s) throw new Error('nothing was sent');
    return decodeStunMessage(s.bytes);
  }

  takeRaw(): Uint8Array {
    const s = this.sent.shift();
    if (!s) throw new Error('nothing was sent');
    return s.bytes;
  }

  takeEvents(): TurnEvent[] {
    return this.events.splice(0);
  }

  /** Allocates: 401, signed retry, success with `lifetime`. */
  allocate(lifetime = 600): this {
    this.start();
    this.input(challenge(this.take()));
    this.input(success(this.take(), [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, lifetime), attr(Attr.XorMappedAddress, MAPPED)]));
    this.takeEvents();
    return this;
  }
}

function challenge(request: StunMessage, code = 401, nonce = 'nonce-1', extra: AttributeEntry[] = []): Uint8Array {
  return encodeStunMessage({
    method: request.method,
    class: StunClass.ErrorResponse,
    transactionId: request.transactionId,
    attributes: [attr(Attr.ErrorCode, errorCode(code)), attr(Attr.Realm, REALM), attr(Attr.Nonce, nonce), ...extra],
  });
}

/** A success response, signed with `key` (null: unsigned). */
function success(request: StunMessage, attributes: AttributeEntry[] = [], key: Uint8Array | null = KEY): Uint8Array {
  return encodeStunMessage(
    { method: request.method, class: StunClass.SuccessResponse, transactionId: request.transactionId, attributes },
    key ? { integrity: key, fingerprint: true } : { fingerprint: true },
  );
}

/** An error response, signed with `key` (null: unsigned). */
function failure(request: StunMessage, code: number, extra: AttributeEntry[] = [], key: Uint8Array | null = KEY): Uint8Array {
  return encodeStunMessage(
    {
      method: request.method,
      class: StunClass.ErrorResponse,
      transactionId: request.transactionId,
      attributes: [attr(Attr.ErrorCode, errorCode(code)), ...extra],
    },
    key ? { integrity: key } : {},
  );
}

function dataIndication(peer: TransportAddress, data: Uint8Array): Uint8Array {
  return encodeStunMessage({ method: StunMethod.Data, class: StunClass.Indication, attributes: [attr(Attr.XorPeerAddress, peer), attr(Attr.Data, data)] });
}

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('TurnAllocationCore: Allocate and the long-term credential mechanism', () => {
  it('sends an unauthenticated Allocate, answers the 401 with a signed retry, and reports the allocation', () => {
    const h = new Harness().start();
    const first = h.take();
    expect(first.method).toBe(StunMethod.Allocate);
    expect(first.class).toBe(StunClass.Request);
    expect(first.get(Attr.RequestedTransport)).toBe(17); // UDP, RFC 8656 section 18.8
    expect(first.has(Attr.Username)).toBe(false);
    expect(first.integrityOffset).toBe(-1);

    h.input(challenge(first));
    const second = h.take();
    expect(second.method).toBe(StunMethod.Allocate);
    expect(second.transactionKey).not.toBe(first.transactionKey); // a new transaction
    expect(second.get(Attr.Username)).toBe('alice');
    expect(second.get(Attr.Realm)).toBe(REALM);
    expect(second.get(Attr.Nonce)).toBe('nonce-1');
    expect(second.get(Attr.RequestedTransport)).toBe(17);
    // The MAC is HMAC-SHA1 keyed with MD5("alice:example.org:secret") (RFC 8489 section 9.2.2).
    expect(verifyMessageIntegrity(second, KEY)).toBe(true);
    expect(verifyMessageIntegrity(second, WRONG_KEY)).toBe(false);
    expect(h.core.state).toBe('allocating');

    h.input(success(second, [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600), attr(Attr.XorMappedAddress, MAPPED)]));
    expect(h.core.state).toBe('allocated');
    expect(h.takeEvents()).toEqual([
      {
        type: 'allocated',
        allocation: {
          relayedAddress: RELAYED,
          relayedAddresses: [RELAYED],
          mappedAddress: MAPPED,
          lifetime: 600,
          reservationToken: undefined,
          addressError: undefined,
        },
      },
    ]);
    expect(h.sent).toEqual([]);
  });

  it('puts the optional Allocate attributes in both requests', () => {
    const token = bytes(1, 2, 3, 4, 5, 6, 7, 8);
    const h = new Harness({ lifetime: 1200, requestedAddressFamily: 'IPv6', dontFragment: true, software: 'nat-test' }).start();
    const first = h.take();
    h.input(challenge(first));
    const second = h.take();
    for (const m of [first, second]) {
      expect(m.get(Attr.Lifetime)).toBe(1200);
      expect(m.get(Attr.RequestedAddressFamily)).toBe('IPv6');
      expect(m.get(Attr.DontFragment)).toBe(true);
      expect(m.get(Attr.Software)).toBe('nat-test');
    }
    const even = new Harness({ evenPort: { reserve: true }, additionalIPv6: true }).start().take();
    expect(even.get(Attr.EvenPort)).toEqual({ reserve: true });
    expect(even.get(Attr.AdditionalAddressFamily)).toBe('IPv6');
    const reserved = new Harness({ reservationToken: token }).start().take();
    expect([...reserved.get(Attr.ReservationToken)!]).toEqual([...token]);
  });

  it('reports both relayed addresses, the reservation token and ADDRESS-ERROR-CODE', () => {
    const h = new Harness({ additionalIPv6: true }).start();
    h.input(challenge(h.take()));
    const v6: TransportAddress = { family: 'IPv6', address: '2001:db8::5', port: 49_300 };
    const token = bytes(8, 7, 6, 5, 4, 3, 2, 1);
    h.input(
      success(h.take(), [
        attr(Attr.XorRelayedAddress, RELAYED),
        attr(Attr.XorRelayedAddress, v6),
        attr(Attr.Lifetime, 600),
        attr(Attr.ReservationToken, token),
      ]),
    );
    const info = h.core.allocation!;
    expect(info.relayedAddresses).toEqual([RELAYED, v6]);
    expect([...info.reservationToken!]).toEqual([...token]);
    const g = new Harness({ additionalIPv6: true }).start();
    g.input(challenge(g.take()));
    g.input(
      success(g.take(), [
        attr(Attr.XorRelayedAddress, RELAYED),
        attr(Attr.AddressErrorCode, { family: 'IPv6', code: 440, reason: 'Address Family not Supported' }),
        attr(Attr.Lifetime, 600),
      ]),
    );
    expect(g.core.allocation!.addressError).toEqual({ family: 'IPv6', code: 440, reason: 'Address Family not Supported' });
  });

  it('fails with 401 when the signed retry is refused too, and sends nothing more', () => {
    const h = new Harness().start();
    h.input(challenge(h.take()));
    h.input(challenge(h.take(), 401, 'nonce-2'));
    expect(h.core.state).toBe('failed');
    const [e] = h.takeEvents();
    expect(e).toMatchObject({ type: 'failed', error: { code: 'ERROR_RESPONSE', stunErrorCode: 401 } });
    h.run(100_000);
    expect(h.sent).toEqual([]);
  });

  it('retries a 438 Stale Nonce with the new nonce, a few times at most', () => {
    const h = new Harness().allocate();
    const op = h.call((c, now) => c.createPermission([PEER.address], now));
    const a = h.take();
    expect(a.get(Attr.Nonce)).toBe('nonce-1');
    h.input(challenge(a, 438, 'nonce-2'));
    const b = h.take();
    expect(b.method).toBe(StunMethod.CreatePermission);
    expect(b.transactionKey).not.toBe(a.transactionKey);
    expect(b.get(Attr.Nonce)).toBe('nonce-2');
    expect(b.getAll(Attr.XorPeerAddress)).toEqual([{ family: 'IPv4', address: PEER.address, port: 0 }]);
    expect(verifyMessageIntegrity(b, KEY)).toBe(true);
    h.input(success(b));
    expect(h.takeEvents()).toEqual([{ type: 'permission', op, peers: [PEER.address], error: undefined }]);
    expect(h.core.hasPermission(PEER.address, h.now)).toBe(true);

    // The new nonce sticks; a server that keeps saying 438 ends the operation after 3 retries.
    const op2 = h.call((c, now) => c.createPermission([PEER2.address], now));
    let m = h.take();
    expect(m.get(Attr.Nonce)).toBe('nonce-2');
    for (let i = 3; i <= 5; i++) {
      h.input(challenge(m, 438, `nonce-${i}`));
      m = h.take();
      expect(m.get(Attr.Nonce)).toBe(`nonce-${i}`);
    }
    h.input(challenge(m, 438, 'nonce-6'));
    expect(h.sent).toEqual([]);
    expect(h.takeEvents()).toMatchObject([{ type: 'permission', op: op2, error: { code: 'ERROR_RESPONSE', stunErrorCode: 438 } }]);
    expect(h.core.state).toBe('allocated');
  });

  it('reports a signed 300 Try Alternate as a redirect', () => {
    const h = new Harness().start();
    h.input(challenge(h.take()));
    const alt: TransportAddress = { family: 'IPv4', address: '192.0.2.9', port: 3478 };
    h.input(failure(h.take(), 300, [attr(Attr.AlternateServer, alt), attr(Attr.AlternateDomain, 'turn2.example.org')]));
    expect(h.core.state).toBe('redirected');
    expect(h.takeEvents()).toEqual([{ type: 'redirect', alternateServer: alt, alternateDomain: 'turn2.example.org' }]);
  });

  it('also follows a 300 to the first, unauthenticated Allocate', () => {
    const h = new Harness().start();
    const alt: TransportAddress = { family: 'IPv4', address: '192.0.2.9', port: 3478 };
    h.input(failure(h.take(), 300, [attr(Attr.AlternateServer, alt)], null));
    expect(h.takeEvents()).toEqual([{ type: 'redirect', alternateServer: alt, alternateDomain: undefined }]);
  });

  it('reports other Allocate errors with their code (486 quota)', () => {
    const h = new Harness().start();
    h.input(challenge(h.take()));
    h.input(failure(h.take(), 486));
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'ERROR_RESPONSE', stunErrorCode: 486 } }]);
  });

  it('uses SHA-256 when asked and offered, echoing PASSWORD-ALGORITHMS (RFC 8489 section 9.2.5)', () => {
    const offered = [
      { algorithm: PasswordAlgorithm.MD5, parameters: new Uint8Array(0) },
      { algorithm: PasswordAlgorithm.SHA256, parameters: new Uint8Array(0) },
    ];
    const nonce = encodeNonceCookie({ passwordAlgorithms: true, usernameAnonymity: false }, 'opaque');
    const h = new Harness({ passwordAlgorithm: 'SHA-256' }).start();
    h.input(challenge(h.take(), 401, nonce, [attr(Attr.PasswordAlgorithms, offered)]));
    const m = h.take();
    const sha = longTermKey({ username: 'alice', realm: REALM, password: 'secret', algorithm: 'SHA-256' });
    expect(m.integrityOffset).toBe(-1);
    expect(verifyMessageIntegritySha256(m, sha)).toBe(true);
    expect(m.get(Attr.PasswordAlgorithm)?.algorithm).toBe(PasswordAlgorithm.SHA256);
    expect(m.get(Attr.PasswordAlgorithms)?.map((a) => a.algorithm)).toEqual([1, 2]);
    h.input(
      encodeStunMessage(
        {
          method: m.method,
          class: StunClass.SuccessResponse,
          transactionId: m.transactionId,
          attributes: [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600)],
        },
        { integritySha256: sha },
      ),
    );
    expect(h.core.state).toBe('allocated');

    // MD5 (the default) with the same challenge: MESSAGE-INTEGRITY, PASSWORD-ALGORITHM MD5, the list echoed.
    const g = new Harness().start();
    g.input(challenge(g.take(), 401, nonce, [attr(Attr.PasswordAlgorithms, offered)]));
    const n = g.take();
    expect(verifyMessageIntegrity(n, KEY)).toBe(true);
    expect(n.get(Attr.PasswordAlgorithm)?.algorithm).toBe(PasswordAlgorithm.MD5);
    expect(n.get(Attr.PasswordAlgorithms)?.length).toBe(2);

    // SHA-256 asked but not offered: the client cannot answer the challenge.
    const k = new Harness({ passwordAlgorithm: 'SHA-256' }).start();
    k.input(challenge(k.take()));
    expect(k.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'BAD_RESPONSE' } }]);
  });
});

describe('TurnAllocationCore: response integrity', () => {
  it('over UDP discards a forged or unsigned success and keeps retransmitting until the real one', () => {
    const h = new Harness({ retransmission: { rto: 500 } }).start();
    h.input(challenge(h.take()));
    const req = h.take();
    const granted = [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600)];
    h.input(success(req, [attr(Attr.XorRelayedAddress, { family: 'IPv4', address: '6.6.6.6', port: 666 }), attr(Attr.Lifetime, 600)], WRONG_KEY));
    h.input(success(req, granted, null));
    expect(h.core.state).toBe('allocating');
    h.run(500);
    const again = h.take(); // the retransmission: same transaction
    expect(again.transactionKey).toBe(req.transactionKey);
    h.input(success(req, granted));
    expect(h.core.state).toBe('allocated');
    expect(h.core.allocation!.relayedAddress).toEqual(RELAYED);
  });

  it('over UDP reports an integrity violation, not a timeout, when every answer was forged', () => {
    const h = new Harness({ retransmission: { rto: 100, rc: 3, rm: 2 } }).start();
    h.input(challenge(h.take()));
    const req = h.take();
    h.input(success(req, [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600)], WRONG_KEY));
    h.run(10_000);
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'BAD_RESPONSE', message: expect.stringMatching(/integrity/) } }]);
  });

  it('over TCP fails the request at once on a forged answer', () => {
    const h = new Harness({ transport: 'tcp' }).start();
    h.input(challenge(h.take()));
    h.input(success(h.take(), [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600)], WRONG_KEY));
    expect(h.core.state).toBe('failed');
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'BAD_RESPONSE' } }]);
  });

  it('discards an unsigned 300 to a signed request', () => {
    const h = new Harness({ transport: 'udp' }).start();
    h.input(challenge(h.take()));
    h.input(failure(h.take(), 300, [attr(Attr.AlternateServer, { family: 'IPv4', address: '6.6.6.6', port: 3478 })], null));
    expect(h.core.state).toBe('allocating');
    expect(h.takeEvents()).toEqual([]);
  });

  it('refuses a success to the unauthenticated Allocate', () => {
    const h = new Harness().start();
    h.input(success(h.take(), [attr(Attr.XorRelayedAddress, RELAYED), attr(Attr.Lifetime, 600)], null));
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'BAD_RESPONSE' } }]);
  });
});

describe('TurnAllocationCore: retransmission through the transaction layer', () => {
  it('retransmits requests over UDP (RFC 8489 timing) and never over TCP', () => {
    const udp = new Harness().start();
    udp.run(40_000);
    expect(udp.sent.map((s) => s.at)).toEqual([0, 500, 1500, 3500, 7500, 15_500, 31_500]);
    expect(new Set(udp.sent.map((s) => decodeStunMessage(s.bytes).transactionKey)).size).toBe(1);
    expect(udp.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'TIMEOUT' } }]);
    expect(udp.sent.length).toBe(7);

    const tcp = new Harness({ transport: 'tcp' }).start();
    tcp.run(39_499);
    expect(tcp.sent.length).toBe(1);
    expect(tcp.takeEvents()).toEqual([]);
    tcp.run(39_500);
    expect(tcp.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'TIMEOUT' } }]);
  });
});

describe('TurnAllocationCore: refreshes', () => {
  it('refreshes the allocation a minute before it expires, with the granted lifetime', () => {
    const h = new Harness().allocate(600);
    expect(h.core.expiresAt).toBe(600_000);
    h.run(539_999);
    expect(h.sent).toEqual([]);
    h.run(540_000);
    const r = h.take();
    expect(h.sent).toEqual([]);
    expect(r.method).toBe(StunMethod.Refresh);
    expect(r.has(Attr.Lifetime)).toBe(false);
    expect(verifyMessageIntegrity(r, KEY)).toBe(true);
    h.input(success(r, [attr(Attr.Lifetime, 300)]));
    expect(h.takeEvents()).toEqual([{ type: 'refreshed', lifetime: 300 }]);
    expect(h.core.expiresAt).toBe(840_000);
    h.run(779_999);
    expect(h.sent).toEqual([]);
    h.run(780_000); // 300 - 60 s later
    expect(h.take().method).toBe(StunMethod.Refresh);
  });

  it('asks again for the LIFETIME it wants, and never refreshes before half the lifetime', () => {
    const h = new Harness({ lifetime: 90 }).allocate(90);
    h.run(44_999);
    expect(h.sent).toEqual([]);
    h.run(45_000); // max(45 s, 90 - 60 s)
    expect(h.take().get(Attr.Lifetime)).toBe(90);
  });

  it('retries a refresh that timed out while the allocation may still live, then gives up', () => {
    const h = new Harness({ retransmission: { rto: 1000, rc: 2, rm: 10 } }).allocate(600);
    h.run(540_000);
    h.take();
    h.run(551_000); // 1 s + 10 s: the first refresh timed out; a second one goes at once
    const again = h.sent.filter((s) => s.at === 551_000);
    expect(again.length).toBe(1);
    h.run(700_000);
    expect(h.core.state).toBe('failed');
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'TIMEOUT' } }]);
  });

  it('reports the allocation lost when a refresh gets 437', () => {
    const h = new Harness().allocate(600);
    h.run(540_000);
    h.input(failure(h.take(), 437));
    expect(h.core.state).toBe('failed');
    expect(h.takeEvents()).toMatchObject([{ type: 'failed', error: { code: 'ERROR_RESPONSE', stunErrorCode: 437 } }]);
  });

  it('refreshes permissions every 240 s, several in one request when due together', () => {
    const h = new Harness().allocate(3600);
    h.call((c, now) => c.createPermission([PEER.address], now));
    h.input(success(h.take()));
    h.run(5000);
    h.call((c, now) => c.createPermission([PEER2.address], now));
    h.input(success(h.take()));
    h.takeEvents();
    h.run(239_999);
    expect(h.sent).toEqual([]);
    h.run(240_000);
    const r = h.take();
    expect(r.method).toBe(StunMethod.CreatePermission);
    // PEER2 is due 5 s later: it joins (RFC 8656 allows several XOR-PEER-ADDRESS in one request).
    expect(r.getAll(Attr.XorPeerAddress).map((a) => a.address)).toEqual([PEER.address, PEER2.address]);
    h.input(success(r));
    expect(h.takeEvents()).toEqual([{ type: 'permission', op: undefined, peers: [PEER.address, PEER2.address], error: undefined }]);
    h.run(479_999);
    expect(h.sent).toEqual([]);
    h.run(480_000);
    expect(h.take().getAll(Attr.XorPeerAddress).length).toBe(2);
  });

  it('stops refreshing a released permission', () => {
    const h = new Harness().allocate(3600);
    h.call((c, now) => c.createPermission([PEER.address], now));
    h.input(success(h.take()));
    h.call((c) => c.release(PEER.address));
    h.run(1_000_000);
    expect(h.sent.filter((s) => decodeStunMessage(s.bytes).method === StunMethod.CreatePermission)).toEqual([]);
  });

  it('binds channels from 0x4000 up and refreshes them every 540 s, their permissions every 240 s', () => {
    const h = new Harness().allocate(3600);
    const { op, channel } = h.call((c, now) => c.bindChannel(PEER, now));
    expect(channel).toBe(0x4000);
    const b = h.take();
    expect(b.method).toBe(StunMethod.ChannelBind);
    expect(b.get(Attr.ChannelNumber)).toBe(0x4000);
    expect(b.get(Attr.XorPeerAddress)).toEqual(PEER);
    expect(verifyMessageIntegrity(b, KEY)).toBe(true);
    h.input(success(b));
    expect(h.takeEvents()).toEqual([{ type: 'channel', op, channel: 0x4000, peer: PEER, error: undefined }]);
    expect(h.call((c, now) => c.bindChannel(PEER2, now)).channel).toBe(0x4001);
    h.input(success(h.take()));
    // Binding the same peer again refreshes its channel rather than taking a new number.
    expect(h.call((c, now) => c.bindChannel(PEER, now)).channel).toBe(0x4000);
    h.input(success(h.take()));
    h.takeEvents();

    h.run(240_000);
    const perm = h.take();
    expect(perm.method).toBe(StunMethod.CreatePermission);
    expect(perm.getAll(Attr.XorPeerAddress).map((a) => a.address)).toEqual([PEER.address, PEER2.address]);
    h.input(success(perm));
    h.run(479_999);
    expect(h.sent).toEqual([]);
    h.run(480_000);
    const perm2 = h.take();
    expect(perm2.method).toBe(StunMethod.CreatePermission);
    h.input(success(perm2));
    h.run(539_999);
    expect(h.sent).toEqual([]);
    h.run(540_000);
    const [r1, r2] = [h.take(), h.take()];
    expect([r1.method, r2.method]).toEqual([StunMethod.ChannelBind, StunMethod.ChannelBind]);
    expect([r1.get(Attr.ChannelNumber), r2.get(Attr.ChannelNumber)]).toEqual([0x4000, 0x4001]);
    expect(h.sent).toEqual([]);
  });
});

describe('TurnAllocationCore: sending and receiving data', () => {
  it('queues data until the permission is confirmed, then sends Send indications', () => {
    const h = new Harness({ maxQueuedPackets: 2 }).allocate();
    expect(h.call((c, now) => c.send(PEER, text('one'), now))).toBe('queued');
    const perm = h.take();
    expect(perm.method).toBe(StunMethod.CreatePermission);
    expect(h.call((c, now) => c.send(PEER, text('two'), now))).toBe('queued');
    expect(h.sent).toEqual([]); // one CreatePermission for both
    expect(h.call((c, now) => c.send(PEER, text('three'), now))).toBe('dropped');
    h.input(success(perm));
    const [one, two] = [h.take(), h.take()];
    for (const [m, s] of [
      [one, 'one'],
      [two, 'two'],
    ] as const) {
      expect(m.method).toBe(StunMethod.Send);
      expect(m.class).toBe(StunClass.Indication);
      expect(m.get(Attr.XorPeerAddress)).toEqual(PEER);
      expect(new TextDecoder().decode(m.get(Attr.Data))).toBe(s);
      expect(m.integrityOffset).toBe(-1); // indications are not signed (RFC 8656 section 10.1)
    }
    expect(h.call((c, now) => c.send(PEER, text('four'), now))).toBe('indication');
    expect(h.take().method).toBe(StunMethod.Send);
    expect(h.core.stats).toMatchObject({ indicationsSent: 3, dropped: 1 });
  });

  it('sends up to 65,500 bytes in a Send indication toward an IPv6 peer, and refuses more', () => {
    const h = new Harness({ dontFragment: true }).allocate();
    const v6: TransportAddress = { family: 'IPv6', address: '2001:db8::20', port: 7000 };
    h.call((c, now) => c.createPermission([v6.address], now));
    h.input(success(h.take()));
    expect(h.call((c, now) => c.send(v6, new Uint8Array(65_500), now))).toBe('indication');
    const m = h.take();
    expect(m.get(Attr.Data)!.length).toBe(65_500);
    expect(m.get(Attr.DontFragment)).toBe(true);
    expect(() => h.call((c, now) => c.send(v6, new Uint8Array(65_501), now))).toThrow(RangeError);
  });

  it('drops what waits for a refused permission', () => {
    const h = new Harness().allocate();
    h.call((c, now) => c.send(PEER, text('x'), now));
    h.input(failure(h.take(), 403));
    expect(h.takeEvents()).toMatchObject([{ type: 'permission', op: undefined, error: { stunErrorCode: 403 } }]);
    expect(h.sent).toEqual([]);
    expect(h.core.stats.dropped).toBe(1);
  });

  it('sends ChannelData once the channel is confirmed, a Send indication before', () => {
    const h = new Harness().allocate();
    h.call((c, now) => c.createPermission([PEER.address], now));
    h.input(success(h.take()));
    h.call((c, now) => c.bindChannel(PEER, now));
    const bind = h.take();
    expect(h.call((c, now) => c.send(PEER, text('hello'), now))).toBe('indication');
    expect(h.take().method).toBe(StunMethod.Send);
    h.input(success(bind));
    expect(h.call((c, now) => c.send(PEER, text('hello'), now))).toBe('channel');
    // RFC 8656 section 12.4: channel number, length, data; unpadded over UDP.
    expect([...h.takeRaw()]).toEqual([0x40, 0x00, 0x00, 0x05, ...text('hello')]);
    // Another port on the same IP has a permission but no channel.
    expect(h.call((c, now) => c.send({ ...PEER, port: 5001 }, text('x'), now))).toBe('indication');
  });

  it('pads ChannelData to 4 bytes over TCP (RFC 8656 section 12.5)', () => {
    const h = new Harness({ transport: 'tcp' }).allocate();
    h.call((c, now) => c.bindChannel(PEER, now));
    // Data waits for the ChannelBind, which installs the permission too.
    expect(h.call((c, now) => c.send(PEER, text('early'), now))).toBe('queued');
    h.input(success(h.take()));
    expect([...h.takeRaw()]).toEqual([0x40, 0x00, 0x00, 0x05, ...text('early'), 0, 0, 0]);
    h.call((c, now) => c.send(PEER, text('abcd'), now));
    expect([...h.takeRaw()]).toEqual([0x40, 0x00, 0x00, 0x04, ...text('abcd')]);
  });

  it('delivers Data indications from permitted peers and ChannelData on bound channels, and drops the rest', () => {
    const h = new Harness().allocate();
    h.call((c, now) => c.createPermission([PEER.address], now));
    h.input(success(h.take()));
    h.call((c, now) => c.bindChannel(PEER2, now));
    h.input(success(h.take()));
    h.takeEvents();

    h.input(dataIndication(PEER, text('via indication')));
    h.input(dataIndication({ family: 'IPv4', address: '192.0.2.66', port: 1 }, text('stranger')));
    h.input(bytes(0x40, 0x00, 0x00, 0x03, 0x61, 0x62, 0x63, 0x00)); // channel 0x4000, padded
    h.input(bytes(0x40, 0x07, 0x00, 0x01, 0x61)); // channel 0x4007: not bound
    h.input(bytes(0x40, 0x00, 0x00, 0x09, 0x61)); // shorter than its length
    const events = h.takeEvents();
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ type: 'data', peer: PEER, channel: undefined });
    expect(new TextDecoder().decode((events[0] as { data: Uint8Array }).data)).toBe('via indication');
    expect(events[1]).toMatchObject({ type: 'data', peer: PEER2, channel: 0x4000 });
    expect([...(events[1] as { data: Uint8Array }).data]).toEqual([0x61, 0x62, 0x63]);
    expect(h.core.stats).toMatchObject({ received: 2, dropped: 3 });
  });
});

describe('TurnAllocationCore: close', () => {
  it('deallocates with a signed Refresh of LIFETIME 0, then reports closed', () => {
    const h = new Harness().allocate();
    h.call((c) => c.close(h.now));
    expect(h.core.state).toBe('closing');
    const r = h.take();
    expect(r.method).toBe(StunMethod.Refresh);
    expect(r.get(Attr.Lifetime)).toBe(0);
    expect(verifyMessageIntegrity(r, KEY)).toBe(true);
    h.input(success(r, [attr(Attr.Lifetime, 0)]));
    expect(h.core.state).toBe('closed');
    expect(h.takeEvents()).toEqual([{ type: 'closed' }]);
    expect(h.call((c, now) => c.send(PEER, text('late'), now))).toBe('dropped');
    expect(h.core.pollTimeout()).toBeUndefined();
  });

  it('retries the deallocation on 438 and counts 437 as done', () => {
    const h = new Harness().allocate();
    h.call((c) => c.close(h.now));
    h.input(challenge(h.take(), 438, 'nonce-9'));
    const again = h.take();
    expect(again.get(Attr.Nonce)).toBe('nonce-9');
    expect(again.get(Attr.Lifetime)).toBe(0);
    h.input(failure(again, 437));
    expect(h.takeEvents()).toEqual([{ type: 'closed' }]);
  });

  it('abandons an Allocate under way', () => {
    const h = new Harness().start();
    h.take();
    h.call((c) => c.close(h.now));
    expect(h.core.state).toBe('closed');
    expect(h.takeEvents()).toEqual([{ type: 'closed' }]);
    h.run(100_000);
    expect(h.sent).toEqual([]);
  });
});
