import { type AttributeSpec, badAttribute, badValue, readU16, writeU16 } from './spec.js';

/**
 * UNKNOWN-ATTRIBUTES (0x000A), RFC 8489 section 14.13: a list of 16-bit attribute types. With an odd
 * count the value is padded to 4 bytes; RFC 3489 repeated one of the types there, RFC 8489 lets the
 * padding be anything, so a decoder reads only `length / 2` entries and ignores the padding.
 */
export const unknownAttributesAttribute: AttributeSpec<readonly number[]> = {
  type: 0x000a,
  name: 'UNKNOWN-ATTRIBUTES',
  rfc: 'RFC 8489 section 14.13',
  decode(m, o, length) {
    if (length % 2 !== 0) throw badAttribute(this.name, `odd length ${length}`);
    const out: number[] = [];
    for (let i = 0; i < length; i += 2) out.push(readU16(m, o + i));
    return out;
  },
  encodedLength(value) {
    for (const t of value) {
      if (!Number.isInteger(t) || t < 0 || t > 0xffff) throw badValue(this.name, `bad type ${t}`);
    }
    return value.length * 2;
  },
  write(value, m, o) {
    value.forEach((t, i) => writeU16(m, o + i * 2, t));
  },
};
