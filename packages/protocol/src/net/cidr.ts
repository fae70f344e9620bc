import { ipToBytes } from '../address.js';
import { ParseError } from '../errors.js';

/** An IP prefix: `203.0.113.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128). */
export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Parses a CIDR; throws ParseError BAD_SYNTAX naming the text when it is not one. */
export function parseCidr(text: string): Cidr {
  const [ip, len, extra] = text.split('/');
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(ip ?? '');
  } catch {
    throw new ParseError('BAD_SYNTAX', `${JSON.stringify(text)} is not an IP prefix (expected e.g. 10.0.0.0/8 or 2001:db8::/32)`);
  }
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : Number(len);
  if (extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) {
    throw new ParseError('BAD_SYNTAX', `${JSON.stringify(text)}: bad prefix length (0-${max})`);
  }
  return { text, bytes, prefix };
}

/** True when `address` (4 or 16 bytes) lies inside the prefix (same family only). */
export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  if (cidr.bytes.length !== address.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((cidr.bytes[i]! & mask) !== (address[i]! & mask)) return false;
  }
  return true;
}
