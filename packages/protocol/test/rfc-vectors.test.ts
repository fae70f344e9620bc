import { describe, expect, it } from 'vitest';
import {
  ATTRIBUTE_REGISTRY,
  Attr,
  DecodeError,
  type AttributeEntry,
  type StunMessage,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../src/index.js';
import {
  type StunVector,
  rfc5769IPv4Response,
  rfc5769IPv6Response,
  rfc5769LongTermRequest,
  rfc5769Request,
  rfc8489Request,
  rfc8489RequestAsPrinted,
} from './fixtures/vectors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const key = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** Every attribute except the ones the encoder computes, decoded through the registry. */
function decodedAttributes(m: StunMessage): AttributeEntry[] {
  return m
    .attributes()
    .filter((a) => ![0x0008, 0x001c, 0x8028].includes(a.type))
    .map((a) => {
      const spec = ATTRIBUTE_REGISTRY.get(a.type)!;
      return attr(spec, spec.decode(m.bytes, a.offset, a.length));
    });
}

function reencode(v: StunVector, m: StunMessage, integrityKey: Uint8Array): Uint8Array {
  return encodeStunMessage(
    { method: m.method, class: m.class, transactionId: m.transactionId, attributes: decodedAttributes(m) },
    {
      paddingByte: v.paddingByte,
      integrity: m.integrityOffset >= 0 ? integrityKey : undefined,
      integritySha256: m.integritySha256Offset >= 0 ? integrityKey : undefined,
      integritySha256Length: m.integritySha256Offset >= 0 ? m.raw(0x001c)!.length : undefined,
      fingerprint: m.fingerprintOffset >= 0,
    },
  );
}

function checkCommon(v: StunVector): StunMessage {
  const m = decodeStunMessage(v.bytes);
  expect(m.type).toBe(v.messageType);
  expect(hex(m.transactionId)).toBe(v.transactionId);
  expect(m.classic).toBe(false);
  expect(m.attributes().map((a) => [a.type, a.length])).toEqual(v.attributes.map((a) => [a.type, a.length]));
  return m;
}

describe('RFC 5769 test vectors', () => {
  it('2.1 sample request: decodes, verifies, re-encodes byte for byte', () => {
    const v = rfc5769Request;
    const m = checkCommon(v);
    expect(m.get(Attr.Software)).toBe(v.software);
    expect(m.get(Attr.Priority)).toBe(v.priority);
    expect(m.get(Attr.IceControlled)).toBe(v.iceControlled);
    expect(m.get(Attr.Username)).toBe(v.username);
    expect(hex(m.raw(0x0008)!)).toBe(v.messageIntegrity);
    expect(m.get(Attr.Fingerprint)).toBe(v.fingerprint);
    const k = new TextEncoder().encode(v.password);
    expect(hex(k)).toBe(v.integrityKey);
    expect(verifyMessageIntegrity(m, k)).toBe(true);
    expect(verifyMessageIntegrity(m, new TextEncoder().encode('wrong'))).toBe(false);
    expect(verifyFingerprint(m)).toBe(true);
    expect(hex(reencode(v, m, k))).toBe(hex(v.bytes));
  });

  it.each([rfc5769IPv4Response, rfc5769IPv6Response])('$name: decodes, verifies, re-encodes byte for byte', (v) => {
    const m = checkCommon(v);
    expect(m.get(Attr.Software)).toBe(v.software);
    expect(m.get(Attr.XorMappedAddress)).toEqual(v.xorMappedAddress);
    const k = key(v.integrityKey);
    expect(verifyMessageIntegrity(m, k)).toBe(true);
    expect(verifyFingerprint(m)).toBe(true);
    expect(m.get(Attr.Fingerprint)).toBe(v.fingerprint);
    expect(hex(reencode(v, m, k))).toBe(hex(v.bytes));
  });

  it('2.4 long-term request: decodes, verifies with MD5(username:realm:SASLprep(password)), re-encodes', () => {
    const v = rfc5769LongTermRequest;
    const m = checkCommon(v);
    expect(m.get(Attr.Username)).toBe(v.username);
    expect(m.get(Attr.Nonce)).toBe(v.nonce);
    expect(m.get(Attr.Realm)).toBe(v.realm);
    const k = key(v.integrityKey);
    expect(verifyMessageIntegrity(m, k)).toBe(true);
    expect(hex(reencode(v, m, k))).toBe(hex(v.bytes));
  });
});

describe('RFC 8489 Appendix B.1 (with erratum 6268 applied)', () => {
  it('decodes, verifies MESSAGE-INTEGRITY-SHA256 and re-encodes byte for byte', () => {
    const v = rfc8489Request;
    const m = checkCommon(v);
    expect(hex(m.get(Attr.Userhash)!)).toBe(v.userhash);
    expect(m.get(Attr.Nonce)).toBe(v.nonce);
    expect(m.get(Attr.Realm)).toBe(v.realm);
    expect(m.get(Attr.PasswordAlgorithm)?.algorithm).toBe(v.passwordAlgorithm);
    const k = key(v.integrityKey);
    expect(verifyMessageIntegritySha256(m, k)).toBe(true);
    expect(hex(m.raw(0x001c)!)).toBe(v.messageIntegritySha256);
    expect(hex(reencode(v, m, k))).toBe(hex(v.bytes));
  });

  it('rejects the message as printed: its length field counts the header too', () => {
    expect(() => decodeStunMessage(rfc8489RequestAsPrinted.bytes)).toThrow(DecodeError);
  });
});
