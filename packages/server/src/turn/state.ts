import { type AddressFamily, type AttributeEntry, type StunMessage, type TransportAddress, sourceKey } from '@nat/protocol';
import { type RefusalCause, type ServerEventSink, noEvents } from '../events.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { RateLimiter } from '../stun/rate-limiter.js';
import type { Allocation, ClientEndpoint } from './allocation.js';
import type { TurnAuthenticator } from './auth.js';
import { NonceIssuer } from './nonce.js';
import type { AlternateServerOf, TurnCoreInit, TurnOutput, TurnStats } from './options.js';
import { PeerPolicy } from './peer-policy.js';
import { TurnQuotas } from './quota.js';
import { type TcpOrigin, TcpPeerLimits } from './tcp-limits.js';
import type { RelayLease, RelayTierPolicy } from './tiers.js';

/** The long-term credential a request was authenticated with (RFC 8489 section 9.2). */
export interface TurnAuth {
  readonly key: Uint8Array;
  readonly mac: 'sha1' | 'sha256';
  readonly username: string;
}

/** One authenticated request, as the method handlers get it (pion/turn's `Request`). */
export interface TurnRequest {
  readonly m: StunMessage;
  readonly endpoint: ClientEndpoint;
  readonly auth: TurnAuth;
  readonly now: number;
}

/** A TCP connection between the relay and a peer (RFC 6062). */
export interface TcpConnection {
  readonly id: number;
  readonly allocation: number;
  readonly peer: TransportAddress;
  state: 'connecting' | 'pending-bind' | 'bound';
  readonly origin: TcpOrigin;
  /** The Connect request to answer when the connection is up. */
  connect?: StunMessage;
  expiresAt: number;
}

/** An Allocate waiting for its relay socket(s). */
export interface PendingAllocate {
  readonly request: StunMessage;
  readonly lifetime: number;
  readonly token: Uint8Array | undefined;
  readonly familyError: AddressFamily | undefined;
}

/** Most sources whose last `rate-limited` event is remembered (one event per source and second). */
const RATE_LIMITED_SOURCES = 10_000;

/**
 * What the method handlers share: the resolved options, the policies (auth, peers, quotas, tiers,
 * rate limit), the allocation tables, the output queue and the event sink. Sans I/O.
 */
export class TurnState {
  readonly realm: string;
  readonly auth: TurnAuthenticator;
  readonly families: readonly AddressFamily[];
  readonly policy: PeerPolicy;
  readonly defaultLifetime: number;
  readonly maxLifetime: number;
  readonly quotas: TurnQuotas;
  readonly tcpLimits: TcpPeerLimits;
  readonly maxPermissions: number;
  readonly maxChannels: number;
  readonly bandwidth: number;
  readonly alternate: TransportAddress | AlternateServerOf | undefined;
  readonly software: string | undefined;
  readonly legacyChannels: boolean;
  readonly tcpRelay: boolean;
  readonly nonces: NonceIssuer;
  readonly limiter: RateLimiter;
  readonly log: Logger;
  readonly emit: ServerEventSink;
  readonly tiers: RelayTierPolicy | undefined;
  readonly stats: TurnStats = {
    allocations: 0,
    allocationsCreated: 0,
    unauthorized: 0,
    forbidden: 0,
    quotaRejected: 0,
    tcpRefused: 0,
    rateLimited: 0,
    relayedToPeer: 0,
    relayedToClient: 0,
    dropped: 0,
  };
  readonly byEndpoint = new Map<string, Allocation>();
  readonly byId = new Map<number, Allocation>();
  readonly leases = new Map<number, RelayLease>();
  readonly pending = new Map<number, PendingAllocate>();
  readonly tcp = new Map<number, TcpConnection>();
  readonly #rateLimitedAt = new Map<string, number>();
  nextId = 1;
  /** The time of the message being handled (for the error answers' rate limit). */
  now = 0;
  out: TurnOutput[] = [];

