/**
 * The TURN client core's requests (RFC 8656): what one operation asks (a {@link Plan}, kept
 * across its 401 and 438 retries), the attributes of its request, and how a response to it is
 * judged before its transaction sees it (RFC 8489 section 9.2.5). No I/O; used by `core.ts`.
 */
import { Attr, type AttributeEntry, StunClass, StunMethod, type StunMessage, type TransportAddress, attr } from '@nat/protocol';
import { StunClientError } from '../errors.js';
import { type SigningKey, isSigned, verifyResponse } from './credentials.js';
import type { TurnAllocationInfo } from './events.js';
import type { TurnAllocationOptions } from './options.js';
import type { Channel } from './peers.js';

/** UDP transport protocol number for REQUESTED-TRANSPORT (RFC 8656 section 18.8). */
const TRANSPORT_UDP = 17;

export type RequestKind = 'allocate' | 'refresh' | 'deallocate' | 'permission' | 'channel';

/** One operation's request, kept across its 401 and 438 retries. */
export interface Plan {
  readonly kind: RequestKind;
  /** The caller's operation id, for `createPermission` and `bindChannel`. */
  readonly op: number | undefined;
  readonly ips?: readonly string[];
  readonly channel?: Channel;
  /** LIFETIME to send (Refresh and deallocation). */
  readonly lifetime?: number;
  /** Stale-nonce retries made so far. */
  staleRetries: number;
  /** A 401 was already answered with credentials for this operation. */
  challenged: boolean;
}

/** A request in flight. */
export interface Pending {
  readonly plan: Plan;
  readonly method: number;
  /** The key it was signed with; undefined for the first, unauthenticated Allocate. */
  readonly signing: SigningKey | undefined;
  /** Responses discarded because their MAC did not verify (RFC 8489 section 9.2.5). */
  discarded: number;
  /** Why it was cancelled, when it was. */
  failure?: StunClientError;
}

export const METHOD: Record<RequestKind, number> = {
  allocate: StunMethod.Allocate,
  refresh: StunMethod.Refresh,
  deallocate: StunMethod.Refresh,
  permission: StunMethod.CreatePermission,
  channel: StunMethod.ChannelBind,
};

/** A new plan of `kind` (no retries made yet). */
export function plan(kind: RequestKind, op: number | undefined, more: Pick<Plan, 'ips' | 'channel' | 'lifetime'> = {}): Plan {
  return { kind, op, ...more, staleRetries: 0, challenged: false };
}

/** The attributes of a plan's request, before the credentials. */
export function requestAttributes(plan: Plan, o: TurnAllocationOptions): AttributeEntry[] {
  const out: AttributeEntry[] = [];
  switch (plan.kind) {
    case 'allocate':
      out.push(attr(Attr.RequestedTransport, TRANSPORT_UDP));
      if (o.lifetime !== undefined) out.push(attr(Attr.Lifetime, o.lifetime));
      if (o.requestedAddressFamily !== undefined) out.push(attr(Attr.RequestedAddressFamily, o.requestedAddressFamily));
      if (o.additionalIPv6) out.push(attr(Attr.AdditionalAddressFamily, 'IPv6'));
      if (o.evenPort !== undefined) out.push(attr(Attr.EvenPort, { reserve: o.evenPort.reserve }));
      if (o.reservationToken !== undefined) out.push(attr(Attr.ReservationToken, o.reservationToken));
      if (o.dontFragment) out.push(attr(Attr.DontFragment, true));
      break;
    case 'refresh':
      if (o.lifetime !== undefined) out.push(attr(Attr.Lifetime, o.lifetime));
      break;
    case 'deallocate':
      out.push(attr(Attr.Lifetime, 0));
      break;
    case 'permission':
      for (const ip of plan.ips!) out.push(attr(Attr.XorPeerAddress, { family: familyOf(ip), address: ip, port: 0 }));
      break;
    case 'channel':
      out.push(attr(Attr.ChannelNumber, plan.channel!.number), attr(Attr.XorPeerAddress, plan.channel!.peer));
      break;
  }
  if (o.software !== undefined) out.push(attr(Attr.Software, o.software));
  return out;
}

