/**
 * STUN credential mechanisms (RFC 8489 section 9): string preparation (OpaqueString, and
 * SASLprep for RFC 5389 peers), short-term and long-term keys, USERHASH, the password
 * algorithm choice, the nonce cookie with its security feature bits, and the TURN REST API's
 * time-limited credentials (with the anonymous relay tier's form of them). Pure computation.
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
export {
  type RestApiCredentials,
  restApiExpiry,
  restApiPassword,
  restApiCredentials,
  ANONYMOUS_RELAY_LABEL,
  anonymousRelayKey,
  anonymousRelayPassword,
  anonymousRelayPeer,
  anonymousRelayExpiry,
  anonymousRelayCredentials,
} from './rest-api.js';
