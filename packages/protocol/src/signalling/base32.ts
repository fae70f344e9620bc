/** The RFC 4648 section 6 base32 alphabet, in lower case. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * Base32 (RFC 4648 section 6 alphabet) in lower case and without `=` padding: five bits per
 * character, most significant bit first, the last character padded with zero bits.
 * `base32Encode(utf8("foobar")) === "mzxw6ytboi"` (RFC 4648 section 10, lower-cased, unpadded).
 */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}
