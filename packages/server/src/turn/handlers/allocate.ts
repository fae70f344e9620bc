/**
 * Allocate (RFC 8656 section 7.2; RFC 6062 section 5.1 for TCP relays) and the answer once the
 * driver has opened (or failed to open) the relay socket(s).
 */
import { type AddressFamily, Attr, type AttributeEntry, type TransportAddress, attr, sourceKey } from '@nat/protocol';
import type { RefusalCause } from '../../events.js';
import { Allocation } from '../allocation.js';
import { answerError, signed } from '../answers.js';
import { endAllocation, grantedLifetime } from '../lifecycle.js';
import { type QuotaRefusal, RESERVATION_COUNTED_MS, quotaUser, tokenKey } from '../quota.js';
import { Reject, type TurnRequest, type TurnState } from '../state.js';
import { type RelayLease, isRelayRefusal } from '../tiers.js';

const TRANSPORT_UDP = 17;
const TRANSPORT_TCP = 6;

/** What an Allocate asks for, once its attributes are checked. */
interface AllocateAsk {
  readonly transport: 'udp' | 'tcp';
  readonly families: AddressFamily[];
  /** ADDITIONAL-ADDRESS-FAMILY asked for a family the server cannot relay: ADDRESS-ERROR-CODE 440 in the answer. */
  readonly familyError: AddressFamily | undefined;
  readonly token: Uint8Array | undefined;
  readonly even: { readonly reserve: boolean } | undefined;
}

/**
 * Allocate, in the order of RFC 8656 section 7.2's checks (authentication is done):
 * 1. The 5-tuple has an allocation: its own retransmission gets the same answer, anything else 437.
 * 2. REQUESTED-TRANSPORT: missing 400, neither UDP nor (RFC 6062, when enabled) TCP 442.
 *    RFC 6062 section 5.1: a TCP relay needs a TCP/TLS client and none of the UDP-only attributes.
 * 3. RESERVATION-TOKEN with EVEN-PORT or an address family: 400.
 * 4. REQUESTED-/ADDITIONAL-ADDRESS-FAMILY: both 400, ADDITIONAL IPv4 400, a family the relay has
 *    not 440 (an unavailable additional family: ADDRESS-ERROR-CODE in the success answer).
 * 5. ALTERNATE-SERVER configured (or chosen for this user and endpoint): 300 (RFC 8489 section 10).
 * 6. Quotas (injected policy): the tier's lease, then the one ledger per user/tier/source/total,
 *    taken atomically: 486 (508 for the server's total); an anonymous TCP relay is 442.
 * 7. The allocation exists: the driver opens its relay socket(s) (`open-relay`); the answer
 *    waits for `relayOpened` (XOR-RELAYED-ADDRESS, LIFETIME, XOR-MAPPED-ADDRESS, RESERVATION-TOKEN).
 */
export function handleAllocate(s: TurnState, req: TurnRequest): void {
  const { m, endpoint, auth, now } = req;
  const existing = s.byEndpoint.get(endpoint.key);
  if (existing) {
    if (existing.allocateTransaction !== m.transactionKey) throw new Reject(437);
    if (existing.allocateResponse) s.out.push({ kind: 'to-client', endpoint, bytes: existing.allocateResponse });
    return;
  }
  const ask = checkAllocate(s, req);
  const alternate = typeof s.alternate === 'function' ? s.alternate(auth.username, endpoint) : s.alternate;
  if (alternate) throw new Reject(300, undefined, [attr(Attr.AlternateServer, alternate)]);
  const id = s.nextId++;
  const newToken = ask.even?.reserve ? crypto.getRandomValues(new Uint8Array(8)) : undefined;
  const lease = admit(s, req, id, ask, newToken);
  const lifetime = grantedLifetime(s, m.get(Attr.Lifetime));
  if (lease !== undefined) s.leases.set(id, lease);
  const a = new Allocation(id, endpoint, auth.username, auth.key, auth.mac, ask.families, now + lifetime * 1000, s.bandwidth, now);
  a.transport = ask.transport;
  a.tier = lease?.quota?.tier;
  a.allocateTransaction = m.transactionKey;
  s.byId.set(id, a);
  s.byEndpoint.set(endpoint.key, a);
  s.stats.allocations = s.byId.size;
  s.pending.set(id, { request: m, lifetime, token: newToken, familyError: ask.familyError });
  s.emit({
    type: 'allocation-created',
    allocation: id,
    user: auth.username,
    source: sourceKey(endpoint.client.address),
    transport: endpoint.transport,
    relay: ask.transport,
    lifetimeS: lifetime,
    anonymous: lease !== undefined,
  });
  s.out.push({
    kind: 'open-relay',
    allocation: id,
    transport: ask.transport,
    families: ask.families,
    evenPort: ask.even !== undefined,
    reserveNext: ask.even?.reserve === true,
    reservationToken: ask.token,
    newReservationToken: newToken,
  });
}

