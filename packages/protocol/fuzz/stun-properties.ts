/**
 * Properties of the STUN decoder under hostile input, shared by the test suite (a few thousand
 * cases per run) and `pnpm fuzz` (100,000+ cases). Each property checks that decoding random or
 * mutated bytes either succeeds or throws DecodeError, never anything else; that nothing outside
 * the input is read (the same bytes decoded inside a larger buffer full of other bytes decode
 * identically); and that every attribute of a decoded message decodes or fails with DecodeError.
 */
import fc from 'fast-check';
import {
  ATTRIBUTE_REGISTRY,
  Attr,
  DecodeError,
  StunClass,
  StunMethod,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  errorCode,
  rawAttribute,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../src/index.js';

const KEY = new TextEncoder().encode('fuzz-key');

/** A corpus of valid messages covering every registered attribute, classic and modern. */
export function seedCorpus(): Uint8Array[] {
  const tid = new Uint8Array(12).fill(0x5a);
  const v4 = { family: 'IPv4' as const, address: '203.0.113.9', port: 40000 };
  const v6 = { family: 'IPv6' as const, address: '2001:db8::9', port: 40001 };
  const m = (method: number, cls: StunClass, attributes: ReturnType<typeof attr>[], opts = {}): Uint8Array =>
    encodeStunMessage({ method, class: cls, transactionId: tid, attributes }, opts);
  return [
    m(StunMethod.Binding, StunClass.Request, [], { fingerprint: true }),
    m(
      StunMethod.Binding,
      StunClass.Request,
      [attr(Attr.Username, 'a:b'), attr(Attr.Priority, 1), attr(Attr.IceControlling, 7n), attr(Attr.UseCandidate, true)],
      { integrity: KEY, fingerprint: true },
    ),
    m(
      StunMethod.Binding,
      StunClass.SuccessResponse,
      [attr(Attr.XorMappedAddress, v4), attr(Attr.MappedAddress, v4), attr(Attr.ResponseOrigin, v4), attr(Attr.OtherAddress, v4), attr(Attr.Software, 'fuzz')],
      { fingerprint: true },
    ),
    m(StunMethod.Binding, StunClass.SuccessResponse, [attr(Attr.XorMappedAddress, v6)], { integrity: KEY, integritySha256: KEY, fingerprint: true }),
    m(StunMethod.Binding, StunClass.ErrorResponse, [attr(Attr.ErrorCode, errorCode(420)), attr(Attr.UnknownAttributes, [0x7001, 0x7002, 0x7003])]),
    m(StunMethod.Binding, StunClass.Request, [
      attr(Attr.ChangeRequest, { changeIp: true, changePort: true }),
      attr(Attr.ResponsePort, 9),
      attr(Attr.Padding, new Uint8Array(13)),
    ]),
    m(StunMethod.Allocate, StunClass.Request, [
      attr(Attr.RequestedTransport, 17),
      attr(Attr.Lifetime, 600),
      attr(Attr.EvenPort, { reserve: true }),
      attr(Attr.DontFragment, true),
      attr(Attr.RequestedAddressFamily, 'IPv6'),
      attr(Attr.AdditionalAddressFamily, 'IPv6'),
      attr(Attr.ReservationToken, new Uint8Array(8)),
    ]),
    m(StunMethod.Allocate, StunClass.ErrorResponse, [
      attr(Attr.ErrorCode, errorCode(401)),
      attr(Attr.Realm, 'example.org'),
      attr(Attr.Nonce, 'obMatJos2AAACnonce'),
      attr(Attr.PasswordAlgorithms, [
        { algorithm: 2, parameters: new Uint8Array(0) },
        { algorithm: 1, parameters: Uint8Array.of(1, 2, 3) },
      ]),
    ]),
    m(
      StunMethod.Allocate,
      StunClass.Request,
      [
        attr(Attr.Userhash, new Uint8Array(32)),
        attr(Attr.PasswordAlgorithm, { algorithm: 2, parameters: new Uint8Array(0) }),
        attr(Attr.Realm, 'r'),
        attr(Attr.Nonce, 'n'),
      ],
      { integritySha256: KEY, integritySha256Length: 16 },
    ),
    m(StunMethod.Allocate, StunClass.SuccessResponse, [
      attr(Attr.XorRelayedAddress, v4),
      attr(Attr.XorRelayedAddress, v6),
      attr(Attr.AddressErrorCode, { family: 'IPv6', code: 440, reason: 'x' }),
      attr(Attr.AlternateServer, v6),
      attr(Attr.AlternateDomain, 'd.example'),
    ]),
    m(StunMethod.Send, StunClass.Indication, [attr(Attr.XorPeerAddress, v4), attr(Attr.Data, new Uint8Array(37).fill(1))]),
    m(StunMethod.Data, StunClass.Indication, [
      attr(Attr.XorPeerAddress, v6),
      attr(Attr.Data, new Uint8Array(3)),
      attr(Attr.Icmp, { icmpType: 3, icmpCode: 4, errorData: 1200 }),
    ]),
    m(StunMethod.ChannelBind, StunClass.Request, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, v4)]),
    m(StunMethod.ConnectionAttempt, StunClass.Indication, [attr(Attr.ConnectionId, 5), attr(Attr.XorPeerAddress, v4)]),
    m(StunMethod.Binding, StunClass.Request, [rawAttribute(0x7777, Uint8Array.of(1, 2, 3)), rawAttribute(0xc0de, new Uint8Array(0))]),
    encodeStunMessage({
      method: 1,
      class: StunClass.SuccessResponse,
      transactionId: new Uint8Array(16).fill(3),
      attributes: [
        attr(Attr.MappedAddress, v4),
        attr(Attr.SourceAddress, v4),
        attr(Attr.ChangedAddress, v4),
        attr(Attr.ReflectedFrom, v4),
        attr(Attr.Password, new Uint8Array(4)),
      ],
    }),
  ];
}

