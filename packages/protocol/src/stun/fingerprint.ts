import { crc32 } from 'node:zlib';
import { FINGERPRINT_XOR, HEADER_LENGTH } from './constants.js';
import type { StunMessage } from './message.js';

/**
 * FINGERPRINT value (RFC 8489 section 14.7) for a FINGERPRINT attribute at `attributeOffset`:
 * CRC-32 of the message before it, with the header length covering the attribute, XOR 0x5354554e.
 */
export function computeFingerprint(bytes: Uint8Array, attributeOffset: number): number {
  const b2 = bytes[2]!;
  const b3 = bytes[3]!;
  const adjusted = attributeOffset + 8 - HEADER_LENGTH;
  // When FINGERPRINT ends the message (always, for a valid one) the length already matches and
  // nothing is patched.
  const patch = ((b2 << 8) | b3) !== adjusted;
  if (patch) {
    bytes[2] = adjusted >>> 8;
    bytes[3] = adjusted & 0xff;
  }
  try {
    return (crc32(bytes.subarray(0, attributeOffset)) ^ FINGERPRINT_XOR) >>> 0;
  } finally {
    if (patch) {
      bytes[2] = b2;
      bytes[3] = b3;
    }
  }
}

/** True when the message carries a FINGERPRINT and it matches. */
export function verifyFingerprint(message: StunMessage): boolean {
  const at = message.fingerprintOffset;
  if (at < 0) return false;
  const b = message.bytes;
  const received = ((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0;
  return received === computeFingerprint(b, at);
}
