/** Refresh (RFC 8656 section 7.3). */
import { Attr, attr } from '@nat/protocol';
import { ok } from '../answers.js';
import { endAllocation, grantedLifetime } from '../lifecycle.js';
import { Reject, type TurnRequest, type TurnState } from '../state.js';

/**
 * Refresh, in the order of RFC 8656 section 7.3 (authentication is done):
 * 1. No allocation on the 5-tuple: 437; made by another user: 441.
 * 2. REQUESTED-ADDRESS-FAMILY of a family the allocation has not: 443.
 * 3. LIFETIME 0: the allocation is deleted at once, and the answer carries LIFETIME 0.
 * 4. Otherwise the allocation lives the granted lifetime from now (the default when the
 *    requested one is absent or smaller, capped at the maximum), and the answer carries it.
 */
export function handleRefresh(s: TurnState, req: TurnRequest): void {
  const a = s.allocationFor(req);
  const family = req.m.get(Attr.RequestedAddressFamily);
  if (family !== undefined && !a.families.includes(family)) throw new Reject(443);
  const requested = req.m.get(Attr.Lifetime);
  if (requested === 0) {
    endAllocation(s, a, 'deleted');
    ok(s, req, [attr(Attr.Lifetime, 0)]);
    return;
  }
  const lifetime = grantedLifetime(s, requested);
  a.expiresAt = req.now + lifetime * 1000;
  s.emit({ type: 'allocation-refreshed', allocation: a.id, user: a.username, lifetimeS: lifetime });
  ok(s, req, [attr(Attr.Lifetime, lifetime)]);
}
