import { describe, expect, it } from 'vitest';
import {
  Attr,
  DecodeError,
  EncodeError,
  StunClass,
  StunMethod,
  attr,
  classOfType,
  decodeStunMessage,
  encodeMessageType,
  encodeStunMessage,
  errorCode,
  looksLikeStun,
  methodOfType,
  rawAttribute,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../src/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const TID = fromHex('b7e7a701bc34d686fa87dfae');

describe('message type (RFC 8489 section 5)', () => {
  it.each([
    [StunMethod.Binding, StunClass.Request, 0x0001],
    [StunMethod.Binding, StunClass.Indication, 0x0011],
    [StunMethod.Binding, StunClass.SuccessResponse, 0x0101],
    [StunMethod.Binding, StunClass.ErrorResponse, 0x0111],
    [StunMethod.Allocate, StunClass.Request, 0x0003],
    [StunMethod.Allocate, StunClass.ErrorResponse, 0x0113],
    [StunMethod.Send, StunClass.Indication, 0x0016],
    [StunMethod.Data, StunClass.Indication, 0x0017],
    [StunMethod.ChannelBind, StunClass.SuccessResponse, 0x0109],
    [StunMethod.ConnectionAttempt, StunClass.Request, 0x000c],
    [0xfff, StunClass.ErrorResponse, 0x3fff],
    [0x080, StunClass.Request, 0x0200],
  ])('method 0x%s class %s is type 0x%s', (method, cls, type) => {
    expect(encodeMessageType(method, cls)).toBe(type);
    expect(methodOfType(type)).toBe(method);
    expect(classOfType(type)).toBe(cls);
  });

  it('round-trips every method and class', () => {
    for (let method = 0; method < 0x1000; method++) {
      for (const cls of [0, 1, 2, 3] as const) {
        const t = encodeMessageType(method, cls);
        expect(t).toBeLessThan(0x4000);
        expect(methodOfType(t)).toBe(method);
        expect(classOfType(t)).toBe(cls);
      }
    }
  });
});

describe('header', () => {
  it('encodes a bare binding request byte for byte', () => {
    const m = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: TID });
    expect(hex(m)).toBe('000100002112a442b7e7a701bc34d686fa87dfae');
    const d = decodeStunMessage(m);
    expect(d.method).toBe(StunMethod.Binding);
    expect(d.class).toBe(StunClass.Request);
    expect(d.classic).toBe(false);
    expect(hex(d.transactionId)).toBe(hex(TID));
    expect(d.attributeCount).toBe(0);
  });

  it('makes random 96-bit transaction ids', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      ids.add(hex(decodeStunMessage(encodeStunMessage({ method: 1, class: 0 })).transactionId));
    }
    expect(ids.size).toBe(2000);
  });

  it('rejects what is not STUN with a typed error', () => {
    const good = encodeStunMessage({ method: 1, class: 0, transactionId: TID, attributes: [attr(Attr.Software, 'abc')] });
    const cases: [Uint8Array, string][] = [
      [good.subarray(0, 19), 'TRUNCATED'],
      [good.subarray(0, good.length - 4), 'TRUNCATED'],
      [Uint8Array.from([0x80, ...good.subarray(1)]), 'NOT_STUN'],
      [Uint8Array.from([...good.subarray(0, 3), 0x07, ...good.subarray(4)]), 'BAD_LENGTH'],
      [Uint8Array.from([...good, 0, 0, 0, 0]), 'BAD_LENGTH'],
    ];
    for (const [bytes, code] of cases) {
      let err: unknown;
      try {
        decodeStunMessage(bytes);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe(code);
    }
  });

  it('rejects an attribute running past the end', () => {
    const m = fromHex('000100082112a442b7e7a701bc34d686fa87dfae 8022 0008 61626364');
    expect(() => decodeStunMessage(m)).toThrow(DecodeError);
  });

  it('checks looksLikeStun cheaply', () => {
    const m = encodeStunMessage({ method: 1, class: 0, transactionId: TID });
    expect(looksLikeStun(m)).toBe(true);
    expect(looksLikeStun(m.subarray(0, 19))).toBe(false);
    const classic = encodeStunMessage({ method: 1, class: 0, transactionId: new Uint8Array(16).fill(7) });
    expect(looksLikeStun(classic)).toBe(false);
    expect(looksLikeStun(classic, true)).toBe(true);
  });
});

