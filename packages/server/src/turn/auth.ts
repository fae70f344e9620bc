import {
  ParseError,
  PasswordAlgorithm,
  type RestApiCredentials,
  anonymousRelayCredentials as anonymousRelayCredentialsAt,
  anonymousRelayExpiry,
  anonymousRelayKey,
  anonymousRelayPassword,
  anonymousRelayPeer,
  longTermKey,
  restApiCredentials as restApiCredentialsAt,
  restApiExpiry,
  restApiPassword,
} from '@nat/protocol';
import { ServerError } from '../errors.js';

/**
 * Where a TURN server gets long-term keys (RFC 8489 section 9.2): given a USERNAME and the realm,
 * the key (MD5 or SHA-256 of `username:realm:password`), or nothing for an unknown user.
 * Policy is injected: static users, the TURN REST API's shared secrets, or anything else.
 * An authenticator returns candidate keys: several when secrets are being rotated.
 */
export interface TurnAuthenticator {
  /**
   * The candidate keys of `username`, synchronously. An authenticator that cannot answer (its
   * store is unreachable) throws {@link TurnAuthUnavailableError}: the request gets 500.
   */
  keys(username: string, realm: string, algorithm: PasswordAlgorithm, now: number): readonly Uint8Array[];
  /**
   * For authenticators backed by a remote store (a Redis user database): makes `keys` able to
   * answer for `username` without I/O. Returns undefined when it already can (the hot path: no
   * await), or a promise the driver awaits before it hands the request to the TURN core (once
   * per authenticated request whose user is not cached; never per relayed packet). The promise
   * never rejects: a failed lookup makes `keys` throw. Optional: in-memory sources need none.
   */
  prepare?(username: string, realm: string, now: number): Promise<void> | undefined;
}

/** An authenticator's store did not answer: the request is refused with 500 (fail closed), never let through. */
export class TurnAuthUnavailableError extends ServerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

/** A bounded cache of derived keys: key derivation (OpaqueString + hash) stays off the hot path. */
class KeyCache {
  readonly #map = new Map<string, Uint8Array>();
  constructor(readonly max = 10_000) {}
  get(k: string, make: () => Uint8Array): Uint8Array {
    let v = this.#map.get(k);
    if (v === undefined) {
      v = make();
      if (this.#map.size >= this.max) this.#map.delete(this.#map.keys().next().value as string);
      this.#map.set(k, v);
    }
    return v;
  }
}

function derive(username: string, realm: string, password: string, algorithm: PasswordAlgorithm): Uint8Array | undefined {
  try {
    return longTermKey({ username, realm, password, algorithm });
  } catch (e) {
    if (e instanceof ParseError) return undefined; // a username OpaqueString rejects cannot match
    throw e;
  }
}

/** Static users (`name -> password`) from config or a users file. */
export function staticUsers(users: ReadonlyMap<string, string> | Readonly<Record<string, string>>): TurnAuthenticator {
  const map = users instanceof Map ? new Map(users) : new Map(Object.entries(users));
  const cache = new KeyCache();
  return {
    keys(username, realm, algorithm) {
      const password = map.get(username);
      if (password === undefined) return [];
      const key = cache.get(`${algorithm}\0${realm}\0${username}`, () => derive(username, realm, password, algorithm) ?? new Uint8Array(0));
      return key.length ? [key] : [];
    },
  };
}

/**
 * Parses a users file: one `name:password` per line; `#` comments and blank lines ignored.
 * Throws ServerError BAD_CONFIG naming the line of a malformed entry.
 */
export function parseUsersFile(text: string, source = 'users file'): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0 || colon === line.length - 1) throw new ServerError('BAD_CONFIG', `${source} line ${i + 1}: expected name:password`);
    users.set(line.slice(0, colon), line.slice(colon + 1));
  });
  return users;
}

/**
 * Accepts the TURN REST API's time-limited credentials (draft-uberti-behave-turn-rest), as
 * coturn's `use-auth-secret` does: the username is `expiry:user` (expiry in Unix seconds; a bare
 * `expiry` also works), the password is `restApiPassword(secret, username)` (@nat/protocol).
 * Several secrets are accepted at once so that they can be rotated.
 */