  constructor(init: TurnCoreInit) {
    this.realm = init.realm;
    this.auth = init.auth;
    this.families = init.relayFamilies ?? ['IPv4'];
    this.policy = new PeerPolicy(init.peers);
    this.defaultLifetime = init.defaultLifetime ?? 600;
    this.maxLifetime = init.maxLifetime ?? 3600;
    this.quotas = new TurnQuotas({ userQuota: init.userQuota ?? 10, sourceQuota: init.sourceQuota ?? 64, totalQuota: init.totalQuota ?? 10_000 });
    this.tcpLimits = new TcpPeerLimits({
      connectsPerAllocation: init.tcpConnectsPerAllocation ?? 64,
      incomingPerAllocation: init.tcpIncomingPerAllocation ?? 64,
    });
    this.maxPermissions = init.maxPermissions ?? 100;
    this.maxChannels = init.maxChannels ?? 100;
    this.bandwidth = init.bandwidth ?? 0;
    this.alternate = init.alternateServer;
    this.software = init.software;
    this.legacyChannels = init.strictChannelNumbers !== true;
    this.tcpRelay = init.tcpRelay !== false;
    this.nonces = new NonceIssuer({ lifetimeMs: init.nonceLifetimeMs ?? 600_000, ...(init.nonceSecret ? { secret: init.nonceSecret } : {}) });
    this.limiter = new RateLimiter({ perSecond: init.unauthenticatedRate ?? 50 });
    this.log = init.logger ?? silentLogger;
    this.emit = init.events ?? noEvents;
    this.tiers = init.tiers;
  }

  /**
   * May an unauthenticated answer go to this client? Rate limited per source (an IPv4 address or
   * an IPv6 /64: one host cannot dodge it with more addresses of its prefix). Counts and emits
   * what it holds back (one `rate-limited` event per source and second at most).
   */
  allowUnauthenticated(endpoint: ClientEndpoint): boolean {
    const source = sourceKey(endpoint.client.address);
    if (this.limiter.allow(source, this.now)) return true;
    this.stats.rateLimited++;
    const last = this.#rateLimitedAt.get(source);
    if (last === undefined ? this.#rateLimitedAt.size < RATE_LIMITED_SOURCES : this.now - last >= 1000) {
      this.#rateLimitedAt.set(source, this.now);
      this.emit({ type: 'rate-limited', service: 'turn', source, what: 'error-answers' });
    }
    return false;
  }

  /** Forgets the rate-limit events older than a second. */
  sweepRateLimited(now: number): void {
    for (const [source, at] of this.#rateLimitedAt) if (now - at >= 1000) this.#rateLimitedAt.delete(source);
  }

  /** Emits a `refused` event of the TURN service. */
  refused(cause: RefusalCause, pool: string, endpoint: ClientEndpoint, user?: string): void {
    this.emit({ type: 'refused', service: 'turn', cause, pool, source: sourceKey(endpoint.client.address), ...(user !== undefined ? { user } : {}) });
  }

  /** The allocation of a request's 5-tuple, made by the same user (RFC 8656 section 7.3 and on: 437, 441). */
  allocationFor(req: TurnRequest): Allocation {
    const a = this.byEndpoint.get(req.endpoint.key);
    if (a === undefined) throw new Reject(437);
    if (a.username !== req.auth.username) throw new Reject(441);
    return a;
  }
}

/** Why a refusal happened, for the `refused` event the dispatcher emits with the error answer. */
export interface RejectEvent {
  readonly cause: RefusalCause;
  readonly pool: string;
}

/** A request refused with a STUN error (thrown by the method handlers, answered by the dispatcher). */
export class Reject {
  constructor(
    readonly code: number,
    readonly reason?: string,
    readonly extra: AttributeEntry[] = [],
    readonly event?: RejectEvent,
  ) {}
}