/**
 * What to do with a response to the request `p` before its transaction sees it:
 * `take` it; `discard` it as if never received (an unauthenticated response over UDP: the
 * retransmits go on); or `fail` the request with the error given.
 */
export function judgeResponse(
  message: StunMessage,
  p: Pending,
  reliable: boolean,
): { readonly verdict: 'take' } | { readonly verdict: 'discard' } | { readonly verdict: 'fail'; readonly error: StunClientError } {
  let reject: string | undefined;
  if (p.signing !== undefined) {
    if (isSigned(message)) {
      if (!verifyResponse(message, p.signing)) reject = 'its MESSAGE-INTEGRITY does not verify';
    } else if (message.class === StunClass.SuccessResponse) {
      reject = 'it is not signed';
    } else if (errorCodeOf(message) === 300) {
      // A redirect to an unauthenticated server must not move a signed exchange elsewhere.
      reject = 'an unsigned 300 answered a signed request';
    }
    // Other unsigned error responses are taken: 401 and 438 are never signed, and any other
    // can only end a request, which an on-path attacker can do anyway by dropping packets.
  } else if (message.class === StunClass.SuccessResponse) {
    // The first Allocate carries no credentials; a server that allocates without any is not
    // one we can authenticate.
    return {
      verdict: 'fail',
      error: new StunClientError('BAD_RESPONSE', 'the server answered an unauthenticated Allocate with success', { response: message }),
    };
  }
  if (reject === undefined) return { verdict: 'take' };
  // RFC 8489 section 9.2.5: over a reliable transport an unauthenticated response fails the
  // request; over UDP it is discarded as if never received.
  return reliable
    ? { verdict: 'fail', error: new StunClientError('BAD_RESPONSE', `response rejected: ${reject}`, { response: message }) }
    : { verdict: 'discard' };
}

/** What an Allocate success response granted; throws StunClientError `BAD_RESPONSE` when it cannot be used. */
export function allocationOf(response: StunMessage): TurnAllocationInfo {
  try {
    const relayed = response.getAll(Attr.XorRelayedAddress);
    const lifetime = response.get(Attr.Lifetime);
    if (relayed.length === 0 || lifetime === undefined) {
      throw new StunClientError('BAD_RESPONSE', 'Allocate success without XOR-RELAYED-ADDRESS or LIFETIME', { response });
    }
    return {
      relayedAddress: relayed[0]!,
      relayedAddresses: relayed,
      mappedAddress: response.get(Attr.XorMappedAddress),
      lifetime,
      reservationToken: response.get(Attr.ReservationToken),
      addressError: response.get(Attr.AddressErrorCode),
    };
  } catch (e) {
    throw e instanceof StunClientError ? e : new StunClientError('BAD_RESPONSE', `bad Allocate response: ${(e as Error).message}`, { cause: e, response });
  }
}

/** The ALTERNATE-SERVER (and ALTERNATE-DOMAIN) of a 300 Try Alternate, when it carries a valid one. */
export function alternateOf(response: StunMessage): { readonly alternateServer: TransportAddress; readonly alternateDomain: string | undefined } | undefined {
  try {
    const alternateServer = response.get(Attr.AlternateServer);
    return alternateServer === undefined ? undefined : { alternateServer, alternateDomain: response.get(Attr.AlternateDomain) };
  } catch {
    return undefined;
  }
}

export function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${String(value)}`);
  return value;
}

function familyOf(ip: string): 'IPv4' | 'IPv6' {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

export function errorCodeOf(m: StunMessage): number | undefined {
  try {
    return m.get(Attr.ErrorCode)?.code;
  } catch {
    return undefined;
  }
}

export function methodLabel(kind: RequestKind): string {
  return { allocate: 'Allocate', refresh: 'Refresh', deallocate: 'Refresh', permission: 'CreatePermission', channel: 'ChannelBind' }[kind];
}

/** The same error with a clearer message. */
export function reworded(e: StunClientError, message: string): StunClientError {
  return new StunClientError(e.code, message, {
    ...(e.cause === undefined ? {} : { cause: e.cause }),
    ...(e.stunErrorCode === undefined ? {} : { stunErrorCode: e.stunErrorCode }),
    ...(e.reason === undefined ? {} : { reason: e.reason }),
    ...(e.response === undefined ? {} : { response: e.response }),
  });
}
