import { anonymousRelayPeer } from '@nat/protocol';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { type RelayScope, plainIp } from '../rendezvous/scope.js';
import { TokenBucket } from '../rendezvous/token-bucket.js';
import type { TierQuota } from './quota.js';

/**
 * What one allocation of a narrower tier may do; the TURN core asks it at its decision points.
 * An operator's allocation has no lease: it relays as the server is configured.
 */
export interface RelayLease {
  /**
   * The tier's allocation limits, which the TURN core's one ledger (`TurnQuotas`) applies: the
   * tier counts nothing itself. Without it the user is held to the server's user quota.
   */
  readonly quota?: TierQuota;
  /**
   * The ledger refused the allocation over `quota` (`user`: the per-user limit, `tier`: the
   * tier's total): the answer to give. The lease is released.
   */
  refused?(limit: 'user' | 'tier'): RelayRefusal;
  /** May the allocation relay toward `ip` (canonical)? Asked for every CreatePermission, ChannelBind and Connect peer. */
  permit(ip: string): boolean;
  /** Relayed bytes (either way) go through this allocation: false drops them (over the tier's bandwidth). */
  spend(bytes: number, now: number): boolean;
  /** The allocation is gone: its share goes back. */
  release(): void;
}

/** Why an Allocate was refused by the tier policy: a STUN error code and its reason phrase. */
export interface RelayRefusal {
  readonly code: number;
  readonly reason: string;
  /** The credential's tier may not do this at all (e.g. an anonymous one asking for a TCP relay), rather than a limit reached. */
  readonly wrongTier?: boolean;
}

/**
 * The TURN core's tier policy, injected (pion style): consulted when an authenticated user
 * allocates. Returns a lease (a narrower tier, with its quota for the core's ledger), undefined
 * (an operator's user: no limits beyond the server's), or a refusal.
 */
export interface RelayTierPolicy {
  /**
   * An authenticated Allocate of `username` (its nonce bound to `client`, the client's IP): the
   * lease of a tier's user, a refusal, or undefined for an operator's user.
   */
  allocate(username: string, transport: 'udp' | 'tcp', now: number, client?: string): RelayLease | RelayRefusal | undefined;
}

/** Limits of the anonymous tier (credentials the rendezvous hands to any registered peer). */
export interface AnonymousRelayLimits {
  /**
   * Allocations (and reserved ports) one peer id may hold at once, whatever its credentials'
   * expiry; the server's user quota does not apply to them. Default 4.
   */
  readonly perPeer?: number;
  /** Allocations (and reserved ports) all anonymous peers together may hold at once. Default 1,000. */
  readonly total?: number;
  /** Relayed bytes per second per anonymous allocation, both ways together. Default 1 MiB/s. */
  readonly bandwidth?: number;
  /** Relayed bytes per second of all anonymous allocations together; 0 = no shared cap. Default 32 MiB/s. */
  readonly totalBandwidth?: number;
}

/** Options of {@link RelayTiers}. */
export interface RelayTiersOptions extends AnonymousRelayLimits {
  /** Where anonymous peers may relay to: what their sessions signalled through the rendezvous. */
  readonly scope: RelayScope;
  /**
   * The server's own relay addresses: a relayed candidate a peer was signalled is in scope only
   * on these (two allocations of this server); a relayed candidate elsewhere is not.
   */
  readonly ownRelayIps: readonly string[];
  readonly logger?: Logger;
  /** The clock of scope lookups, ms. Default Date.now. */
  readonly clock?: () => number;
}

/** Counters of the tiers. */
export interface RelayTierStats {
  /** Anonymous allocations now: leases given and not released (the limits are counted by the TURN core's ledger). */
  anonymousAllocations: number;
  /** Anonymous Allocates refused: TCP (RFC 6062) asked, per-peer quota, total share. */
  refusedTransport: number;
  refusedPeerQuota: number;
  refusedTotalShare: number;
  /** Permissions refused: the address was not signalled in the peer's sessions. */
  refusedOutOfScope: number;
  /** Relayed packets dropped over the per-allocation or shared bandwidth. */
  droppedOverBandwidth: number;
}

export const DEFAULT_ANONYMOUS_RELAY_LIMITS: Required<AnonymousRelayLimits> = {
  perPeer: 4,
  total: 1000,
  bandwidth: 1024 * 1024,
  totalBandwidth: 32 * 1024 * 1024,
};

