/**
 * Connection governance for stream listeners (TCP and TLS): every accepted connection goes
 * through a {@link StreamGovernor}, in this order:
 *
 * 1. accept: counted at once, before any TLS byte, against a global cap and a per-source share
 *    (per IPv4 address, per /64 for IPv6; see {@link sourceKey}); refused connections are closed
 *    and counted;
 * 2. handshake deadline: a TLS connection that has not finished its handshake within
 *    `handshakeTimeoutMs` of accept is closed (Node's own `handshakeTimeout` only reports it);
 * 3. backpressure: {@link StreamLease.send} stops reading the connection while its unsent output
 *    is over `pauseBytes` and resumes on 'drain'; output over `maxQueuedBytes` closes it; relayed
 *    data (droppable, like UDP) is dropped instead of queued over `pauseBytes`;
 * 4. idle rule: a connection silent for `idleTimeoutMs` is closed unless it carries something
 *    whose own lifetime governs it (a TURN allocation, a bound RFC 6062 data connection).
 *
 * 5. shares per user: once the service attributes a connection to a user (after an
 *    authenticated request on it; {@link StreamLease.attribute}), that user may hold at most
 *    `perUser` connections; the excess one is closed;
 * 6. error answers: the one limiter of error answers on streams (`errorRate`, per source); a
 *    connection whose error answer it refuses is closed.
 *
 * Every open, close (with its cause and duration), refusal and rate limit is emitted as a
 * typed event ({@link ServerEventSink}) for the service named at construction.
 *
 * The governor holds no protocol knowledge: the service says what is droppable and what a
 * connection carries. Listeners other than STUN/TURN (rendezvous, expose) can adopt it as is.
 */
import type { Socket } from 'node:net';
import { sourceKey } from '@nat/protocol';
import { type RefusalCause, type ServerEventSink, type ServiceName, noEvents } from '../events.js';
import { type Logger, silentLogger } from '../logger.js';
import { type RateLimit, RateLimiter } from '../stun/rate-limiter.js';
import { StreamLease } from './lease.js';

export { StreamLease, type StreamHooks, type StreamOutputKind } from './lease.js';

/** Limits of a {@link StreamGovernor}; every one has a default a public volunteer server can live with. */
export interface StreamLimits {
  /** Most simultaneous connections, counted from TCP accept (TLS handshakes included). Default 10,000. */
  readonly maxConnections?: number;
  /** Most simultaneous connections from one source (an IPv4 address, an IPv6 /64). Default 256. */
  readonly maxConnectionsPerSource?: number;
  /** A TLS handshake must finish this many milliseconds after accept. Default 10,000. */
  readonly handshakeTimeoutMs?: number;
  /** A connection that carries nothing is closed after this many silent milliseconds. Default 30,000. */
  readonly idleTimeoutMs?: number;
  /** Stop reading a connection while more than this many bytes of its output are unsent. Default 65,536. */
  readonly pauseBytes?: number;
  /** Close a connection whose unsent output would exceed this many bytes. Default 1,048,576. */
  readonly maxQueuedBytes?: number;
  /**
   * Most simultaneous connections of one user (counted once a connection carried an
   * authenticated request of that user, e.g. a TURN allocation or an RFC 6062 data connection).
   * Default 128: one RFC 6062 allocation's 64 Connects and 64 incoming peer connections at their caps.
   */
  readonly perUser?: number;
  /**
   * Error answers per second per source: the one error-answer limit on streams (0 disables); a
   * connection whose error answer it refuses is closed. Default 25, bursts of 50 (below the TURN
   * core's own unauthenticated-request rate, 50/s, so that this limit is the one that acts).
   */
  readonly errorRate?: RateLimit;
}

/** Counters of a {@link StreamGovernor}: every refusal and every close it caused. */
export interface StreamGovernorStats {
  /** Connections open now (from accept, TLS handshakes included). */
  open: number;
  /** Refused at accept: the global cap was reached. */
  refusedTotal: number;
  /** Refused at accept: the source had its share. */
  refusedPerSource: number;
  /** Closed when attributed to a user who had its share. */
  refusedPerUser: number;
  /** Closed before the TLS handshake finished (out of time, failed, or the client left). */
  handshakeFailed: number;
  /** Closed: silent and carrying nothing. */
  idleClosed: number;
  /** Closed: unsent output over `maxQueuedBytes`. */
  overflowClosed: number;
  /** Times reading was paused because output was queued. */
  paused: number;
  /** Error answers not sent (and their connections closed): the source was over `errorRate`. */
  errorsRateLimited: number;
  /** Relayed packets dropped because the connection's output was queued over `pauseBytes`. */
  relayDropped: number;
}

export const DEFAULT_STREAM_LIMITS = {
  maxConnections: 10_000,
  maxConnectionsPerSource: 256,
  perUser: 128,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  pauseBytes: 64 * 1024,
  maxQueuedBytes: 1024 * 1024,
  errorRate: { perSecond: 25, burst: 50 },
} as const satisfies Required<StreamLimits>;

/** Who the governor reports to. */
export interface StreamGovernorOptions {
  readonly log?: Logger;
  /** Where connection events go. Default {@link noEvents}. */
  readonly events?: ServerEventSink;
  /** The service named in the events. Default 'stun'. */
  readonly service?: ServiceName;
}

