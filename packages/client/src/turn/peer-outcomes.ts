/**
 * What the answers to CreatePermission and ChannelBind (RFC 8656 sections 9 and 11) do to the
 * TURN client's peer table, and which permissions and channels are due for a refresh. No I/O;
 * used by `core.ts`.
 */
import type { StunClientError } from '../errors.js';
import { TURN_DEFAULTS } from './options.js';
import type { Channel, PeerTable } from './peers.js';

/** Permission refreshes due this close together are sent in one CreatePermission. */
const COALESCE_MS = 10_000;

/** A CreatePermission toward `ips` succeeded: each is installed (unless released meanwhile). */
export function permissionsGranted(peers: PeerTable, ips: readonly string[], now: number, refreshMs: number): void {
  for (const ip of ips) {
    const perm = peers.permissions.get(ip);
    if (perm === undefined) continue; // released meanwhile
    perm.inFlight = Math.max(0, perm.inFlight - 1);
    peers.installed(ip, now, TURN_DEFAULTS.permissionLifetimeMs, refreshMs);
  }
}

/**
 * A CreatePermission toward `ips` failed: an installed permission whose refresh timed out is
 * tried again while it may still exist; any other is forgotten with what waited for it.
 * Returns how many queued packets were dropped.
 */
export function permissionsRefused(peers: PeerTable, ips: readonly string[], error: StunClientError, now: number): number {
  let dropped = 0;
  for (const ip of ips) {
    const perm = peers.permissions.get(ip);
    if (perm === undefined) continue;
    perm.inFlight = Math.max(0, perm.inFlight - 1);
    const keep = perm.installed && error.code === 'TIMEOUT' && now < perm.expiresAt;
    if (keep) {
      perm.refreshAt = now;
    } else if (perm.inFlight === 0) {
      peers.permissions.delete(ip);
      dropped += peers.takeQueue(ip).length;
    }
  }
  return dropped;
}

/**
 * A ChannelBind succeeded: the channel is bound and, as RFC 8656 section 11.2 says, the peer's
 * permission installed or refreshed too. False when the channel was released meanwhile.
 */
export function channelBound(peers: PeerTable, c: Channel, now: number, refresh: { readonly channelMs: number; readonly permissionMs: number }): boolean {
  c.inFlight = false;
  const perm = peers.permissions.get(c.peer.address);
  if (perm) perm.inFlight = Math.max(0, perm.inFlight - 1);
  if (peers.channels.get(c.number) !== c) return false; // released meanwhile
  c.bound = true;
  c.expiresAt = now + TURN_DEFAULTS.channelLifetimeMs;
  c.refreshAt = now + refresh.channelMs;
  peers.installed(c.peer.address, now, TURN_DEFAULTS.permissionLifetimeMs, refresh.permissionMs);
  return true;
}

/**
 * A ChannelBind failed: a bound channel whose refresh timed out is tried again while it may
 * still exist; any other is removed, and a permission it alone was asking for is forgotten.
 * Returns how many queued packets were dropped.
 */
export function channelRefused(peers: PeerTable, c: Channel, error: StunClientError, now: number): number {
  let dropped = 0;
  c.inFlight = false;
  const perm = peers.permissions.get(c.peer.address);
  if (perm) {
    perm.inFlight = Math.max(0, perm.inFlight - 1);
    if (!perm.installed && perm.inFlight === 0) {
      peers.permissions.delete(c.peer.address);
      dropped += peers.takeQueue(c.peer.address).length;
    }
  }
  if (c.bound && error.code === 'TIMEOUT' && now < c.expiresAt) c.refreshAt = now;
  else peers.removeChannel(c);
  return dropped;
}

/**
 * The permission refreshes due at `now`, in groups of one CreatePermission each (those due
 * within {@link COALESCE_MS} join one that is due now), and the channels whose binding is due.
 */
export function dueRefreshes(peers: PeerTable, now: number): { readonly permissions: readonly (readonly string[])[]; readonly channels: readonly Channel[] } {
  const due: string[] = [];
  if (anyPermissionDue(peers, now)) {
    for (const p of peers.permissions.values()) {
      if (p.installed && p.inFlight === 0 && p.refreshAt <= now + COALESCE_MS) due.push(p.ip);
    }
  }
  const permissions: string[][] = [];
  for (let i = 0; i < due.length; i += TURN_DEFAULTS.maxPeersPerPermissionRequest) {
    permissions.push(due.slice(i, i + TURN_DEFAULTS.maxPeersPerPermissionRequest));
  }
  const channels = [...peers.channels.values()].filter((c) => c.bound && !c.inFlight && c.refreshAt <= now);
  return { permissions, channels };
}

/** Whether some installed permission's refresh is due at `now`. */
function anyPermissionDue(peers: PeerTable, now: number): boolean {
  for (const p of peers.permissions.values()) if (p.installed && p.inFlight === 0 && p.refreshAt <= now) return true;
  return false;
}
