import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { encodeNonceCookie, parseNonceCookie } from '@nat/protocol';

/**
 * Stateless nonces (RFC 8489 section 9.2: the server decides nonce validity): the nonce cookie
 * with its security feature bits, then base64url(expiry || HMAC(secret, expiry || client IP)):
 * a 4-byte expiry in Unix seconds and 12 bytes of HMAC-SHA256, 35 characters in all (a 401 is
 * answered to strangers: it carries no byte it does not need). Nothing is stored per client; a
 * nonce from another IP or past its expiry is stale (438).
 */
export class NonceIssuer {
  readonly #secret: Buffer;
  readonly #lifetimeMs: number;
  readonly #passwordAlgorithms: boolean;

  constructor(options: { lifetimeMs?: number; secret?: Uint8Array; passwordAlgorithms?: boolean } = {}) {
    this.#secret = Buffer.from(options.secret ?? randomBytes(32));
    this.#lifetimeMs = options.lifetimeMs ?? 600_000;
    this.#passwordAlgorithms = options.passwordAlgorithms ?? true;
  }

  #mac(expiry: Buffer, clientIp: string): Buffer {
    return createHmac('sha256', this.#secret).update(expiry).update(clientIp).digest().subarray(0, 12);
  }

  /** A fresh nonce for a client IP. */
  issue(clientIp: string, now: number): string {
    const expiry = Buffer.alloc(4);
    expiry.writeUInt32BE(Math.floor((now + this.#lifetimeMs) / 1000) >>> 0);
    const opaque = Buffer.concat([expiry, this.#mac(expiry, clientIp)]).toString('base64url');
    return encodeNonceCookie({ passwordAlgorithms: this.#passwordAlgorithms, usernameAnonymity: false }, opaque);
  }

  /** 'valid', 'stale' (ours but expired or for another IP), or 'invalid' (not ours at all). */
  check(nonce: string, clientIp: string, now: number): 'valid' | 'stale' | 'invalid' {
    const parsed = parseNonceCookie(nonce);
    const opaque = parsed ? parsed.opaque : nonce;
    let raw: Buffer;
    try {
      raw = Buffer.from(opaque, 'base64url');
    } catch {
      return 'invalid';
    }
    if (raw.length !== 16) return 'invalid';
    const expiry = raw.subarray(0, 4);
    if (!timingSafeEqual(raw.subarray(4), this.#mac(expiry, clientIp))) return 'stale';
    return expiry.readUInt32BE(0) * 1000 < now ? 'stale' : 'valid';
  }
}