/** Everything a server or client might do with a decoded message, none of which may throw except DecodeError. */
function exercise(bytes: Uint8Array): string {
  let message;
  try {
    message = decodeStunMessage(bytes);
  } catch (e) {
    if (e instanceof DecodeError) return `error:${e.code}`;
    throw e;
  }
  const parts: string[] = [`${message.type}:${message.classic}:${message.transactionKey}`];
  for (const position of message.attributes()) {
    const spec = ATTRIBUTE_REGISTRY.get(position.type);
    if (!spec) {
      parts.push(`raw:${position.type}:${position.length}`);
      continue;
    }
    try {
      const value = spec.decode(message.bytes, position.offset, position.length);
      parts.push(
        `${spec.name}=${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}`,
      );
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      parts.push(`${spec.name}!${e.code}`);
    }
  }
  parts.push(String(verifyMessageIntegrity(message, KEY)), String(verifyMessageIntegritySha256(message, KEY)), String(verifyFingerprint(message)));
  parts.push(JSON.stringify(message.unknownComprehensionRequired()));
  message.describe();
  return parts.join('|');
}

/** Decoding bytes placed inside a larger buffer of other bytes must give the same result. */
function checkIsolated(bytes: Uint8Array, filler: number): void {
  const alone = exercise(Uint8Array.from(bytes));
  const big = new Uint8Array(bytes.length + 64).fill(filler);
  big.set(bytes, 32);
  const inside = exercise(big.subarray(32, 32 + bytes.length));
  if (alone !== inside) throw new Error(`decoding depends on bytes outside the input:\n${alone}\n${inside}`);
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant('length' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 0xffff }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(seed: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Uint8Array.from(seed);
  for (const mu of mutations) {
    if (b.length === 0) break;
    const at = mu.at % b.length;
    switch (mu.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << mu.bit);
        break;
      case 'set':
        b[at] = mu.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert': {
        const out = new Uint8Array(b.length + mu.bytes.length);
        out.set(b.subarray(0, at));
        out.set(mu.bytes, at);
        out.set(b.subarray(at), at + mu.bytes.length);
        b = out;
        break;
      }
      case 'length': {
        // rewrite a 16-bit length field: the message header's (offset 2) or any attribute's
        const where = at < 4 ? 2 : at & ~1;
        if (where + 1 < b.length) {
          b[where] = mu.value >>> 8;
          b[where + 1] = mu.value & 0xff;
        }
        break;
      }
    }
  }
  return b;
}

/** Random bytes, biased toward things that look like STUN (a valid header with random attributes). */
export const randomBytesProperty = fc.property(
  fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.boolean(), fc.uint8Array({ maxLength: 500 })).map(([type, cookie, body]) => {
      const padded = body.subarray(0, body.length & ~3);
      const out = new Uint8Array(20 + padded.length);
      out[0] = type >>> 8;
      out[1] = type & 0xff;
      out[2] = padded.length >>> 8;
      out[3] = padded.length & 0xff;
      if (cookie) out.set([0x21, 0x12, 0xa4, 0x42], 4);
      out.set(padded, 20);
      return out;
    }),
  ),
  fc.integer({ min: 0, max: 255 }),
  (bytes, filler) => checkIsolated(bytes, filler),
);

/** Valid messages with a few random mutations. */
export const mutatedMessageProperty = (corpus: Uint8Array[]) =>
  fc.property(fc.constantFrom(...corpus), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 255 }), (seed, mutations, filler) =>
    checkIsolated(mutate(seed, mutations), filler),
  );

/** Random registered attributes with random value bytes, in a well-framed message. */
export const randomAttributesProperty = fc.property(
  fc.array(fc.tuple(fc.constantFrom(...[...ATTRIBUTE_REGISTRY.keys()]), fc.uint8Array({ maxLength: 40 })), { maxLength: 12 }),
  fc.integer({ min: 0, max: 255 }),
  (attributes, filler) => {
    const bytes = encodeStunMessage({ method: 1, class: 0, transactionId: new Uint8Array(12), attributes: attributes.map(([t, v]) => rawAttribute(t, v)) });
    checkIsolated(bytes, filler);
  },
);