/** Views of a Buffer and fresh Uint8Arrays compare equal by content. */
const normalize = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? hex(v)
    : Array.isArray(v)
      ? v.map(normalize)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]))
        : v;

interface Case {
  name: string;
  entry: ReturnType<typeof attr>;
  /** attribute TLV, hex, as the RFC lays it out (padding included) */
  wire: string;
  expected: unknown;
}

// Expected bytes are worked out by hand from each RFC's figure.
const cases: Case[] = [
  {
    name: 'MAPPED-ADDRESS v4',
    entry: attr(Attr.MappedAddress, { family: 'IPv4', address: '192.0.2.1', port: 32853 }),
    wire: '0001 0008 0001 8055 c0000201',
    expected: { family: 'IPv4', address: '192.0.2.1', port: 32853 },
  },
  // RFC 5769 section 2.2: 192.0.2.1:32853 xored is a1 47 e1 12 a6 43
  {
    name: 'XOR-MAPPED-ADDRESS v4',
    entry: attr(Attr.XorMappedAddress, { family: 'IPv4', address: '192.0.2.1', port: 32853 }),
    wire: '0020 0008 0001 a147 e112a643',
    expected: { family: 'IPv4', address: '192.0.2.1', port: 32853 },
  },
  {
    name: 'XOR-MAPPED-ADDRESS v6',
    entry: attr(Attr.XorMappedAddress, { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }),
    wire: '0020 0014 0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9',
    expected: { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 },
  },
  { name: 'USERNAME', entry: attr(Attr.Username, 'evtj:h6vY'), wire: '0006 0009 6576746a3a68367659 000000', expected: 'evtj:h6vY' },
  {
    name: 'ERROR-CODE 438',
    entry: attr(Attr.ErrorCode, errorCode(438)),
    wire: '0009 000f 00000426 5374616c65204e6f6e6365 00',
    expected: { code: 438, reason: 'Stale Nonce' },
  },
  {
    name: 'UNKNOWN-ATTRIBUTES odd',
    entry: attr(Attr.UnknownAttributes, [0x0031, 0x7777, 0x0042]),
    wire: '000a 0006 0031 7777 0042 0000',
    expected: [0x31, 0x7777, 0x42],
  },
  { name: 'REALM', entry: attr(Attr.Realm, 'example.org'), wire: '0014 000b 6578616d706c652e6f7267 00', expected: 'example.org' },
  { name: 'NONCE', entry: attr(Attr.Nonce, 'abcd'), wire: '0015 0004 61626364', expected: 'abcd' },
  {
    name: 'PASSWORD-ALGORITHM',
    entry: attr(Attr.PasswordAlgorithm, { algorithm: 2, parameters: new Uint8Array(0) }),
    wire: '001d 0004 0002 0000',
    expected: { algorithm: 2, parameters: new Uint8Array(0) },
  },
  {
    name: 'PASSWORD-ALGORITHMS',
    entry: attr(Attr.PasswordAlgorithms, [
      { algorithm: 2, parameters: new Uint8Array(0) },
      { algorithm: 1, parameters: Uint8Array.of(9) },
    ]),
    wire: '8002 000c 0002 0000 0001 0001 09000000',
    expected: [
      { algorithm: 2, parameters: new Uint8Array(0) },
      { algorithm: 1, parameters: Uint8Array.of(9) },
    ],
  },
  {
    name: 'USERHASH',
    entry: attr(Attr.Userhash, new Uint8Array(32).fill(0xab)),
    wire: `001e 0020 ${'ab'.repeat(32)}`,
    expected: new Uint8Array(32).fill(0xab),
  },
  { name: 'ALTERNATE-DOMAIN', entry: attr(Attr.AlternateDomain, 'turn.example'), wire: '8003 000c 7475726e2e6578616d706c65', expected: 'turn.example' },
  { name: 'SOFTWARE', entry: attr(Attr.Software, 'nat 1'), wire: '8022 0005 6e61742031 000000', expected: 'nat 1' },
  {
    name: 'ALTERNATE-SERVER v6',
    entry: attr(Attr.AlternateServer, { family: 'IPv6', address: '2001:db8::1', port: 3478 }),
    wire: '8023 0014 0002 0d96 20010db8 00000000 00000000 00000001',
    expected: { family: 'IPv6', address: '2001:db8::1', port: 3478 },
  },
  {
    name: 'RESPONSE-ADDRESS',
    entry: attr(Attr.ResponseAddress, { family: 'IPv4', address: '10.0.0.1', port: 1 }),
    wire: '0002 0008 0001 0001 0a000001',
    expected: { family: 'IPv4', address: '10.0.0.1', port: 1 },
  },
  {
    name: 'CHANGE-REQUEST ip+port',
    entry: attr(Attr.ChangeRequest, { changeIp: true, changePort: true }),
    wire: '0003 0004 00000006',
    expected: { changeIp: true, changePort: true },
  },
  {
    name: 'CHANGE-REQUEST port',
    entry: attr(Attr.ChangeRequest, { changeIp: false, changePort: true }),
    wire: '0003 0004 00000002',
    expected: { changeIp: false, changePort: true },
  },
  {
    name: 'SOURCE-ADDRESS',
    entry: attr(Attr.SourceAddress, { family: 'IPv4', address: '127.0.0.1', port: 3478 }),
    wire: '0004 0008 0001 0d96 7f000001',
    expected: { family: 'IPv4', address: '127.0.0.1', port: 3478 },
  },
  {
    name: 'CHANGED-ADDRESS',
    entry: attr(Attr.ChangedAddress, { family: 'IPv4', address: '127.0.0.2', port: 3479 }),
    wire: '0005 0008 0001 0d97 7f000002',
    expected: { family: 'IPv4', address: '127.0.0.2', port: 3479 },
  },
  { name: 'PASSWORD (RFC 3489)', entry: attr(Attr.Password, Uint8Array.of(1, 2, 3, 4)), wire: '0007 0004 01020304', expected: Uint8Array.of(1, 2, 3, 4) },
  {
    name: 'REFLECTED-FROM',
    entry: attr(Attr.ReflectedFrom, { family: 'IPv4', address: '1.2.3.4', port: 5 }),
    wire: '000b 0008 0001 0005 01020304',
    expected: { family: 'IPv4', address: '1.2.3.4', port: 5 },
  },
  { name: 'PADDING', entry: attr(Attr.Padding, new Uint8Array(6)), wire: '0026 0006 000000000000 0000', expected: new Uint8Array(6) },
  { name: 'RESPONSE-PORT', entry: attr(Attr.ResponsePort, 40000), wire: '0027 0004 9c40 0000', expected: 40000 },
  { name: 'CACHE-TIMEOUT', entry: attr(Attr.CacheTimeout, 60), wire: '8027 0004 0000003c', expected: 60 },
  {
    name: 'RESPONSE-ORIGIN',
    entry: attr(Attr.ResponseOrigin, { family: 'IPv4', address: '127.0.0.1', port: 3478 }),
    wire: '802b 0008 0001 0d96 7f000001',
    expected: { family: 'IPv4', address: '127.0.0.1', port: 3478 },
  },
  {
    name: 'OTHER-ADDRESS',
    entry: attr(Attr.OtherAddress, { family: 'IPv4', address: '127.0.0.2', port: 3479 }),
    wire: '802c 0008 0001 0d97 7f000002',
    expected: { family: 'IPv4', address: '127.0.0.2', port: 3479 },
  },
  { name: 'CHANNEL-NUMBER', entry: attr(Attr.ChannelNumber, 0x4001), wire: '000c 0004 4001 0000', expected: 0x4001 },
  { name: 'LIFETIME', entry: attr(Attr.Lifetime, 600), wire: '000d 0004 00000258', expected: 600 },
  // 198.51.100.7:49152 xored: port c000^2112 = e112; address c6336407 ^ 2112a442 = e721c045
  {
    name: 'XOR-PEER-ADDRESS',
    entry: attr(Attr.XorPeerAddress, { family: 'IPv4', address: '198.51.100.7', port: 49152 }),
    wire: '0012 0008 0001 e112 e721c045',
    expected: { family: 'IPv4', address: '198.51.100.7', port: 49152 },
  },
  { name: 'DATA', entry: attr(Attr.Data, Uint8Array.of(0xde, 0xad, 0xbe)), wire: '0013 0003 deadbe 00', expected: Uint8Array.of(0xde, 0xad, 0xbe) },
  {
    name: 'XOR-RELAYED-ADDRESS',
    entry: attr(Attr.XorRelayedAddress, { family: 'IPv4', address: '203.0.113.1', port: 50000 }),
    wire: '0016 0008 0001 e242 ea12d543',
    expected: { family: 'IPv4', address: '203.0.113.1', port: 50000 },
  },
  { name: 'REQUESTED-ADDRESS-FAMILY', entry: attr(Attr.RequestedAddressFamily, 'IPv6'), wire: '0017 0004 02000000', expected: 'IPv6' },
  { name: 'EVEN-PORT', entry: attr(Attr.EvenPort, { reserve: true }), wire: '0018 0001 80 000000', expected: { reserve: true } },
  { name: 'REQUESTED-TRANSPORT', entry: attr(Attr.RequestedTransport, 17), wire: '0019 0004 11000000', expected: 17 },
  { name: 'DONT-FRAGMENT', entry: attr(Attr.DontFragment, true), wire: '001a 0000', expected: true },
  {
    name: 'RESERVATION-TOKEN',
    entry: attr(Attr.ReservationToken, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)),
    wire: '0022 0008 0102030405060708',
    expected: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  },
  { name: 'ADDITIONAL-ADDRESS-FAMILY', entry: attr(Attr.AdditionalAddressFamily, 'IPv6'), wire: '8000 0004 02000000', expected: 'IPv6' },
  {
    name: 'ADDRESS-ERROR-CODE',
    entry: attr(Attr.AddressErrorCode, { family: 'IPv6', code: 440, reason: 'no v6' }),
    wire: '8001 0009 02000428 6e6f207636 000000',
    expected: { family: 'IPv6', code: 440, reason: 'no v6' },
  },
  {
    name: 'ICMP',
    entry: attr(Attr.Icmp, { icmpType: 3, icmpCode: 4, errorData: 1400 }),
    wire: '8004 0008 0000 0304 00000578',
    expected: { icmpType: 3, icmpCode: 4, errorData: 1400 },
  },
  { name: 'CONNECTION-ID', entry: attr(Attr.ConnectionId, 0xdeadbeef), wire: '002a 0004 deadbeef', expected: 0xdeadbeef },
  { name: 'PRIORITY', entry: attr(Attr.Priority, 0x6e0001ff), wire: '0024 0004 6e0001ff', expected: 0x6e0001ff },
  { name: 'USE-CANDIDATE', entry: attr(Attr.UseCandidate, true), wire: '0025 0000', expected: true },
  { name: 'ICE-CONTROLLED', entry: attr(Attr.IceControlled, 0x932ff9b151263b36n), wire: '8029 0008 932ff9b151263b36', expected: 0x932ff9b151263b36n },
  { name: 'ICE-CONTROLLING', entry: attr(Attr.IceControlling, 0xffffffffffffffffn), wire: '802a 0008 ffffffffffffffff', expected: 0xffffffffffffffffn },
];