/** Counts, limits and closes the connections of one or more stream listeners. */
export class StreamGovernor {
  readonly stats: StreamGovernorStats = {
    open: 0,
    refusedTotal: 0,
    refusedPerSource: 0,
    refusedPerUser: 0,
    handshakeFailed: 0,
    idleClosed: 0,
    overflowClosed: 0,
    paused: 0,
    errorsRateLimited: 0,
    relayDropped: 0,
  };
  readonly limits: Required<StreamLimits>;
  readonly log: Logger;
  readonly events: ServerEventSink;
  readonly service: ServiceName;
  readonly #perSource = new Map<string, number>();
  readonly #perUser = new Map<string, number>();
  readonly #errors: RateLimiter;
  readonly #leases = new Set<StreamLease>();

  /** `options` may be a logger (the older signature). */
  constructor(limits: StreamLimits = {}, options: StreamGovernorOptions | Logger = {}) {
    const o: StreamGovernorOptions = isLogger(options) ? { log: options } : options;
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...dropUndefined(limits) };
    this.log = o.log ?? silentLogger;
    this.events = o.events ?? noEvents;
    this.service = o.service ?? 'stun';
    this.#errors = new RateLimiter(this.limits.errorRate);
  }

  /**
   * A connection was accepted (call it from the listener's 'connection' event, before TLS).
   * Returns its lease, or undefined after closing it when a cap or share is reached. A TLS
   * connection (`handshake` true) is closed unless {@link StreamLease.serve} comes in time.
   */
  admit(raw: Socket, handshake: boolean): StreamLease | undefined {
    const source = sourceKey(raw.remoteAddress ?? '');
    const held = this.#perSource.get(source) ?? 0;
    const { maxConnections, maxConnectionsPerSource } = this.limits;
    if (this.stats.open >= maxConnections || held >= maxConnectionsPerSource) {
      const total = this.stats.open >= maxConnections;
      if (total) this.stats.refusedTotal++;
      else this.stats.refusedPerSource++;
      const why = total ? 'connection refused: connection cap reached' : 'connection refused: source has its share';
      this.log.debug({ source, open: this.stats.open, held }, why);
      raw.destroy();
      this.#refused(total ? 'global-cap' : 'source-share', source, undefined);
      return undefined;
    }
    this.stats.open++;
    this.#perSource.set(source, held + 1);
    const lease = new StreamLease(this, raw, source, handshake);
    this.#leases.add(lease);
    this.events({ type: 'connection-opened', service: this.service, transport: lease.transport, source });
    raw.once('close', () => this.#closed(lease));
    return lease;
  }

  #closed(lease: StreamLease): void {
    lease.release();
    this.#leases.delete(lease);
    this.stats.open--;
    const { source, user } = lease;
    const n = (this.#perSource.get(source) ?? 1) - 1;
    if (n > 0) this.#perSource.set(source, n);
    else this.#perSource.delete(source);
    if (user !== undefined) {
      const u = (this.#perUser.get(user) ?? 1) - 1;
      if (u > 0) this.#perUser.set(user, u);
      else this.#perUser.delete(user);
    }
    const durationMs = Date.now() - lease.openedAt;
    this.events({ type: 'connection-closed', service: this.service, transport: lease.transport, source, cause: lease.closeCause, durationMs });
  }

  #refused(cause: RefusalCause, source: string, user: string | undefined): void {
    this.events({ type: 'refused', service: this.service, cause, source, pool: 'connections', ...(user !== undefined ? { user } : {}) });
  }

  /** Counts `lease` against `user`'s share; false (after a refused event) when the user has it all. */
  takeUserShare(lease: StreamLease, user: string): boolean {
    const held = this.#perUser.get(user) ?? 0;
    if (held >= this.limits.perUser) {
      this.stats.refusedPerUser++;
      this.log.debug({ source: lease.source, user, held }, 'connection closed: user has its share');
      this.#refused('user-quota', lease.source, user);
      return false;
    }
    this.#perUser.set(user, held + 1);
    return true;
  }

  /** Takes one error-answer token for `source`; false (after a rate-limited event) when it has none. */
  allowError(source: string, now: number): boolean {
    if (this.#errors.allow(source, now)) return true;
    this.stats.errorsRateLimited++;
    this.events({ type: 'rate-limited', service: this.service, source, what: 'error-answers' });
    return false;
  }

  /** Connections currently held by `address`'s source. */
  heldBy(address: string): number {
    return this.#perSource.get(sourceKey(address)) ?? 0;
  }

  /** Connections currently attributed to `user`. */
  heldByUser(user: string): number {
    return this.#perUser.get(user) ?? 0;
  }

  /** Closes every connection (cause 'server-close'); resolves once each has closed and its events went out. */
  closeAll(): Promise<void> {
    const leases = [...this.#leases];
    const closed = leases.map((l) => new Promise<void>((resolve) => (l.raw.closed ? resolve() : l.raw.once('close', () => resolve()))));
    for (const lease of leases) lease.close('server-close');
    return Promise.all(closed).then(() => undefined);
  }
}

function isLogger(o: StreamGovernorOptions | Logger): o is Logger {
  return typeof (o as Logger).info === 'function';
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
