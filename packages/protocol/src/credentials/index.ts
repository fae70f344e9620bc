/**
 * STUN credential mechanisms (RFC 8489 section 9): string preparation (OpaqueString, and
 * SASLprep for RFC 5389 peers), short-term and long-term keys, USERHASH, the password
 * algorithm choice and the nonce cookie with its security feature bits. Pure computation.
 */
export { opaqueString, saslPrep, type SaslPrepOptions } from './opaque-string.js';
export {
  PasswordAlgorithm,
  longTermKey,
  shortTermKey,
  userHash,
  selectPasswordAlgorithm,
  type PasswordAlgorithmName,
  type LongTermKeyInit,
  type ShortTermKeyOptions,
} from './keys.js';
export {
  NONCE_COOKIE_PREFIX,
  NONCE_COOKIE_LENGTH,
  SecurityFeatureBit,
  encodeNonceCookie,
  parseNonceCookie,
  type SecurityFeatures,
  type ParsedNonceCookie,
} from './nonce.js';