describe('attributes: wire bytes and round trip', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const m = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: TID, attributes: [c.entry] });
    expect(hex(m.subarray(20))).toBe(c.wire.replace(/\s+/g, ''));
    const d = decodeStunMessage(m);
    expect(d.attributeCount).toBe(1);
    const got = d.get(c.entry.spec);
    if (c.expected instanceof Uint8Array) expect(hex(got as Uint8Array)).toBe(hex(c.expected));
    else expect(normalize(got)).toEqual(normalize(c.expected));
  });

  it('covers every registered attribute', async () => {
    const { ATTRIBUTE_REGISTRY } = await import('../src/index.js');
    const covered = new Set(cases.map((c) => c.entry.spec.type));
    // MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT are written by the encoder itself (tested below).
    const missing = [...ATTRIBUTE_REGISTRY.values()].filter((s) => !covered.has(s.type) && ![0x0008, 0x001c, 0x8028].includes(s.type));
    expect(missing.map((s) => s.name)).toEqual([]);
  });

  it('decodes a 1-byte-per-line odd-length attribute sequence and keeps order', () => {
    const m = encodeStunMessage({
      method: StunMethod.Allocate,
      class: StunClass.Request,
      transactionId: TID,
      attributes: [attr(Attr.RequestedTransport, 17), attr(Attr.DontFragment, true), attr(Attr.Username, 'u'), attr(Attr.Lifetime, 3600)],
    });
    const d = decodeStunMessage(m);
    expect(d.attributes().map((a) => a.type)).toEqual([0x0019, 0x001a, 0x0006, 0x000d]);
    expect(d.get(Attr.Lifetime)).toBe(3600);
  });

  it('returns every XOR-PEER-ADDRESS of a CreatePermission', () => {
    const peers = ['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((address) => ({ family: 'IPv4' as const, address, port: 0 }));
    const m = encodeStunMessage({
      method: StunMethod.CreatePermission,
      class: StunClass.Request,
      transactionId: TID,
      attributes: peers.map((p) => attr(Attr.XorPeerAddress, p)),
    });
    expect(decodeStunMessage(m).getAll(Attr.XorPeerAddress)).toEqual(peers);
  });

  it('refuses values it cannot encode with EncodeError', () => {
    const bad = [
      attr(Attr.Username, 'x'.repeat(600)),
      attr(Attr.Software, 'é'.repeat(128)),
      attr(Attr.ErrorCode, { code: 200, reason: 'OK' }),
      attr(Attr.XorMappedAddress, { family: 'IPv4', address: '::1', port: 1 }),
      attr(Attr.XorMappedAddress, { family: 'IPv4', address: '1.2.3.4', port: 70000 }),
      attr(Attr.Lifetime, -1),
      attr(Attr.MessageIntegrity, new Uint8Array(19)),
      attr(Attr.Data, new Uint8Array(70000)),
    ];
    for (const entry of bad) {
      expect(() => encodeStunMessage({ method: 1, class: 0, transactionId: TID, attributes: [entry] })).toThrow(EncodeError);
    }
  });

  it('reports malformed attribute values as DecodeError when read', () => {
    const check = (wire: string, read: (m: ReturnType<typeof decodeStunMessage>) => unknown): void => {
      const body = fromHex(wire);
      const m = new Uint8Array(20 + body.length);
      m.set(fromHex(`0001${body.length.toString(16).padStart(4, '0')}2112a442b7e7a701bc34d686fa87dfae`));
      m.set(body, 20);
      const d = decodeStunMessage(m);
      expect(() => read(d)).toThrow(DecodeError);
    };
    check('0020 0008 0003 a147 e112a643', (d) => d.get(Attr.XorMappedAddress)); // family 3
    check('0020 0008 0002 a147 e112a643', (d) => d.get(Attr.XorMappedAddress)); // v6 with 4 bytes
    check('0009 0004 00000163', (d) => d.get(Attr.ErrorCode)); // class 1
    check('0009 0004 00000364', (d) => d.get(Attr.ErrorCode)); // number 100
    check('000d 0002 0000 0000', (d) => d.get(Attr.Lifetime));
    check('001e 0004 00000000', (d) => d.get(Attr.Userhash));
    check('8002 0004 0001 0008', (d) => d.get(Attr.PasswordAlgorithms)); // params past end
  });
});

