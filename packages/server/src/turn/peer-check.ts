import { type TransportAddress, canonicalIp } from '@nat/protocol';
import type { Allocation } from './allocation.js';
import { Reject, type TurnState } from './state.js';

/** The canonical text of an IP (the form permissions are keyed by), or the text itself when it does not parse. */
export function canonicalIpSafe(ip: string): string {
  try {
    return canonicalIp(ip);
  } catch {
    return ip;
  }
}

/**
 * May allocation `a` relay toward `peer` (RFC 8656 section 9: "the server MAY impose
 * restrictions")? The relay has the peer's family (else 443); the peer policy (injected: address
 * ranges, and with `withPort` the server's own service addresses) allows it (else 403, event
 * `peer-denied`); a tier's lease permits it (else 403, event `out-of-scope`). Returns the peer's
 * canonical IP. `pool` names what was asked for in the events: permissions, channels, tcp-connections.
 */
export function checkPeer(s: TurnState, a: Allocation, peer: TransportAddress, pool: string, withPort = true): string {
  if (a.relayed[peer.family] === undefined) throw new Reject(443);
  const verdict = withPort && s.policy.isService(peer) ? { allowed: false as const, rule: 'a service address of this server' } : s.policy.check(peer.address);
  if (!verdict.allowed) {
    s.stats.forbidden++;
    s.log.info({ allocation: a.id, peer: peer.address, rule: verdict.rule }, 'peer refused by policy');
    throw new Reject(403, 'Forbidden: peer address not allowed', [], { cause: 'peer-denied', pool });
  }
  const ip = canonicalIpSafe(peer.address);
  if (s.leases.get(a.id)?.permit(ip) === false) {
    s.stats.forbidden++;
    throw new Reject(403, "Forbidden: peer address not signalled in this credential's sessions", [], { cause: 'out-of-scope', pool });
  }
  return ip;
}
