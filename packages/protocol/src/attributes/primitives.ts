import { type AttributeSpec, badAttribute, badValue, expectLength, readU16, readU32, writeU16, writeU32 } from './spec.js';

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** Bytes of a UTF-8 string, counted without encoding it twice in the common ASCII case. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * A UTF-8 text attribute. `maxBytes` bounds the encoded value, `maxChars` (when the RFC states the
 * limit in characters, as for REALM, NONCE and SOFTWARE: fewer than 128) bounds it in code points.
 */
export function textAttribute(type: number, name: string, rfc: string, maxBytes: number, maxChars?: number): AttributeSpec<string> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      if (length > maxBytes) throw badAttribute(name, `${length} bytes, at most ${maxBytes} allowed`);
      return utf8Decoder.decode(m.subarray(o, o + length));
    },
    encodedLength(value) {
      const n = utf8Length(value);
      if (n > maxBytes) throw badValue(name, `${n} bytes, at most ${maxBytes} allowed`);
      if (maxChars !== undefined && [...value].length > maxChars) {
        throw badValue(name, `more than ${maxChars} characters`);
      }
      return n;
    },
    write(value, m, o) {
      const { written } = utf8Encoder.encodeInto(value, m.subarray(o));
      if (written === undefined) throw badValue(name, 'could not encode');
    },
  };
}

/**
 * An opaque byte-string attribute; decoding returns a view of the message, not a copy. `lengths`
 * restricts the allowed lengths (fixed, or a predicate) where the RFC fixes them.
 */
export function bytesAttribute(
  type: number,
  name: string,
  rfc: string,
  allowed: (length: number) => boolean = () => true,
  describe = 'any length',
): AttributeSpec<Uint8Array> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      if (!allowed(length)) throw badAttribute(name, `length ${length}, expected ${describe}`);
      return m.subarray(o, o + length);
    },
    encodedLength(value) {
      if (!allowed(value.length)) throw badValue(name, `length ${value.length}, expected ${describe}`);
      return value.length;
    },
    write(value, m, o) {
      m.set(value, o);
    },
  };
}

/** A 32-bit unsigned integer attribute (PRIORITY, LIFETIME, CONNECTION-ID, ...). */
export function uint32Attribute(type: number, name: string, rfc: string): AttributeSpec<number> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      expectLength(name, length, 4);
      return readU32(m, o);
    },
    encodedLength(value) {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw badValue(name, `${value} is not a uint32`);
      return 4;
    },
    write(value, m, o) {
      writeU32(m, o, value);
    },
  };
}

/** A 64-bit unsigned integer attribute (ICE-CONTROLLED, ICE-CONTROLLING tie-breakers). */
export function uint64Attribute(type: number, name: string, rfc: string): AttributeSpec<bigint> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      expectLength(name, length, 8);
      return (BigInt(readU32(m, o)) << 32n) | BigInt(readU32(m, o + 4));
    },
    encodedLength(value) {
      if (value < 0n || value > 0xffffffffffffffffn) throw badValue(name, `${value} is not a uint64`);
      return 8;
    },
    write(value, m, o) {
      writeU32(m, o, Number(value >> 32n));
      writeU32(m, o + 4, Number(value & 0xffffffffn));
    },
  };
}

/** An attribute with an empty value, whose presence is the information (USE-CANDIDATE, DONT-FRAGMENT). */
export function flagAttribute(type: number, name: string, rfc: string): AttributeSpec<true> {
  return {
    type,
    name,
    rfc,
    decode(_m, _o, length) {
      expectLength(name, length, 0);
      return true;
    },
    encodedLength() {
      return 0;
    },
    write() {},
  };
}

/**
 * A 16-bit value followed by 16 reserved bits (CHANNEL-NUMBER, RFC 8656 section 18.1;
 * RESPONSE-PORT, RFC 5780 section 7.5). Reserved bits are sent as zero and ignored on receipt.
 */
export function uint16ThenReservedAttribute(type: number, name: string, rfc: string): AttributeSpec<number> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      expectLength(name, length, 4);
      return readU16(m, o);
    },
    encodedLength(value) {
      if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw badValue(name, `${value} is not a uint16`);
      return 4;
    },
    write(value, m, o) {
      writeU16(m, o, value);
      m[o + 2] = 0;
      m[o + 3] = 0;
    },
  };
}

/** An 8-bit value followed by 24 reserved bits (REQUESTED-TRANSPORT, RFC 8656 section 18.11). */
export function uint8ThenReservedAttribute(type: number, name: string, rfc: string): AttributeSpec<number> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      expectLength(name, length, 4);
      return m[o]!;
    },
    encodedLength(value) {
      if (!Number.isInteger(value) || value < 0 || value > 0xff) throw badValue(name, `${value} is not a uint8`);
      return 4;
    },
    write(value, m, o) {
      m[o] = value;
      m[o + 1] = 0;
      m[o + 2] = 0;
      m[o + 3] = 0;
    },
  };
}

export { utf8Length };