/** Steps 2 to 4: what the request asks for, or the Reject. */
function checkAllocate(s: TurnState, { m, endpoint }: TurnRequest): AllocateAsk {
  const transport = m.get(Attr.RequestedTransport);
  if (transport === undefined) throw new Reject(400, 'Bad Request: REQUESTED-TRANSPORT is required');
  if (transport !== TRANSPORT_UDP && !(transport === TRANSPORT_TCP && s.tcpRelay)) throw new Reject(442);
  const token = m.get(Attr.ReservationToken);
  const even = m.get(Attr.EvenPort);
  if (transport === TRANSPORT_TCP) {
    if (endpoint.transport === 'udp') throw new Reject(400, 'Bad Request: TCP relay needs a TCP or TLS connection to the server');
    if (token || even || m.has(Attr.DontFragment)) throw new Reject(400, 'Bad Request: EVEN-PORT, RESERVATION-TOKEN and DONT-FRAGMENT are UDP-only');
  }
  const requestedFamily = m.get(Attr.RequestedAddressFamily);
  const additional = m.get(Attr.AdditionalAddressFamily);
  if (token && (even || requestedFamily || additional)) throw new Reject(400, 'Bad Request: RESERVATION-TOKEN with EVEN-PORT or an address family');
  if (requestedFamily && additional) throw new Reject(400, 'Bad Request: REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together');
  if (additional === 'IPv4') throw new Reject(400, 'Bad Request: ADDITIONAL-ADDRESS-FAMILY must be IPv6');
  const family: AddressFamily = requestedFamily ?? 'IPv4';
  if (!s.families.includes(family)) throw new Reject(440);
  const families: AddressFamily[] = [family];
  let familyError: AddressFamily | undefined;
  if (additional === 'IPv6') {
    if (s.families.includes('IPv6')) families.push('IPv6');
    else familyError = 'IPv6';
  }
  return { transport: transport === TRANSPORT_TCP ? 'tcp' : 'udp', families, familyError, token, even };
}

const QUOTA_CAUSE: Record<QuotaRefusal, RefusalCause> = { user: 'user-quota', source: 'source-share', tier: 'anonymous-tier', total: 'global-cap' };

/**
 * Step 6: the tier's lease (a refusal when the credential's tier may not relay this), then the
 * ledger's slots, checked and taken in one call with no await before the allocation exists
 * (quota.ts). Throws the Reject (with its `refused` event, or an `auth-failure` of reason
 * `wrong-tier`); returns the lease of a tier's user.
 */
