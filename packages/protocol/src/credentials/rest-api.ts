/**
 * The TURN REST API's time-limited credentials (draft-uberti-behave-turn-rest), as coturn's
 * `use-auth-secret` makes them, and the anonymous relay tier's narrower form of them. Pure
 * computation (HMAC over node:crypto): the TURN server checks them, the rendezvous and the CLI
 * make them, the expose service reads the user out of them.
 */
import { createHmac } from 'node:crypto';

/** A REST API credential: the username, its password, and when it expires (Unix seconds). */
export interface RestApiCredentials {
  readonly username: string;
  readonly password: string;
  readonly expiresAt: number;
}

/**
 * The expiry (Unix seconds) of a REST API username (`expiry:user`, or a bare `expiry`), or
 * undefined when it has none (a static user's name).
 */
export function restApiExpiry(username: string): number | undefined {
  const first = username.split(':')[0] ?? '';
  if (!/^\d{1,12}$/.test(first)) return undefined;
  return Number(first);
}

/** The REST API password of a username: base64(HMAC-SHA1(secret, username)). */
export function restApiPassword(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/**
 * Makes REST API credentials valid for `ttlSeconds` from `now` (Unix milliseconds, read by the
 * caller: this package reads no clock): username `expiry:user` (a bare `expiry` when `user` is
 * empty), password {@link restApiPassword}. What `nat turn credentials` prints and what a TURN
 * server given the same secret accepts.
 */
export function restApiCredentials(secret: string, user: string, ttlSeconds: number, now: number): RestApiCredentials {
  const expiresAt = Math.floor(now / 1000) + ttlSeconds;
  const username = user === '' ? String(expiresAt) : `${expiresAt}:${user}`;
  return { username, password: restApiPassword(secret, username), expiresAt };
}

// ---------------------------------------------------------------- the anonymous relay tier

/**
 * The label of the key that signs anonymous relay credentials: HMAC-SHA256(secret, label). An
 * anonymous credential is thus never an operator's REST credential made with the secret itself.
 */
export const ANONYMOUS_RELAY_LABEL = 'nat-anonymous-relay-v1';

const ANONYMOUS_USERNAME = /^(\d{1,12}):~([a-z2-7]{32})$/;

/** The key that signs anonymous relay credentials, derived from a REST API secret. */
export function anonymousRelayKey(secret: string): Buffer {
  return createHmac('sha256', secret).update(ANONYMOUS_RELAY_LABEL).digest();
}

/** The password of an anonymous relay username: base64(HMAC-SHA1(anonymousRelayKey(secret), username)). */
export function anonymousRelayPassword(key: Uint8Array, username: string): string {
  return createHmac('sha1', key).update(username).digest('base64');
}

/**
 * The peer id an anonymous relay username (`EXPIRY:~PEERID`) names, or undefined when the
 * username is not of that form (an operator's user). The form alone decides the tier: it can only
 * narrow what a user may do.
 */
export function anonymousRelayPeer(username: string): string | undefined {
  return ANONYMOUS_USERNAME.exec(username)?.[2];
}

/** The expiry (Unix seconds) of an anonymous relay username, or undefined when it is not one. */
export function anonymousRelayExpiry(username: string): number | undefined {
  const m = ANONYMOUS_USERNAME.exec(username);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Anonymous relay credentials for a peer a rendezvous registered, valid for `ttlSeconds` from
 * `now` (Unix milliseconds): username `EXPIRY:~PEERID`, password {@link anonymousRelayPassword}.
 * A TURN server relays them only within the anonymous tier's limits; public exposure refuses them.
 */
export function anonymousRelayCredentials(secret: string, peerId: string, ttlSeconds: number, now: number): RestApiCredentials {
  const expiresAt = Math.floor(now / 1000) + ttlSeconds;
  const username = `${expiresAt}:~${peerId}`;
  return { username, password: anonymousRelayPassword(anonymousRelayKey(secret), username), expiresAt };
}
