/**
 * The STUN messages of ICE connectivity checks (RFC 8445 section 7): Binding requests with
 * USERNAME, PRIORITY, ICE-CONTROLLING / ICE-CONTROLLED and USE-CANDIDATE, their responses, and
 * Binding indications (keepalives), all with MESSAGE-INTEGRITY (short-term credentials) and
 * FINGERPRINT.
 */
import { Attr, type AttributeEntry, StunClass, StunMethod, type TransportAddress, attr, encodeStunMessage, errorCode, shortTermKey } from '@nat/protocol';
import type { IceRole } from './types.js';

/** What goes into a connectivity check. */
export interface CheckRequestInit {
  readonly localUfrag: string;
  readonly remoteUfrag: string;
  readonly remotePwd: string;
  readonly role: IceRole;
  readonly tieBreaker: bigint;
  /** PRIORITY: what a peer-reflexive candidate learned from this check would have (RFC 8445 section 7.1.1). */
  readonly priority: number;
  readonly useCandidate: boolean;
  readonly transactionId?: Uint8Array;
}

/**
 * A connectivity check. USERNAME is `RFRAG:LFRAG` from the sender's point of view: the
 * receiver's ufrag first (RFC 8445 section 7.2.2); the key is the receiver's password.
 */
export function encodeCheckRequest(init: CheckRequestInit): Uint8Array {
  const attributes: AttributeEntry[] = [
    attr(Attr.Username, `${init.remoteUfrag}:${init.localUfrag}`),
    attr(Attr.Priority, init.priority),
    init.role === 'controlling' ? attr(Attr.IceControlling, init.tieBreaker) : attr(Attr.IceControlled, init.tieBreaker),
  ];
  if (init.useCandidate) attributes.push(attr(Attr.UseCandidate, true));
  return encodeStunMessage(
    {
      method: StunMethod.Binding,
      class: StunClass.Request,
      attributes,
      ...(init.transactionId === undefined ? {} : { transactionId: init.transactionId }),
    },
    { integrity: shortTermKey(init.remotePwd), fingerprint: true },
  );
}

/** A success response: XOR-MAPPED-ADDRESS is the request's source (RFC 8445 section 7.3.1). */
export function encodeCheckSuccess(transactionId: Uint8Array, mapped: TransportAddress, localPwd: string): Uint8Array {
  return encodeStunMessage(
    { method: StunMethod.Binding, class: StunClass.SuccessResponse, transactionId, attributes: [attr(Attr.XorMappedAddress, mapped)] },
    { integrity: shortTermKey(localPwd), fingerprint: true },
  );
}

/**
 * An error response. 487 (Role Conflict) is signed with the local password; 400 and 401 go
 * without MESSAGE-INTEGRITY since the request could not be authenticated (RFC 8489 section 9.1.3).
 */
export function encodeCheckError(transactionId: Uint8Array, code: number, localPwd: string | undefined): Uint8Array {
  return encodeStunMessage(
    { method: StunMethod.Binding, class: StunClass.ErrorResponse, transactionId, attributes: [attr(Attr.ErrorCode, errorCode(code))] },
    localPwd === undefined ? { fingerprint: true } : { integrity: shortTermKey(localPwd), fingerprint: true },
  );
}

/** A Binding indication: a keepalive that needs no answer (RFC 8445 section 11). */
export function encodeKeepalive(): Uint8Array {
  return encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Indication }, { fingerprint: true });
}
