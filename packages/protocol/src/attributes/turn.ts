import type { AddressFamily } from '../address.js';
import { familyFromByte, familyToByte } from './addresses.js';
import { decodeReason, readErrorCode, reasonLength, writeErrorCode, writeReason } from './error-code.js';
import { type AttributeSpec, badAttribute, expectLength, readU32, writeU32 } from './spec.js';

/**
 * An address-family attribute (RFC 8656 sections 18.6 REQUESTED-ADDRESS-FAMILY and 18.11
 * ADDITIONAL-ADDRESS-FAMILY): family byte, then 24 reserved bits.
 */
export function addressFamilyAttribute(type: number, name: string, rfc: string): AttributeSpec<AddressFamily> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      expectLength(name, length, 4);
      return familyFromByte(name, m[o]!);
    },
    encodedLength() {
      return 4;
    },
    write(value, m, o) {
      m[o] = familyToByte(value);
      m[o + 1] = 0;
      m[o + 2] = 0;
      m[o + 3] = 0;
    },
  };
}

/**
 * EVEN-PORT (0x0018), RFC 8656 section 18.7: one byte whose top bit R asks the server to reserve
 * the next-higher port too, then padding to 4 bytes. Some clients send a 1-byte value; RFC 8489's
 * padding rules make that a 4-byte slot on the wire, and both lengths are accepted here.
 */
export const evenPortAttribute: AttributeSpec<{ readonly reserve: boolean }> = {
  type: 0x0018,
  name: 'EVEN-PORT',
  rfc: 'RFC 8656 section 18.7',
  decode(m, o, length) {
    if (length !== 1 && length !== 4) throw badAttribute(this.name, `length ${length}, expected 1`);
    return { reserve: (m[o]! & 0x80) !== 0 };
  },
  encodedLength() {
    return 1;
  },
  write(value, m, o) {
    m[o] = value.reserve ? 0x80 : 0;
  },
};

/** The value of ADDRESS-ERROR-CODE: which family failed, and why. */
export interface AddressErrorCodeValue {
  readonly family: AddressFamily;
  readonly code: number;
  readonly reason: string;
}

/**
 * ADDRESS-ERROR-CODE (0x8001), RFC 8656 section 18.12: family byte, 8 reserved bits, then class
 * and number laid out as in ERROR-CODE, then a reason phrase.
 */
export const addressErrorCodeAttribute: AttributeSpec<AddressErrorCodeValue> = {
  type: 0x8001,
  name: 'ADDRESS-ERROR-CODE',
  rfc: 'RFC 8656 section 18.12',
  decode(m, o, length) {
    if (length < 4) throw badAttribute(this.name, `length ${length} is too short`);
    return {
      family: familyFromByte(this.name, m[o]!),
      code: readErrorCode(this.name, m, o),
      reason: decodeReason(this.name, m, o + 4, length - 4),
    };
  },
  encodedLength(value) {
    return 4 + reasonLength(this.name, value.reason);
  },
  write(value, m, o) {
    m[o] = familyToByte(value.family);
    m[o + 1] = 0;
    writeErrorCode(this.name, value.code, m, o);
    writeReason(value.reason, m, o + 4);
  },
};

/** The value of ICMP: the ICMP type and code the relay received, and its error data. */
export interface IcmpValue {
  readonly icmpType: number;
  readonly icmpCode: number;
  /** Type-specific data, e.g. the MTU for "fragmentation needed" / "packet too big". */
  readonly errorData: number;
}

/**
 * ICMP (0x8004), RFC 8656 section 18.13: 16 reserved bits, ICMP type (8 bits), ICMP code (8 bits),
 * 32 bits of error data.
 */
export const icmpAttribute: AttributeSpec<IcmpValue> = {
  type: 0x8004,
  name: 'ICMP',
  rfc: 'RFC 8656 section 18.13',
  decode(m, o, length) {
    expectLength(this.name, length, 8);
    return { icmpType: m[o + 2]!, icmpCode: m[o + 3]!, errorData: readU32(m, o + 4) };
  },
  encodedLength() {
    return 8;
  },
  write(value, m, o) {
    m[o] = 0;
    m[o + 1] = 0;
    m[o + 2] = value.icmpType & 0xff;
    m[o + 3] = value.icmpCode & 0xff;
    writeU32(m, o + 4, value.errorData >>> 0);
  },
};
