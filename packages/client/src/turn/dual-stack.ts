/**
 * A TURN allocation with a relayed address of each family (RFC 8656 section 7.1,
 * ADDITIONAL-ADDRESS-FAMILY), for an ICE agent whose peers may be reachable on IPv4 or IPv6.
 */
import { isStunClientError } from '../errors.js';
import { TurnClient, type TurnClientInit } from './client.js';

/**
 * Allocates with `additionalIPv6` (an IPv6 relayed address beside the IPv4 one). A server that
 * cannot relay IPv6 grants IPv4 alone and says why in ADDRESS-ERROR-CODE; one that refuses the
 * request with 440 (Address Family not Supported) is asked again without the attribute.
 */
export async function connectDualStack(init: TurnClientInit): Promise<TurnClient> {
  try {
    return await TurnClient.connect({ ...init, additionalIPv6: true });
  } catch (e) {
    if (isStunClientError(e, 'ERROR_RESPONSE') && e.stunErrorCode === 440 && init.signal?.aborted !== true) return TurnClient.connect(init);
    throw e;
  }
}
