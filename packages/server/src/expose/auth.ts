import { createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { type ExposeControlMessage, PasswordAlgorithm, anonymousRelayPeer, exposeSigningPayload, peerIdFromPublicKey, restApiExpiry } from '@nat/protocol';
import type { AuthFailureReason } from '../events.js';
import type { TurnAuthenticator } from '../turn/auth.js';

/** Who may authenticate a control connection (from {@link ExposeOptions}). */
export interface ExposeCredentials {
  readonly realm: string;
  readonly auth: TurnAuthenticator | undefined;
  readonly peerKeys: boolean | readonly string[] | undefined;
}

/** A hello's outcome: the user its exposures are counted under, or why it failed. */
export type HelloResult =
  { readonly ok: true; readonly user: string } | { readonly ok: false; readonly reason: AuthFailureReason; readonly user?: string; readonly message: string };

type Hello = Extract<ExposeControlMessage, { type: 'hello' }>;

const WRONG_TIER =
  'these are anonymous relay credentials (handed out by the rendezvous): they relay only and cannot expose ports; use a user of the server operator, or a peer key the operator listed';

function fail(reason: AuthFailureReason, user?: string): HelloResult {
  return { ok: false, reason, ...(user === undefined ? {} : { user }), message: reason === 'wrong-tier' ? WRONG_TIER : 'bad credentials' };
}

/** Checks a password hello: an HMAC-SHA256 over the challenge with the user's long-term key. */
function passwordHello(auth: Extract<Hello['auth'], { method: 'password' }>, nonce: string, c: ExposeCredentials): HelloResult {
  if (anonymousRelayPeer(auth.username) !== undefined) return fail('wrong-tier', auth.username);
  if (c.auth === undefined) return fail('unknown-user', auth.username);
  const payload = exposeSigningPayload(nonce, auth.username);
  const given = Buffer.from(auth.mac, 'base64url');
  const keys = c.auth.keys(auth.username, c.realm, PasswordAlgorithm.SHA256, Date.now());
  if (keys.length === 0) return fail('unknown-user', auth.username);
  for (const key of keys) {
    const want = createHmac('sha256', key).update(payload).digest();
    if (want.length === given.length && timingSafeEqual(want, given)) {
      // A REST API username is `expiry:user`: quotas belong to the user, not to one credential.
      const user = restApiExpiry(auth.username) === undefined ? auth.username : auth.username.slice(auth.username.indexOf(':') + 1) || auth.username;
      return { ok: true, user };
    }
  }
  return fail('bad-integrity', auth.username);
}

/** Checks a peer-key hello: an Ed25519 signature over the challenge by a key the operator listed. */
function peerKeyHello(auth: Extract<Hello['auth'], { method: 'peer-key' }>, nonce: string, c: ExposeCredentials): HelloResult {
  const peerId = peerIdFromPublicKey(Buffer.from(auth.publicKey, 'base64url'));
  const user = `peer:${peerId}`;
  if (!c.peerKeys || (Array.isArray(c.peerKeys) && !c.peerKeys.includes(peerId))) return fail('not-allowed', user);
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: auth.publicKey }, format: 'jwk' });
    if (verify(null, exposeSigningPayload(nonce, peerId), key, Buffer.from(auth.signature, 'base64url'))) return { ok: true, user };
  } catch {
    // a key OpenSSL refuses is as bad as a bad signature
  }
  return fail('bad-integrity', user);
}

/** Authenticates a control connection's hello against the challenge `nonce`. */
export function checkHello(m: Hello, nonce: string, c: ExposeCredentials): HelloResult {
  return m.auth.method === 'password' ? passwordHello(m.auth, nonce, c) : peerKeyHello(m.auth, nonce, c);
}
