import { createHash } from 'node:crypto';
import { z } from 'zod';
import { EncodeError } from '../errors.js';
import { base32Encode } from './base32.js';

/** Length in bytes of a raw Ed25519 public key (RFC 8032 section 5.1.5). */
export const ED25519_PUBLIC_KEY_LENGTH = 32;

/** Length in bytes of an Ed25519 signature (RFC 8032 section 5.1.6). */
export const ED25519_SIGNATURE_LENGTH = 64;

/** How many leading bytes of the SHA-256 of the public key make a peer id. */
export const PEER_ID_HASH_BYTES = 20;

/** Length of a peer id in characters: 20 bytes = 160 bits = exactly 32 base32 characters. */
export const PEER_ID_LENGTH = 32;

/**
 * A peer id: 32 characters of the lower-case RFC 4648 base32 alphabet. Because 160 bits is a
 * whole number of 5-bit characters, every such string is the canonical encoding of exactly one
 * 20-byte value; there are no padding bits to check.
 */
export const PeerId = z
  .string()
  .length(PEER_ID_LENGTH)
  .regex(/^[a-z2-7]+$/, 'not a peer id (32 lower-case base32 characters)');

/** A peer id (see {@link peerIdFromPublicKey}). */
export type PeerId = z.infer<typeof PeerId>;

/**
 * The peer id of an Ed25519 public key:
 * `base32lower_nopad(SHA-256(publicKey)[0..20])`, where `publicKey` is the 32-byte raw key of
 * RFC 8032 (not DER/SPKI). Pure computation. Throws EncodeError('BAD_VALUE') when the key is
 * not 32 bytes long.
 */
export function peerIdFromPublicKey(publicKey: Uint8Array): string {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new EncodeError('BAD_VALUE', `an Ed25519 public key is ${ED25519_PUBLIC_KEY_LENGTH} bytes, got ${publicKey.length}`);
  }
  const digest = createHash('sha256').update(publicKey).digest();
  return base32Encode(digest.subarray(0, PEER_ID_HASH_BYTES));
}
