/** CreatePermission (RFC 8656 section 9.2). */
import { Attr } from '@nat/protocol';
import { ok } from '../answers.js';
import { checkPeer } from '../peer-check.js';
import { Reject, type TurnRequest, type TurnState } from '../state.js';

/** RFC 8656 section 9: a permission lasts 300 seconds unless refreshed. */
export const PERMISSION_LIFETIME = 300_000;

/**
 * CreatePermission, in the order of RFC 8656 section 9.2 (authentication is done); all or
 * nothing over its XOR-PEER-ADDRESSes:
 * 1. No allocation on the 5-tuple: 437; made by another user: 441.
 * 2. No XOR-PEER-ADDRESS: 400.
 * 3. Each peer: a family the allocation relays (else 443) and allowed by the peer policy and the
 *    tier's scope (else 403). Permissions are per IP, the port is ignored (section 9).
 * 4. The allocation's permission cap (injected, default 100): 508.
 * 5. Every permission is installed or refreshed for 300 s; the answer is empty.
 */
export function handleCreatePermission(s: TurnState, req: TurnRequest): void {
  const a = s.allocationFor(req);
  const peers = req.m.getAll(Attr.XorPeerAddress);
  if (peers.length === 0) throw new Reject(400, 'Bad Request: XOR-PEER-ADDRESS is required');
  const ips = peers.map((p) => checkPeer(s, a, p, 'permissions', false));
  const fresh = new Set(ips.filter((ip) => !a.permissions.has(ip)));
  if (a.permissions.size + fresh.size > s.maxPermissions)
    throw new Reject(508, 'Insufficient Capacity: too many permissions', [], { cause: 'user-quota', pool: 'permissions' });
  for (const ip of ips) a.permissions.set(ip, req.now + PERMISSION_LIFETIME);
  ok(s, req, []);
}
