import {
  Attr,
  type AttributeEntry,
  PasswordAlgorithm,
  StunClass,
  type StunMessage,
  attr,
  encodeStunMessage,
  errorCode,
  errorReason,
  sourceKey,
} from '@nat/protocol';
import type { AuthFailureReason } from '../events.js';
import { MIN_ERROR_ANSWER, boundedErrorAttributes } from '../stun/error-answer.js';
import type { ClientEndpoint } from './allocation.js';
import { type Reject, type TurnAuth, type TurnRequest, type TurnState } from './state.js';

/** PASSWORD-ALGORITHMS offered in 401 and 438 answers (RFC 8489 section 14.11); a client picks the first it supports. */
export const OFFERED_ALGORITHMS: readonly PasswordAlgorithm[] = [PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256];

/** Encodes a response signed with the allocation's (or request's) long-term key, with SOFTWARE when configured. */
export function signed(
  s: TurnState,
  m: StunMessage,
  key: Uint8Array,
  mac: 'sha1' | 'sha256',
  attributes: AttributeEntry[],
  cls: StunClass = StunClass.SuccessResponse,
): Uint8Array {
  if (s.software) attributes.push(attr(Attr.Software, s.software));
  return encodeStunMessage(
    { method: m.method, class: cls, transactionId: m.transactionId, attributes },
    mac === 'sha1' ? { integrity: key, fingerprint: m.fingerprintOffset >= 0 } : { integritySha256: key, fingerprint: m.fingerprintOffset >= 0 },
  );
}

/** Queues the success response to an authenticated request. */
export function ok(s: TurnState, req: TurnRequest, attributes: AttributeEntry[]): void {
  s.out.push({ kind: 'to-client', endpoint: req.endpoint, bytes: signed(s, req.m, req.auth.key, req.auth.mac, attributes) });
}

/**
 * Queues an error answer. An authenticated one is signed; an unauthenticated one is rate limited
 * per source and, over UDP, no larger than needed (`boundedErrorAttributes`). A refusal with an
 * event cause emits its `refused` event.
 */
export function answerError(
  s: TurnState,
  m: StunMessage,
  endpoint: ClientEndpoint,
  auth: Pick<TurnAuth, 'key' | 'mac'> | undefined,
  r: Reject,
  user?: string,
): void {
  if (r.event) s.refused(r.event.cause, r.event.pool, endpoint, user);
  if (!auth && !s.allowUnauthenticated(endpoint)) return;
  const attributes = auth
    ? [attr(Attr.ErrorCode, errorCode(r.code, r.reason)), ...r.extra]
    : boundedErrorAttributes(r.code, r.reason, r.extra, endpoint.transport === 'udp' ? m.bytes.length : Infinity);
  const bytes = auth
    ? signed(s, m, auth.key, auth.mac, attributes, StunClass.ErrorResponse)
    : encodeStunMessage({ method: m.method, class: StunClass.ErrorResponse, transactionId: m.transactionId, attributes });
  s.out.push({ kind: 'to-client', endpoint, bytes });
}

/** Bytes a STUN attribute of `valueLength` takes on the wire: its 4-byte header and the value padded to 4. */
const attributeSize = (valueLength: number): number => 4 + ((valueLength + 3) & ~3);

/**
 * A 401 or 438 challenge (RFC 8489 section 9.2.4), rate limited per source like every
 * unauthenticated answer (nothing is sent when the source is over its rate; the event says so),
 * with its `auth-failure` event; false when held back. What it must carry: ERROR-CODE, REALM, a fresh NONCE and
 * PASSWORD-ALGORITHMS (the nonce cookie announces them). Over UDP the reason phrase and SOFTWARE
 * are added only when the answer still fits in the request's size: a minimal Allocate's 401
 * carries nothing it does not need.
 */
export function challenge(s: TurnState, m: StunMessage, endpoint: ClientEndpoint, code: 401 | 438, reason: AuthFailureReason, user?: string): boolean {
  if (!s.allowUnauthenticated(endpoint)) return false;
  s.emit({ type: 'auth-failure', service: 'turn', reason, source: sourceKey(endpoint.client.address), ...(user !== undefined ? { user } : {}) });
  const nonce = s.nonces.issue(endpoint.client.address, s.now);
  const needed: AttributeEntry[] = [
    attr(Attr.Realm, s.realm),
    attr(Attr.Nonce, nonce),
    attr(
      Attr.PasswordAlgorithms,
      OFFERED_ALGORITHMS.map((algorithm) => ({ algorithm, parameters: new Uint8Array(0) })),
    ),
  ];
  const neededSize = MIN_ERROR_ANSWER + attributeSize(Buffer.byteLength(s.realm)) + attributeSize(nonce.length) + attributeSize(4 * OFFERED_ALGORITHMS.length);
  const budget = endpoint.transport === 'udp' ? m.bytes.length : Infinity;
  // boundedErrorAttributes keeps the phrase when MIN_ERROR_ANSWER + phrase fits in its budget:
  // give it what is left of the request's size once the needed attributes are counted.
  const phrase = errorReason(code);
  const attributes = boundedErrorAttributes(code, phrase, needed, budget - neededSize + MIN_ERROR_ANSWER);
  const withPhrase = neededSize + attributeSize(Buffer.byteLength(phrase)) - 4;
  const size = withPhrase <= budget ? withPhrase : neededSize;
  if (s.software && size + attributeSize(Buffer.byteLength(s.software)) <= budget) attributes.push(attr(Attr.Software, s.software));
  s.out.push({
    kind: 'to-client',
    endpoint,
    bytes: encodeStunMessage({ method: m.method, class: StunClass.ErrorResponse, transactionId: m.transactionId, attributes }),
  });
  return true;
}
