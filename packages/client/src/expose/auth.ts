import { type KeyObject, createHmac, sign } from 'node:crypto';
import { type ExposeControlMessage, type ExposeRequest, exposeAdvertisePayload, exposeSigningPayload, longTermKey, peerIdFromPublicKey } from '@nat/protocol';
import { rawPublicKeyBase64url } from '../rendezvous/identity.js';

/** Credentials: a user of the server (static or TURN REST API), or an Ed25519 peer key. */
export type ExposeCredentials =
  { readonly username: string; readonly password: string } | { readonly identity: { readonly privateKey: KeyObject; readonly publicKey: KeyObject } };

/** The proof of a hello: an HMAC-SHA256 with the user's long-term key, or an Ed25519 signature, over the challenge. */
export function authOf(c: ExposeCredentials, nonce: string, realm: string): Extract<ExposeControlMessage, { type: 'hello' }>['auth'] {
  if ('username' in c) {
    const key = longTermKey({ username: c.username, realm, password: c.password, algorithm: 'SHA-256' });
    const mac = createHmac('sha256', key).update(exposeSigningPayload(nonce, c.username)).digest('base64url');
    return { method: 'password', username: c.username, mac };
  }
  const publicKey = rawPublicKeyBase64url(c.identity.publicKey);
  const peerId = peerIdFromPublicKey(Buffer.from(publicKey, 'base64url'));
  const signature = sign(null, exposeSigningPayload(nonce, peerId), c.identity.privateKey).toString('base64url');
  return { method: 'peer-key', publicKey, signature };
}

/** The proof that the peer key advertised as a port's owner is the requester's: a signature over the session's challenge. */
export function advertiseProof(
  identity: { readonly privateKey: KeyObject; readonly publicKey: KeyObject },
  nonce: string,
): NonNullable<ExposeRequest['advertise']> {
  const publicKey = rawPublicKeyBase64url(identity.publicKey);
  const peerId = peerIdFromPublicKey(Buffer.from(publicKey, 'base64url'));
  return { publicKey, signature: sign(null, exposeAdvertisePayload(nonce, peerId), identity.privateKey).toString('base64url') };
}