describe('ordering rules', () => {
  it('ignores attributes after MESSAGE-INTEGRITY except MI-SHA256 and FINGERPRINT (RFC 8489 section 14.5)', () => {
    const key = new TextEncoder().encode('secret');
    const base = encodeStunMessage({ method: 1, class: 0, transactionId: TID, attributes: [attr(Attr.Username, 'a:b')] }, { integrity: key });
    // append a SOFTWARE attribute after MESSAGE-INTEGRITY
    const extra = fromHex('8022 0004 61626364');
    const m = new Uint8Array(base.length + extra.length);
    m.set(base);
    m.set(extra, base.length);
    m[3] = m[3]! + extra.length;
    const d = decodeStunMessage(m);
    expect(d.has(Attr.Software)).toBe(false);
    expect(d.has(Attr.MessageIntegrity)).toBe(true);
    expect(verifyMessageIntegrity(d, key)).toBe(true);
  });

  it('rejects anything after FINGERPRINT', () => {
    const base = encodeStunMessage({ method: 1, class: 0, transactionId: TID }, { fingerprint: true });
    const m = new Uint8Array(base.length + 8);
    m.set(base);
    m.set(fromHex('8022 0004 61626364'), base.length);
    m[3] = m[3]! + 8;
    expect(() => decodeStunMessage(m)).toThrow(expect.objectContaining({ code: 'BAD_ORDER' }));
  });
});

