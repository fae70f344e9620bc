/**
 * The "nonce cookie" of RFC 8489 section 9.2: a server that implements RFC 8489 starts every
 * NONCE with "obMatJos2" followed by the 4-character base64 encoding of the 24-bit STUN Security
 * Features set (section 18.1), which protects the password-algorithm negotiation and the
 * username anonymity against bid-down attacks (section 9.2.1).
 *
 * Bit order. RFC 8489 as published numbers the bits from the most significant one (sections
 * 9.2 and 18.1), but verified erratum 6290 reverses that: bit 0 is the least significant bit of
 * the third byte. The erratum is what the RFC's own test vector uses (appendix B.1: cookie
 * "obMatJos2AAAC", bytes 00 00 02, "Username anonymity" with a USERHASH request) and what
 * RFC 8489 implementations follow. The TURN examples of RFC 8656 ("obMatJos2gAAA", bytes
 * 80 00 00, meant as "Password algorithms") predate the erratum; under the erratum they read as
 * the unassigned bit 23, so {@link ParsedNonceCookie.bits} keeps the raw value for callers that
 * need to recognise them.
 */
import { EncodeError } from '../errors.js';

/** The 9 characters that start the nonce cookie (RFC 8489 section 9.2). */
export const NONCE_COOKIE_PREFIX = 'obMatJos2';

/** Length of the whole nonce cookie: prefix plus 4 base64 characters (RFC 8489 section 9.2). */
export const NONCE_COOKIE_LENGTH = 13;

/** The assigned STUN Security Feature bits as 24-bit masks (RFC 8489 section 18.1, erratum 6290). */
export const SecurityFeatureBit = {
  /** bit 0, "Password algorithms": the server sent PASSWORD-ALGORITHMS */
  PasswordAlgorithms: 0x000001,
  /** bit 1, "Username anonymity": the client must use USERHASH instead of USERNAME */
  UsernameAnonymity: 0x000002,
} as const;

/** The STUN Security Features this package knows (RFC 8489 section 18.1). */
export interface SecurityFeatures {
  /** bit 0: the server supports PASSWORD-ALGORITHMS (section 9.2.4) */
  readonly passwordAlgorithms: boolean;
  /** bit 1: the server supports USERHASH (section 9.2.5) */
  readonly usernameAnonymity: boolean;
}

/** A NONCE split into its nonce cookie and the rest. */
export interface ParsedNonceCookie {
  /** the assigned feature bits */
  readonly features: SecurityFeatures;
  /** all 24 feature bits as an integer (0 to 0xFFFFFF), including unassigned ones */
  readonly bits: number;
  /** the text after the 13-character nonce cookie, opaque to the client */
  readonly opaque: string;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** NONCE values are fewer than 128 characters (RFC 8489 section 14.10). */
const MAX_NONCE_CHARACTERS = 127;

function featureBits(features: SecurityFeatures): number {
  return (features.passwordAlgorithms ? SecurityFeatureBit.PasswordAlgorithms : 0) | (features.usernameAnonymity ? SecurityFeatureBit.UsernameAnonymity : 0);
}

/** Base64 (RFC 4648 section 4) of three bytes: four characters, never padding. */
function encode24(bits: number): string {
  let out = '';
  for (let shift = 18; shift >= 0; shift -= 6) out += BASE64[(bits >>> shift) & 0x3f] ?? '';
  return out;
}

function decode24(text: string): number | undefined {
  let bits = 0;
  for (let i = 0; i < 4; i++) {
    const value = BASE64.indexOf(text.charAt(i));
    if (value < 0) return undefined;
    bits = (bits << 6) | value;
  }
  return bits;
}

/**
 * A NONCE value for a 401 or 438 response: the nonce cookie carrying `features` (RFC 8489
 * section 9.2; all bits zero when no feature is used) followed by the server's `opaque` text.
 * Throws EncodeError `BAD_VALUE` if the result would reach 128 characters (section 14.10).
 */
export function encodeNonceCookie(features: SecurityFeatures, opaque: string): string {
  const nonce = NONCE_COOKIE_PREFIX + encode24(featureBits(features)) + opaque;
  let characters = 0;
  for (const _ of nonce) characters++;
  if (characters > MAX_NONCE_CHARACTERS) {
    throw new EncodeError('BAD_VALUE', `NONCE of ${characters} characters; it must be fewer than 128`);
  }
  return nonce;
}

/**
 * Splits a NONCE into its nonce cookie and the rest, or returns `undefined` when it does not
 * start with a complete nonce cookie ("obMatJos2" and four base64 characters): the server then
 * does not implement RFC 8489 and no security feature applies (section 9.2.5).
 */
export function parseNonceCookie(nonce: string): ParsedNonceCookie | undefined {
  if (nonce.length < NONCE_COOKIE_LENGTH || !nonce.startsWith(NONCE_COOKIE_PREFIX)) return undefined;
  const bits = decode24(nonce.slice(NONCE_COOKIE_PREFIX.length, NONCE_COOKIE_LENGTH));
  if (bits === undefined) return undefined;
  return {
    features: {
      passwordAlgorithms: (bits & SecurityFeatureBit.PasswordAlgorithms) !== 0,
      usernameAnonymity: (bits & SecurityFeatureBit.UsernameAnonymity) !== 0,
    },
    bits,
    opaque: nonce.slice(NONCE_COOKIE_LENGTH),
  };
}