export function restApiSecrets(secrets: readonly string[]): TurnAuthenticator {
  if (secrets.length === 0) throw new ServerError('BAD_CONFIG', 'auth secret: give at least one secret');
  const cache = new KeyCache();
  return {
    keys(username, realm, algorithm, now) {
      const expiry = restApiExpiry(username);
      // `EXPIRY:~PEERID` is the anonymous tier's form: never an operator's credential.
      if (expiry === undefined || expiry * 1000 < now || anonymousRelayPeer(username) !== undefined) return [];
      const out: Uint8Array[] = [];
      secrets.forEach((secret, i) => {
        const key = cache.get(
          `${i}\0${algorithm}\0${realm}\0${username}`,
          () => derive(username, realm, restApiPassword(secret, username), algorithm) ?? new Uint8Array(0),
        );
        if (key.length) out.push(key);
      });
      return out;
    },
  };
}

/**
 * REST API credentials valid for `ttlSeconds` from `now` (default: the clock): @nat/protocol's
 * `restApiCredentials`, which takes the time from its caller.
 */
export function restApiCredentials(secret: string, user: string, ttlSeconds: number, now = Date.now()): RestApiCredentials {
  return restApiCredentialsAt(secret, user, ttlSeconds, now);
}

/** Tries each authenticator in turn; the keys of the first that knows the user. */
export function anyOf(...auths: TurnAuthenticator[]): TurnAuthenticator {
  const remote = auths.filter((a) => a.prepare !== undefined);
  return {
    keys(username, realm, algorithm, now) {
      let unavailable: TurnAuthUnavailableError | undefined;
      for (const a of auths) {
        try {
          const k = a.keys(username, realm, algorithm, now);
          if (k.length) return k;
        } catch (e) {
          if (!(e instanceof TurnAuthUnavailableError)) throw e;
          unavailable ??= e; // another source may still know the user
        }
      }
      if (unavailable !== undefined) throw unavailable;
      return [];
    },
    ...(remote.length === 0
      ? {}
      : {
          prepare(username, realm, now) {
            const pending = remote.map((a) => a.prepare!(username, realm, now)).filter((p) => p !== undefined);
            return pending.length === 0 ? undefined : Promise.all(pending).then(() => undefined);
          },
        }),
  };
}

export { PasswordAlgorithm };

// ---------------------------------------------------------------- the anonymous relay tier

/**
 * Anonymous relay credentials valid for `ttlSeconds` from `now` (default: the clock):
 * @nat/protocol's `anonymousRelayCredentials`, which takes the time from its caller.
 */
export function anonymousRelayCredentials(secret: string, peerId: string, ttlSeconds: number, now = Date.now()): RestApiCredentials {
  return anonymousRelayCredentialsAt(secret, peerId, ttlSeconds, now);
}

/**
 * Accepts the anonymous relay credentials the rendezvous made with one of `secrets` (several
 * while rotating), and nothing else: put it next to the operator's users with {@link anyOf}.
 */
export function anonymousRelayUsers(secrets: readonly string[]): TurnAuthenticator {
  if (secrets.length === 0) throw new ServerError('BAD_CONFIG', 'anonymous relay: give at least one secret');
  const keys = secrets.map((s) => anonymousRelayKey(s));
  const cache = new KeyCache();
  return {
    keys(username, realm, algorithm, now) {
      const expiry = anonymousRelayExpiry(username);
      if (expiry === undefined || expiry * 1000 < now) return [];
      const out: Uint8Array[] = [];
      keys.forEach((k, i) => {
        const password = anonymousRelayPassword(k, username);
        const key = cache.get(`${i}\0${algorithm}\0${realm}\0${username}`, () => derive(username, realm, password, algorithm) ?? new Uint8Array(0));
        if (key.length) out.push(key);
      });
      return out;
    },
  };
}