describe('integrity and fingerprint', () => {
  const key = new TextEncoder().encode('VOkJxbRl1RmTxUk/WvJxBt');

  it('signs and verifies MESSAGE-INTEGRITY, MI-SHA256 and FINGERPRINT together', () => {
    const m = encodeStunMessage(
      { method: 1, class: 0, transactionId: TID, attributes: [attr(Attr.Username, 'evtj:h6vY'), attr(Attr.Priority, 1)] },
      { integrity: key, integritySha256: key, fingerprint: true },
    );
    const d = decodeStunMessage(m);
    expect(d.attributes().map((a) => a.type)).toEqual([0x0006, 0x0024, 0x0008, 0x001c, 0x8028]);
    expect(verifyMessageIntegrity(d, key)).toBe(true);
    expect(verifyMessageIntegritySha256(d, key)).toBe(true);
    expect(verifyFingerprint(d)).toBe(true);
    const wrong = new TextEncoder().encode('VOkJxbRl1RmTxUk/WvJxBT');
    expect(verifyMessageIntegrity(d, wrong)).toBe(false);
    expect(verifyMessageIntegritySha256(d, wrong)).toBe(false);
  });

  it('detects a flipped bit anywhere before the MAC', () => {
    const m = encodeStunMessage(
      { method: 1, class: 0, transactionId: TID, attributes: [attr(Attr.Username, 'evtj:h6vY')] },
      { integrity: key, fingerprint: true },
    );
    const d0 = decodeStunMessage(m);
    for (let i = 4; i < d0.integrityOffset; i++) {
      const copy = Uint8Array.from(m);
      copy[i] = copy[i]! ^ 0x01;
      let d;
      try {
        d = decodeStunMessage(copy);
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError); // a flipped length bit breaks the framing: also caught
        continue;
      }
      expect(verifyMessageIntegrity(d, key)).toBe(false);
      expect(verifyFingerprint(d)).toBe(false);
    }
  });

  it('supports a truncated MESSAGE-INTEGRITY-SHA256', () => {
    const m = encodeStunMessage({ method: 1, class: 0, transactionId: TID }, { integritySha256: key, integritySha256Length: 16 });
    const d = decodeStunMessage(m);
    expect(d.raw(0x001c)?.length).toBe(16);
    expect(verifyMessageIntegritySha256(d, key)).toBe(true);
  });

  it('leaves the input bytes unchanged while verifying', () => {
    const m = encodeStunMessage({ method: 1, class: 0, transactionId: TID }, { integrity: key, fingerprint: true });
    const before = hex(m);
    const d = decodeStunMessage(m);
    verifyMessageIntegrity(d, key);
    verifyFingerprint(d);
    expect(hex(m)).toBe(before);
  });

  it('answers false, not an exception, when the attribute is missing', () => {
    const d = decodeStunMessage(encodeStunMessage({ method: 1, class: 0, transactionId: TID }));
    expect(verifyMessageIntegrity(d, key)).toBe(false);
    expect(verifyMessageIntegritySha256(d, key)).toBe(false);
    expect(verifyFingerprint(d)).toBe(false);
  });
});

