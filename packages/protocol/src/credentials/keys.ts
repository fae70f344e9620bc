/**
 * HMAC keys of the STUN credential mechanisms (RFC 8489 section 9), the USERHASH value
 * (section 14.4) and the choice of password algorithm (sections 9.2.4, 9.2.5 and 18.5).
 *
 * Key derivation hashes a handful of bytes with node:crypto; a server that authenticates every
 * request should cache keys per (username, realm, algorithm) rather than derive them per packet.
 */
import { createHash } from 'node:crypto';
import { EncodeError } from '../errors.js';
import { opaqueString, saslPrep } from './opaque-string.js';

/** The STUN Password Algorithms registry (RFC 8489 section 18.5), as carried on the wire. */
export const PasswordAlgorithm = {
  /** MD5, 16-byte key (section 18.5.1.1) */
  MD5: 0x0001,
  /** SHA-256, 32-byte key (section 18.5.1.2) */
  SHA256: 0x0002,
} as const;

/** A password algorithm number this package can derive keys for (0x0001 or 0x0002). */
export type PasswordAlgorithm = (typeof PasswordAlgorithm)[keyof typeof PasswordAlgorithm];

/** The registry names of the password algorithms (RFC 8489 section 18.5). */
export type PasswordAlgorithmName = 'MD5' | 'SHA-256';

/** Inputs of {@link longTermKey}. */
export interface LongTermKeyInit {
  /** the username as the user typed it, or the value of a USERNAME attribute */
  readonly username: string;
  /** the value of the REALM attribute */
  readonly realm: string;
  /** the long-term password */
  readonly password: string;
  /** the hash; default MD5, the algorithm when no PASSWORD-ALGORITHM is used (section 9.2.2) */
  readonly algorithm?: PasswordAlgorithm | PasswordAlgorithmName;
  /**
   * Prepare the strings with SASLprep as RFC 5389 peers do, instead of OpaqueString.
   * Default false.
   */
  readonly legacy?: boolean;
}

/** Options of {@link shortTermKey}. */
export interface ShortTermKeyOptions {
  /** prepare the password with SASLprep as RFC 5389 peers do (default false: OpaqueString) */
  readonly legacy?: boolean;
}

type HashName = 'md5' | 'sha256';

function hashName(algorithm: PasswordAlgorithm | PasswordAlgorithmName): HashName {
  switch (algorithm) {
    case PasswordAlgorithm.MD5:
    case 'MD5':
      return 'md5';
    case PasswordAlgorithm.SHA256:
    case 'SHA-256':
      return 'sha256';
    default:
      throw new EncodeError('BAD_VALUE', `unsupported password algorithm ${String(algorithm)}`);
  }
}

function digest(hash: HashName, text: string): Uint8Array {
  // A copy, so that the key never shares memory with a Buffer pool.
  return new Uint8Array(createHash(hash).update(text, 'utf8').digest());
}

// eslint-disable-next-line no-control-regex -- NUL is what this strips
const TRAILING_NULS = /\u0000+$/;

/**
 * The long-term credential key (RFC 8489 section 9.2.2, section 18.5.1 for SHA-256):
 * `H(username ":" OpaqueString(realm) ":" OpaqueString(password))`, 16 bytes with MD5 and 32
 * with SHA-256, over the UTF-8 encoding.
 *
 * The username is also passed through OpaqueString: section 9.2.2 takes it from the USERNAME
 * attribute, whose value "MUST have been processed using the OpaqueString profile" (section
 * 14.3), and the profile leaves an already-processed value unchanged. Trailing U+0000 are removed
 * from all three strings first, as section 9.2.2 requires (the quotes it also mentions are a
 * leftover of HTTP Digest syntax and are not stripped). With `legacy`, RFC 5389 section 15.4:
 * SASLprep replaces OpaqueString (RFC 5389 requires SASLprep of USERNAME and REALM too).
 *
 * Throws ParseError `BAD_STRING` if a string is rejected by its profile, EncodeError
 * `BAD_VALUE` for an unknown algorithm.
 */
export function longTermKey(init: LongTermKeyInit): Uint8Array {
  const hash = hashName(init.algorithm ?? PasswordAlgorithm.MD5);
  const prepare = init.legacy === true ? (s: string) => saslPrep(s) : opaqueString;
  const username = prepare(init.username.replace(TRAILING_NULS, ''));
  const realm = prepare(init.realm.replace(TRAILING_NULS, ''));
  const password = prepare(init.password.replace(TRAILING_NULS, ''));
  return digest(hash, `${username}:${realm}:${password}`);
}

/**
 * The short-term credential key (RFC 8489 section 9.1.1): the UTF-8 encoding of
 * `OpaqueString(password)`, or of `SASLprep(password)` with `legacy` (RFC 5389 section 15.4).
 */
export function shortTermKey(password: string, options: ShortTermKeyOptions = {}): Uint8Array {
  const prepared = options.legacy === true ? saslPrep(password) : opaqueString(password);
  return new Uint8Array(Buffer.from(prepared, 'utf8'));
}

/**
 * The 32-byte USERHASH value (RFC 8489 section 14.4):
 * `SHA-256(OpaqueString(username) ":" OpaqueString(realm))`.
 */
export function userHash(username: string, realm: string): Uint8Array {
  return digest('sha256', `${opaqueString(username)}:${opaqueString(realm)}`);
}

const DEFAULT_SUPPORTED: readonly number[] = [PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5];

/**
 * The password algorithm a client uses after a 401 or 438 (RFC 8489 section 9.2.5): the first
 * algorithm of the server's PASSWORD-ALGORITHMS list (which is in the server's order of
 * preference) that the client supports, or `undefined` when there is none, in which case the
 * client MUST NOT retry. Without a PASSWORD-ALGORITHMS attribute (`serverList` undefined) the
 * exchange is processed as MD5 (section 9.2.4), so the answer is MD5 if the client supports it.
 * The order of `supported` does not matter.
 */
export function selectPasswordAlgorithm(serverList: readonly number[] | undefined, supported: readonly number[] = DEFAULT_SUPPORTED): number | undefined {
  if (serverList === undefined) {
    return supported.includes(PasswordAlgorithm.MD5) ? PasswordAlgorithm.MD5 : undefined;
  }
  return serverList.find((algorithm) => supported.includes(algorithm));
}
