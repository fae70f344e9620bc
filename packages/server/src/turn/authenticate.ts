import { Attr, PasswordAlgorithm, type StunMessage, sourceKey, verifyMessageIntegrity, verifyMessageIntegritySha256 } from '@nat/protocol';
import type { ClientEndpoint } from './allocation.js';
import { TurnAuthUnavailableError } from './auth.js';
import { OFFERED_ALGORITHMS, answerError, challenge } from './answers.js';
import { Reject, type TurnAuth, type TurnState } from './state.js';

/**
 * The long-term credential mechanism, server side (RFC 8489 section 9.2.4), with the auth policy
 * injected (`TurnAuthenticator`). Returns the key on success; otherwise queues the 400/401/438
 * answer (with its `auth-failure` event) and returns undefined.
 *
 * 1. No MESSAGE-INTEGRITY(-SHA256): 401 with REALM, NONCE, PASSWORD-ALGORITHMS (reason `missing`).
 * 2. USERNAME, REALM or NONCE missing: 400.
 * 3. The NONCE is not valid: 438 when stale, 401 when not ours (reason `stale-nonce`).
 * 4. PASSWORD-ALGORITHMS not echoed exactly as offered, or PASSWORD-ALGORITHM not among them
 *    (bid-down protection, section 9.2.4 and 14.11): 400.
 * 5. No key for the user in our realm: 401 (`unknown-user`); the MAC does not verify with any
 *    of its keys: 401 (`bad-integrity`).
 */
export function authenticate(s: TurnState, m: StunMessage, endpoint: ClientEndpoint, now: number): TurnAuth | undefined {
  const ip = endpoint.client.address;
  const sha256 = m.integritySha256Offset >= 0;
  if (m.integrityOffset < 0 && !sha256) {
    if (challenge(s, m, endpoint, 401, 'missing')) s.stats.unauthorized++;
    return undefined;
  }
  const username = m.get(Attr.Username);
  const realm = m.get(Attr.Realm);
  const nonce = m.get(Attr.Nonce);
  if (username === undefined || realm === undefined || nonce === undefined) {
    answerError(s, m, endpoint, undefined, new Reject(400, 'Bad Request: USERNAME, REALM and NONCE are required'));
    return undefined;
  }
  const verdict = s.nonces.check(nonce, ip, now);
  if (verdict !== 'valid') {
    challenge(s, m, endpoint, verdict === 'stale' ? 438 : 401, 'stale-nonce', username);
    return undefined;
  }
  const algorithm = chosenAlgorithm(m, sha256);
  if (algorithm === undefined) {
    answerError(s, m, endpoint, undefined, new Reject(400, 'Bad Request: PASSWORD-ALGORITHM(S) do not match what the server offered'));
    return undefined;
  }
  // The realm must be ours; a key derived for another realm would never verify anyway.
  let keys: readonly Uint8Array[];
  try {
    keys = realm === s.realm ? s.auth.keys(username, realm, algorithm, now) : [];
  } catch (e) {
    if (!(e instanceof TurnAuthUnavailableError)) throw e;
    // Fail closed: the user database did not answer; say so, without the store's address.
    s.log.warn({ user: username, client: ip, err: e.message }, 'authentication impossible: user database unavailable');
    answerError(s, m, endpoint, undefined, new Reject(500, 'Server Error: user database unavailable'));
    return undefined;
  }
  for (const key of keys) {
    if (sha256 ? verifyMessageIntegritySha256(m, key) : verifyMessageIntegrity(m, key)) return { key, mac: sha256 ? 'sha256' : 'sha1', username };
  }
  if (!challenge(s, m, endpoint, 401, keys.length === 0 ? 'unknown-user' : 'bad-integrity', username)) return undefined;
  s.stats.unauthorized++;
  s.log.info({ user: username, client: ip, source: sourceKey(ip) }, 'authentication failed'); // no secret, no MAC logged
  return undefined;
}

/**
 * RFC 8489 section 9.2.4 (bid-down protection): a client that echoes PASSWORD-ALGORITHMS must
 * echo exactly what we offered, and its PASSWORD-ALGORITHM must be one of them. A client that
 * sends neither (an RFC 5389 client, every browser) is taken to use MD5. Undefined: refused.
 */
function chosenAlgorithm(m: StunMessage, sha256: boolean): PasswordAlgorithm | undefined {
  const chosen = m.get(Attr.PasswordAlgorithm);
  const offered = m.get(Attr.PasswordAlgorithms);
  const offeredOk =
    offered === undefined ||
    (offered.length === OFFERED_ALGORITHMS.length && offered.every((o, i) => o.algorithm === OFFERED_ALGORITHMS[i] && o.parameters.length === 0));
  const algorithm = chosen?.algorithm ?? PasswordAlgorithm.MD5;
  if (
    !offeredOk ||
    (chosen !== undefined && offered === undefined) ||
    !OFFERED_ALGORITHMS.includes(algorithm as PasswordAlgorithm) ||
    sha256 !== (algorithm === PasswordAlgorithm.SHA256)
  )
    return undefined;
  return algorithm as PasswordAlgorithm;
}