describe('comprehension (RFC 8489 section 7.3.1)', () => {
  it('reports unknown comprehension-required attributes and keeps unknown optional ones', () => {
    const m = encodeStunMessage({
      method: 1,
      class: 0,
      transactionId: TID,
      attributes: [
        rawAttribute(0x7777, Uint8Array.of(1)),
        rawAttribute(0xc001, Uint8Array.of(2, 3)),
        attr(Attr.Priority, 5),
        rawAttribute(0x7777, Uint8Array.of(4)),
      ],
    });
    const d = decodeStunMessage(m);
    expect(d.unknownComprehensionRequired()).toEqual([0x7777]);
    expect(hex(d.raw(0xc001)!)).toBe('0203');
    // a STUN-only server that does not understand ICE's PRIORITY would list it too
    expect(d.unknownComprehensionRequired((t) => t === 0x0006)).toEqual([0x7777, 0x0024]);
  });
});

describe('classic RFC 3489 messages', () => {
  it('decodes a classic binding response with MAPPED, SOURCE and CHANGED addresses', () => {
    // A response as an RFC 3489 server (e.g. Debian's stund) sends it: 16-byte transaction id.
    const tid = '0123456789abcdef0123456789abcdef';
    const body = '0001 0008 0001 1e61 c6120002 0004 0008 0001 0d96 cb007101 0005 0008 0001 0d97 cb007102';
    const len = fromHex(body).length.toString(16).padStart(4, '0');
    const d = decodeStunMessage(fromHex(`0101 ${len} ${tid} ${body}`));
    expect(d.classic).toBe(true);
    expect(hex(d.transactionId)).toBe(tid);
    expect(d.class).toBe(StunClass.SuccessResponse);
    expect(d.get(Attr.MappedAddress)).toEqual({ family: 'IPv4', address: '198.18.0.2', port: 7777 });
    expect(d.get(Attr.SourceAddress)).toEqual({ family: 'IPv4', address: '203.0.113.1', port: 3478 });
    expect(d.get(Attr.ChangedAddress)).toEqual({ family: 'IPv4', address: '203.0.113.2', port: 3479 });
  });

  it('encodes a classic request with a 16-byte id and no cookie', () => {
    const tid = fromHex('0123456789abcdef0123456789abcdef');
    const m = encodeStunMessage({ method: 1, class: 0, transactionId: tid, attributes: [attr(Attr.ChangeRequest, { changeIp: true, changePort: false })] });
    expect(hex(m)).toBe('00010008' + hex(tid) + '000300040000000' + '4');
    expect(decodeStunMessage(m).classic).toBe(true);
    expect(() => decodeStunMessage(m, { allowClassic: false })).toThrow(DecodeError);
  });
});

describe('describe()', () => {
  it('names every attribute for logs', () => {
    const d = decodeStunMessage(
      encodeStunMessage({
        method: StunMethod.Allocate,
        class: StunClass.ErrorResponse,
        transactionId: TID,
        attributes: [attr(Attr.ErrorCode, errorCode(401)), attr(Attr.Realm, 'r'), attr(Attr.IceControlled, 5n)],
      }),
    );
    expect(d.describe()).toEqual({
      method: 'Allocate',
      class: 'ErrorResponse',
      classic: false,
      transactionId: hex(TID),
      attributes: [
        { name: 'ERROR-CODE', value: { code: 401, reason: 'Unauthenticated' } },
        { name: 'REALM', value: 'r' },
        { name: 'ICE-CONTROLLED', value: '5' },
      ],
    });
  });
});