function admit(s: TurnState, { endpoint, auth, now }: TurnRequest, id: number, ask: AllocateAsk, newToken: Uint8Array | undefined): RelayLease | undefined {
  const lease = s.tiers?.allocate(auth.username, ask.transport, now, endpoint.client.address);
  const source = sourceKey(endpoint.client.address);
  if (isRelayRefusal(lease)) {
    if (lease.wrongTier) s.emit({ type: 'auth-failure', service: 'turn', reason: 'wrong-tier', source, user: auth.username });
    throw new Reject(lease.code, lease.reason, [], lease.wrongTier ? undefined : { cause: 'anonymous-tier', pool: 'allocations' });
  }
  const refused = s.quotas.take(id, quotaUser(auth.username), source, {
    ...(newToken ? { reserve: tokenKey(newToken), reserveUntil: now + RESERVATION_COUNTED_MS } : {}),
    ...(ask.token ? { consume: tokenKey(ask.token) } : {}),
    ...(lease?.quota ? { tier: lease.quota } : {}),
  });
  if (refused === undefined) return lease;
  s.stats.quotaRejected++;
  s.log.info({ user: auth.username, client: endpoint.client.address, quota: refused }, 'allocation refused: quota reached');
  const tierLimit = refused === 'user' || refused === 'tier' ? lease?.quota && refused : undefined;
  const event = { cause: tierLimit ? 'anonymous-tier' : QUOTA_CAUSE[refused], pool: 'allocations' } as const;
  if (tierLimit && lease?.refused) {
    const r = lease.refused(tierLimit);
    throw new Reject(r.code, r.reason, [], event);
  }
  lease?.release();
  throw new Reject(refused === 'total' ? 508 : 486, undefined, [], event);
}

/** The driver opened a relay socket: once every family's is open, answer the pending Allocate. */
export function relayOpened(s: TurnState, a: Allocation, family: AddressFamily, relayed: TransportAddress): void {
  a.relayed[family] = relayed;
  if (!a.ready || a.allocateResponse !== undefined) return;
  const pending = s.pending.get(a.id);
  s.pending.delete(a.id);
  if (pending === undefined) return;
  const attributes: AttributeEntry[] = [];
  for (const f of a.families) attributes.push(attr(Attr.XorRelayedAddress, a.relayed[f]!));
  if (pending.familyError) attributes.push(attr(Attr.AddressErrorCode, { family: pending.familyError, code: 440, reason: 'Address Family not Supported' }));
  attributes.push(attr(Attr.Lifetime, pending.lifetime), attr(Attr.XorMappedAddress, a.endpoint.client));
  if (pending.token) attributes.push(attr(Attr.ReservationToken, pending.token));
  const bytes = signed(s, pending.request, a.key, a.mac, attributes);
  a.allocateResponse = bytes;
  s.out.push({ kind: 'to-client', endpoint: a.endpoint, bytes });
  s.stats.allocationsCreated++;
  s.log.debug({ allocation: a.id, user: a.username, relayed: a.relayed }, 'allocation created');
}

/**
 * The driver could not open a relay socket, or the cluster's ledger refused the allocation: it
 * ends and the pending Allocate gets `reject` (default 508, no port free).
 */
export function relayFailed(s: TurnState, a: Allocation, code: number, reject?: Reject): void {
  const pending = s.pending.get(a.id);
  s.pending.delete(a.id);
  endAllocation(s, a, 'relay-failed');
  if (pending?.token) s.quotas.cancelReservation(tokenKey(pending.token));
  const event = code === 508 && reject === undefined ? ({ cause: 'no-ports', pool: 'relay-ports' } as const) : reject?.event;
  const r = reject ?? new Reject(code, undefined, [], event);
  if (pending) answerError(s, pending.request, a.endpoint, { key: a.key, mac: a.mac }, r, a.username);
  else if (event) s.refused(event.cause, event.pool, a.endpoint, a.username);
}

/** The cluster-wide ledger (TurnClusterQuota) refused allocation `a`: 486 (508 for the total), or 500 when it did not answer. */
export function clusterRefused(s: TurnState, a: Allocation, refusal: QuotaRefusal | 'unavailable'): void {
  if (refusal === 'unavailable') return relayFailed(s, a, 500, new Reject(500, 'Server Error: quota store unavailable'));
  s.stats.quotaRejected++;
  s.log.info({ user: a.username, client: a.endpoint.client.address, quota: refusal, scope: 'cluster' }, 'allocation refused: quota reached');
  const event = { cause: QUOTA_CAUSE[refusal], pool: 'allocations' } as const;
  relayFailed(s, a, refusal === 'total' ? 508 : 486, new Reject(refusal === 'total' ? 508 : 486, undefined, [], event));
}
