import type { StunMessage } from '@nat/protocol';
import { errorResponseError } from '../driver/runner.js';
import { StunClientError } from '../errors.js';

const turnNotOffered = new WeakSet<StunClientError>();

/**
 * The error for an error response the TURN core does not retry. A 400 to the Allocate request
 * sent before any credentials (a TURN server challenges that request with 401, RFC 8656 section
 * 7.2 and RFC 8489 section 9.2) means the server does not offer TURN: such an error says so in
 * its message, and {@link isTurnNotOffered} recognises it.
 */
export function refusalError(kind: string, unsigned: boolean, response: StunMessage): StunClientError {
  const error = errorResponseError(response);
  if (kind !== 'allocate' || !unsigned || error.stunErrorCode !== 400) return error;
  const reworded = new StunClientError(
    error.code,
    `the server answered the Allocate request, sent before any credentials, with 400${error.reason ? ` ${error.reason}` : ''} instead of asking for credentials (401): it does not offer TURN`,
    { stunErrorCode: 400, response, ...(error.reason === undefined ? {} : { reason: error.reason }) },
  );
  turnNotOffered.add(reworded);
  return reworded;
}

/** True for the error of a server that answered the first Allocate with 400: it offers no TURN ({@link refusalError}). */
export function isTurnNotOffered(e: unknown): boolean {
  return typeof e === 'object' && e !== null && turnNotOffered.has(e as StunClientError);
}
