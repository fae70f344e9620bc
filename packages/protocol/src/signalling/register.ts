import { EncodeError } from '../errors.js';
import { ChallengeNonce } from './fields.js';
import { PeerId } from './peer-id.js';

/** The domain-separation prefix of the `register` signature (it names the protocol version). */
export const REGISTER_SIGNING_CONTEXT = 'nat-rendezvous-v1:';

/**
 * The exact bytes a peer signs with its Ed25519 private key (RFC 8032 pure Ed25519, no
 * pre-hash, no context) to answer a `challenge`:
 *
 *     UTF-8( "nat-rendezvous-v1:" + nonce + ":" + peerId )
 *
 * where `nonce` is the `challenge`'s nonce exactly as received (its base64url text, not the
 * decoded bytes) and `peerId` is `peerIdFromPublicKey` of the key being registered. All three
 * parts are ASCII, so UTF-8 is one byte per character; the nonce alphabet has no `:`, so the
 * string splits back into its parts in one way only. Signing the peer id binds the signature
 * to one identity, and the prefix keeps it from being valid for any other use of the key.
 *
 * Throws EncodeError('BAD_VALUE') when `nonce` or `peerId` does not match its schema.
 */
export function registerSigningPayload(nonce: string, peerId: string): Uint8Array {
  if (!ChallengeNonce.safeParse(nonce).success) {
    throw new EncodeError('BAD_VALUE', 'registerSigningPayload: nonce is not a challenge nonce');
  }
  if (!PeerId.safeParse(peerId).success) {
    throw new EncodeError('BAD_VALUE', 'registerSigningPayload: not a peer id');
  }
  return new TextEncoder().encode(`${REGISTER_SIGNING_CONTEXT}${nonce}:${peerId}`);
}
