import type { AllocationEndCause } from '../events.js';
import type { Allocation } from './allocation.js';
import type { TcpConnection, TurnState } from './state.js';

/** RFC 8656 section 12: a channel number stays unusable for 5 minutes after its binding expires. */
const CHANNEL_QUARANTINE = 300_000;

/** Allocation lifetime granted for a requested LIFETIME (RFC 8656 section 7.2): the default when absent or smaller, capped at the maximum. */
export function grantedLifetime(s: TurnState, requested: number | undefined): number {
  if (requested === undefined) return s.defaultLifetime;
  return Math.min(Math.max(requested, s.defaultLifetime), s.maxLifetime);
}

/** Forgets an RFC 6062 peer connection (its place in the allocation's share goes back). */
export function forgetTcp(s: TurnState, c: TcpConnection): void {
  if (s.tcp.delete(c.id)) s.tcpLimits.closed(c.allocation, c.origin);
}

/**
 * Emits what an allocation relayed since its last `relayed` event, and a `refused` event of cause
 * `bandwidth` when packets were dropped over a cap since then. The hot path only adds to plain
 * counters; this runs from `sweep` (at most once a second per allocation) and when it ends.
 */
export function reportTraffic(s: TurnState, a: Allocation, now: number): void {
  const r = a.reported;
  r.at = now;
  if (a.toPeerPackets !== r.toPeerPackets || a.toClientPackets !== r.toClientPackets) {
    s.emit({
      type: 'relayed',
      allocation: a.id,
      user: a.username,
      packetsToPeer: a.toPeerPackets - r.toPeerPackets,
      bytesToPeer: a.toPeerBytes - r.toPeerBytes,
      packetsToClient: a.toClientPackets - r.toClientPackets,
      bytesToClient: a.toClientBytes - r.toClientBytes,
    });
    r.toPeerPackets = a.toPeerPackets;
    r.toPeerBytes = a.toPeerBytes;
    r.toClientPackets = a.toClientPackets;
    r.toClientBytes = a.toClientBytes;
  }
  if (a.overBandwidth !== r.overBandwidth) {
    r.overBandwidth = a.overBandwidth;
    s.refused('bandwidth', 'relayed-bytes', a.endpoint, a.username);
  }
}

/**
 * Ends an allocation (RFC 8656 section 7.3 with LIFETIME 0, expiry, its connection closed, its
 * relay failed, the server closing): frees its quota and tier lease, closes its RFC 6062 peer
 * connections and relay, and emits its last traffic and `allocation-ended`.
 */
export function endAllocation(s: TurnState, a: Allocation, cause: AllocationEndCause): void {
  if (!s.byId.delete(a.id)) return;
  reportTraffic(s, a, s.now);
  s.byEndpoint.delete(a.endpoint.key);
  s.pending.delete(a.id);
  s.quotas.release(a.id);
  s.leases.get(a.id)?.release();
  s.leases.delete(a.id);
  s.stats.allocations = s.byId.size;
  for (const c of s.tcp.values()) {
    if (c.allocation === a.id) {
      forgetTcp(s, c);
      s.out.push({ kind: 'tcp-close', connectionId: c.id });
    }
  }
  s.out.push({ kind: 'close-relay', allocation: a.id });
  s.emit({ type: 'allocation-ended', allocation: a.id, user: a.username, relay: a.transport, cause });
  s.log.debug({ allocation: a.id, cause }, 'allocation deleted');
}

/** Expires allocations, permissions, channels and unbound TCP peer connections; reports traffic at most once a second. */
export function sweep(s: TurnState, now: number): void {
  s.now = now;
  s.quotas.sweep(now);
  s.sweepRateLimited(now);
  for (const c of s.tcp.values()) {
    if (c.state === 'pending-bind' && c.expiresAt <= now) {
      forgetTcp(s, c);
      s.out.push({ kind: 'tcp-close', connectionId: c.id });
    }
  }
  for (const a of s.byId.values()) {
    if (a.expiresAt <= now) {
      endAllocation(s, a, 'expired');
      continue;
    }
    for (const [ip, until] of a.permissions) if (until <= now) a.permissions.delete(ip);
    for (const [n, c] of a.channels) {
      // We keep an expired binding (so it cannot be rebound to another peer) until its quarantine ends.
      if (c.expiresAt + CHANNEL_QUARANTINE <= now) {
        a.channels.delete(n);
        a.channelByPeer.delete(c.peerKey);
      }
    }
    if (now - a.reported.at >= 1000) reportTraffic(s, a, now);
  }
}
