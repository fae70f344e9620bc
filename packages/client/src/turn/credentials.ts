import {
  Attr,
  type AttributeEntry,
  type EncodeOptions,
  PasswordAlgorithm,
  type PasswordAlgorithmValue,
  type StunMessage,
  attr,
  longTermKey,
  parseNonceCookie,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '@nat/protocol';
import { StunClientError } from '../errors.js';
import type { TurnPasswordAlgorithm } from './options.js';

/** The key and MAC a request was signed with, kept to check its response. */
export interface SigningKey {
  readonly key: Uint8Array;
  /** MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY. */
  readonly sha256: boolean;
}

/**
 * The client side of the long-term credential mechanism (RFC 8489 section 9.2): what the last
 * 401 or 438 taught us (REALM, NONCE, the password algorithms offered) and the key derived from
 * them. Sans-I/O and clock-free.
 */
export class LongTermCredentials {
  readonly username: string;
  readonly #password: string;
  readonly #preferred: TurnPasswordAlgorithm;
  #realm: string | undefined;
  #nonce: string | undefined;
  #signing: SigningKey | undefined;
  /** PASSWORD-ALGORITHMS to echo, when the nonce cookie says the server uses them. */
  #offered: readonly PasswordAlgorithmValue[] | undefined;
  #chosen: PasswordAlgorithmValue | undefined;

  constructor(username: string, password: string, preferred: TurnPasswordAlgorithm = 'MD5') {
    this.username = username;
    this.#password = password;
    this.#preferred = preferred;
  }

  /** True once a challenge gave us a realm and a nonce. */
  get ready(): boolean {
    return this.#signing !== undefined && this.#nonce !== undefined;
  }

  /** The realm learnt from the server, if any. */
  get realm(): string | undefined {
    return this.#realm;
  }

  /** The current nonce, if any. */
  get nonce(): string | undefined {
    return this.#nonce;
  }

  /** The key requests are signed with now. */
  get signing(): SigningKey | undefined {
    return this.#signing;
  }

  /**
   * Learns REALM, NONCE and PASSWORD-ALGORITHMS from a 401 (RFC 8489 section 9.2.5). Returns
   * true when the realm (hence the key) changed. Throws a `BAD_RESPONSE` StunClientError when the
   * challenge cannot be answered: no REALM or NONCE, or no password algorithm we may use.
   */
  learnChallenge(response: StunMessage): boolean {
    const realm = response.get(Attr.Realm);
    const nonce = response.get(Attr.Nonce);
    if (realm === undefined || nonce === undefined) {
      throw new StunClientError('BAD_RESPONSE', '401 without REALM and NONCE: cannot authenticate', { response });
    }
    const cookie = parseNonceCookie(nonce);
    let offered: readonly PasswordAlgorithmValue[] | undefined;
    let chosen: PasswordAlgorithmValue | undefined;
    let algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5;
    // RFC 8489 section 9.2.5: with the "Password algorithms" bit in the nonce cookie, the client
    // picks from PASSWORD-ALGORITHMS and echoes the list in its next requests, which protects
    // the choice against a bid-down to MD5.
    const list = cookie?.features.passwordAlgorithms ? response.get(Attr.PasswordAlgorithms) : undefined;
    if (list !== undefined && list.length > 0) {
      const want = this.#preferred === 'SHA-256' ? PasswordAlgorithm.SHA256 : PasswordAlgorithm.MD5;
      chosen = list.find((a) => a.algorithm === want);
      if (chosen === undefined) {
        throw new StunClientError('BAD_RESPONSE', `the server does not offer the ${this.#preferred} password algorithm`, { response });
      }
      offered = list;
      algorithm = want;
    } else if (this.#preferred === 'SHA-256') {
      throw new StunClientError('BAD_RESPONSE', 'the server offers no PASSWORD-ALGORITHMS: SHA-256 is not available', { response });
    }
    const changed = realm !== this.#realm || algorithm !== (this.#signing?.sha256 ? PasswordAlgorithm.SHA256 : PasswordAlgorithm.MD5);
    this.#realm = realm;
    this.#nonce = nonce;
    this.#offered = offered;
    this.#chosen = chosen;
    if (changed || this.#signing === undefined) {
      let key: Uint8Array;
      try {
        key = longTermKey({ username: this.username, realm, password: this.#password, algorithm });
      } catch (e) {
        throw new StunClientError('BAD_RESPONSE', `cannot derive the long-term key: ${(e as Error).message}`, { cause: e, response });
      }
      this.#signing = { key, sha256: algorithm === PasswordAlgorithm.SHA256 };
    }
    return changed;
  }

  /** Takes the new NONCE of a 438 Stale Nonce (RFC 8489 section 9.2.5). False when it has none. */
  learnStaleNonce(response: StunMessage): boolean {
    const nonce = response.get(Attr.Nonce);
    if (nonce === undefined) return false;
    this.#nonce = nonce;
    return true;
  }

  /**
   * USERNAME, REALM, NONCE (and PASSWORD-ALGORITHMS with PASSWORD-ALGORITHM when the server
   * uses them), to append to an authenticated request.
   */
  attributes(): AttributeEntry[] {
    if (!this.ready) throw new Error('no credentials yet: wait for a 401 challenge');
    const out = [attr(Attr.Username, this.username), attr(Attr.Realm, this.#realm!), attr(Attr.Nonce, this.#nonce!)];
    if (this.#offered !== undefined && this.#chosen !== undefined) {
      out.push(attr(Attr.PasswordAlgorithms, this.#offered), attr(Attr.PasswordAlgorithm, this.#chosen));
    }
    return out;
  }

  /** Encoding options that sign a request with the current key. */
  encodeOptions(fingerprint: boolean): EncodeOptions {
    const s = this.#signing!;
    return s.sha256 ? { integritySha256: s.key, fingerprint } : { integrity: s.key, fingerprint };
  }
}

/** Whether `message` carries a valid MAC for `signing` (RFC 8489 sections 14.5 and 14.6). */
export function verifyResponse(message: StunMessage, signing: SigningKey): boolean {
  return signing.sha256 ? verifyMessageIntegritySha256(message, signing.key) : verifyMessageIntegrity(message, signing.key);
}

/** Whether `message` carries MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 at all. */
export function isSigned(message: StunMessage): boolean {
  return message.integrityOffset >= 0 || message.integritySha256Offset >= 0;
}
