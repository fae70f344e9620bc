import { createHmac, timingSafeEqual } from 'node:crypto';
import { HEADER_LENGTH } from './constants.js';
import type { StunMessage } from './message.js';

/**
 * HMAC over the message up to the attribute at `attributeOffset`, with the header's length field
 * temporarily set as if that attribute (with a `macLength`-byte value) ended the message: RFC 8489
 * sections 14.5 and 14.6 define the MAC over exactly that. The length field is patched in place and
 * restored, so no copy of the message is made.
 */
export function computeIntegrity(bytes: Uint8Array, attributeOffset: number, key: Uint8Array, algorithm: 'sha1' | 'sha256', macLength: number): Buffer {
  const b2 = bytes[2]!;
  const b3 = bytes[3]!;
  const adjusted = attributeOffset + 4 + macLength - HEADER_LENGTH;
  bytes[2] = adjusted >>> 8;
  bytes[3] = adjusted & 0xff;
  try {
    return createHmac(algorithm, key).update(bytes.subarray(0, attributeOffset)).digest();
  } finally {
    bytes[2] = b2;
    bytes[3] = b3;
  }
}

/** Constant-time comparison of a received MAC with an expected one (same length required). */
export function macEquals(received: Uint8Array, expected: Uint8Array): boolean {
  if (received.length !== expected.length) return false;
  return timingSafeEqual(received, expected);
}

/**
 * Checks MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 section 14.5) with `key`: the short-term key
 * (OpaqueString of the password) or the long-term key. False when absent or wrong. Constant time.
 */
export function verifyMessageIntegrity(message: StunMessage, key: Uint8Array): boolean {
  const at = message.integrityOffset;
  if (at < 0) return false;
  const mac = computeIntegrity(message.bytes, at, key, 'sha1', 20);
  return timingSafeEqual(message.bytes.subarray(at + 4, at + 24), mac);
}

/**
 * Checks MESSAGE-INTEGRITY-SHA256 (RFC 8489 section 14.6). The attribute may carry a truncated
 * MAC (16 to 32 bytes); the leftmost bytes of the HMAC-SHA256 are compared. Constant time.
 */
export function verifyMessageIntegritySha256(message: StunMessage, key: Uint8Array): boolean {
  const at = message.integritySha256Offset;
  if (at < 0) return false;
  const length = (message.bytes[at + 2]! << 8) | message.bytes[at + 3]!;
  const mac = computeIntegrity(message.bytes, at, key, 'sha256', length);
  return timingSafeEqual(message.bytes.subarray(at + 4, at + 4 + length), mac.subarray(0, length));
}
