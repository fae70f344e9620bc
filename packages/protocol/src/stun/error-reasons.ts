/**
 * Reason phrases for the ERROR-CODE values of RFC 8489 section 14.8, RFC 8656 section 18.2,
 * RFC 6062 section 6.3 and RFC 8445 section 7.3.1.1. Used when a caller gives only a code.
 */
export const ERROR_REASONS: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  405: 'Mobility Forbidden',
  420: 'Unknown Attribute',
  437: 'Allocation Mismatch',
  438: 'Stale Nonce',
  440: 'Address Family not Supported',
  441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol',
  443: 'Peer Address Family Mismatch',
  446: 'Connection Already Exists',
  447: 'Connection Timeout or Failure',
  486: 'Allocation Quota Reached',
  487: 'Role Conflict',
  500: 'Server Error',
  508: 'Insufficient Capacity',
};

/** The RFC's reason phrase for an error code, or a generic one. */
export function errorReason(code: number): string {
  return ERROR_REASONS[code] ?? 'Error';
}