/**
 * Trust tiers of a TURN server. Operator users (static users, users file, REST credentials made
 * with the secret) relay as configured. Anonymous relay credentials (`EXPIRY:~PEERID`, see
 * `anonymousRelayCredentials`) relay UDP only, within a quota per peer id, a bandwidth cap and a
 * shared budget, and only toward the addresses their own sessions exchanged (see {@link RelayScope}).
 */
export class RelayTiers implements RelayTierPolicy {
  readonly stats: RelayTierStats = {
    anonymousAllocations: 0,
    refusedTransport: 0,
    refusedPeerQuota: 0,
    refusedTotalShare: 0,
    refusedOutOfScope: 0,
    droppedOverBandwidth: 0,
  };
  readonly #limits: Required<AnonymousRelayLimits>;
  readonly #scope: RelayScope;
  readonly #own: Set<string>;
  readonly #shared: TokenBucket | undefined;
  readonly #log: Logger;
  readonly #clock: () => number;

  constructor(options: RelayTiersOptions) {
    const d = DEFAULT_ANONYMOUS_RELAY_LIMITS;
    this.#limits = {
      perPeer: options.perPeer ?? d.perPeer,
      total: options.total ?? d.total,
      bandwidth: options.bandwidth ?? d.bandwidth,
      totalBandwidth: options.totalBandwidth ?? d.totalBandwidth,
    };
    this.#scope = options.scope;
    this.#own = new Set(options.ownRelayIps.map((ip) => plainIp(ip) ?? ip));
    this.#shared = this.#limits.totalBandwidth > 0 ? new TokenBucket(this.#limits.totalBandwidth, this.#limits.totalBandwidth, 0) : undefined;
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? Date.now;
  }

  allocate(username: string, transport: 'udp' | 'tcp', now: number, client?: string): RelayLease | RelayRefusal | undefined {
    const peerId = anonymousRelayPeer(username);
    if (peerId === undefined) return undefined; // an operator's user
    // signed, with a nonce that went to `client` in the 401: the peer receives there
    if (client !== undefined) this.#scope.sighted?.(peerId, plainIp(client) ?? client, this.#clock());
    if (transport !== 'udp') {
      this.stats.refusedTransport++;
      this.#log.info({ peerId, transport }, 'anonymous relay allocation refused: TCP relay asked');
      return { code: 442, reason: 'Unsupported Transport Protocol: anonymous relay credentials relay UDP only', wrongTier: true };
    }
    this.stats.anonymousAllocations++;
    return this.#lease(peerId, now);
  }

  /** The answer to an anonymous Allocate the ledger refused over the tier's limits. */
  #refusal(peerId: string, limit: 'user' | 'tier'): RelayRefusal {
    this.stats[limit === 'user' ? 'refusedPeerQuota' : 'refusedTotalShare']++;
    this.#log.info({ peerId, limit }, 'anonymous relay allocation refused');
    return limit === 'user'
      ? { code: 486, reason: `Allocation Quota Reached: ${this.#limits.perPeer} per anonymous peer` }
      : { code: 486, reason: 'Allocation Quota Reached: the anonymous share of this server is in use' };
  }

  #lease(peerId: string, now: number): RelayLease {
    const own = new TokenBucket(this.#limits.bandwidth, this.#limits.bandwidth, now);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.stats.anonymousAllocations--;
    };
    return {
      quota: { tier: 'anonymous', perUser: this.#limits.perPeer, total: this.#limits.total },
      refused: (limit) => {
        release();
        return this.#refusal(peerId, limit);
      },
      permit: (ip) => {
        const plain = plainIp(ip) ?? ip;
        const t = this.#clock();
        const kind = this.#scope.lookup(peerId, plain, t);
        if (kind === 'source' || (kind === 'relay' && this.#own.has(plain))) {
          this.#scope.add(peerId, plain, kind, t); // a relay in use (permissions refreshed) keeps its scope
          return true;
        }
        if (this.#scope.proven?.(peerId, plain, t) === true) {
          // the peer that signalled it proved it receives there (a dual-stack peer's other family)
          this.#scope.add(peerId, plain, 'source', t);
          return true;
        }
        this.stats.refusedOutOfScope++;
        this.#log.info({ peerId, peer: plain }, "anonymous relay: peer address not signalled in this peer's sessions");
        return false;
      },
      spend: (bytes, t) => {
        if (own.take(t, bytes) && (this.#shared === undefined || this.#shared.take(t, bytes))) return true;
        this.stats.droppedOverBandwidth++;
        return false;
      },
      release,
    };
  }
}

/** Whether a tier policy's answer is a refusal. */
export function isRelayRefusal(x: RelayLease | RelayRefusal | undefined): x is RelayRefusal {
  return x !== undefined && 'code' in x;
}
