import type { AddressFamily, TransportAddress } from '../address.js';
import { formatIPv4, formatIPv6, ipToBytes } from '../address.js';
import { ParseError } from '../errors.js';
import { type AttributeSpec, badAttribute, badValue, readU16, writeU16 } from './spec.js';

/** RFC 8489 section 14.1: the address family byte. */
export const FAMILY_IPV4 = 0x01;
export const FAMILY_IPV6 = 0x02;

export function familyFromByte(name: string, byte: number): AddressFamily {
  if (byte === FAMILY_IPV4) return 'IPv4';
  if (byte === FAMILY_IPV6) return 'IPv6';
  throw badAttribute(name, `unknown address family 0x${byte.toString(16)}`);
}

export function familyToByte(family: AddressFamily): number {
  return family === 'IPv4' ? FAMILY_IPV4 : FAMILY_IPV6;
}

/** Writes a dotted quad without allocating; false when the text is not a plain IPv4 address. */
function writeIPv4Fast(text: string, out: Uint8Array, offset: number): boolean {
  let part = 0;
  let digits = 0;
  let index = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      digits++;
      if (digits > 3 || part > 255) return false;
    } else if (c === 46 && digits > 0 && index < 3) {
      out[offset + index++] = part;
      part = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (index !== 3 || digits === 0) return false;
  out[offset + 3] = part;
  return true;
}

function addressBytes(name: string, addr: TransportAddress): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(addr.address);
  } catch (e) {
    if (e instanceof ParseError) throw badValue(name, e.message);
    throw e;
  }
  if ((addr.family === 'IPv4') !== (bytes.length === 4)) {
    throw badValue(name, `address ${addr.address} is not of family ${addr.family}`);
  }
  return bytes;
}

function checkPort(name: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw badValue(name, `bad port ${port}`);
}

/**
 * An address attribute in the layout of RFC 8489 section 14.1 (MAPPED-ADDRESS): a zero byte,
 * the family, the port, then 4 or 16 address bytes. With `xor`, the port is XORed with the top
 * 16 bits of the magic cookie and the address with the cookie (IPv4) or the cookie and
 * transaction id (IPv6), RFC 8489 section 14.2.
 */
export function addressAttribute(type: number, name: string, rfc: string, xor: boolean): AttributeSpec<TransportAddress> {
  return {
    type,
    name,
    rfc,
    decode(m, o, length) {
      if (length < 4) throw badAttribute(name, `length ${length} is too short`);
      const family = familyFromByte(name, m[o + 1]!);
      const want = family === 'IPv4' ? 8 : 20;
      if (length !== want) throw badAttribute(name, `length ${length} for ${family}, expected ${want}`);
      let port = readU16(m, o + 2);
      if (xor) port ^= 0x2112;
      if (family === 'IPv4') {
        if (!xor) return { family, address: formatIPv4(m, o + 4), port };
        const b = new Uint8Array(4);
        for (let i = 0; i < 4; i++) b[i] = m[o + 4 + i]! ^ m[4 + i]!;
        return { family, address: formatIPv4(b), port };
      }
      const b = new Uint8Array(16);
      for (let i = 0; i < 16; i++) b[i] = xor ? m[o + 4 + i]! ^ m[4 + i]! : m[o + 4 + i]!;
      return { family, address: formatIPv6(b), port };
    },
    encodedLength(value) {
      return value.family === 'IPv4' ? 8 : 20;
    },
    write(value, m, o) {
      checkPort(name, value.port);
      m[o] = 0;
      m[o + 1] = familyToByte(value.family);
      writeU16(m, o + 2, xor ? value.port ^ 0x2112 : value.port);
      if (value.family === 'IPv4' && writeIPv4Fast(value.address, m, o + 4)) {
        // fast path: no allocation
      } else {
        const bytes = addressBytes(name, value);
        m.set(bytes, o + 4);
      }
      if (xor) {
        const n = value.family === 'IPv4' ? 4 : 16;
        for (let i = 0; i < n; i++) m[o + 4 + i] = m[o + 4 + i]! ^ m[4 + i]!;
      }
    },
  };
}
