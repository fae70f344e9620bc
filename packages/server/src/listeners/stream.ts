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
 * Error answers (STUN error responses) are rate limited per source, as on UDP.
 *
 * The governor holds no protocol knowledge: the service says what is droppable and what a
 * connection carries. Listeners other than STUN/TURN (rendezvous, expose) can adopt it as is.
 */
import type { Socket } from 'node:net';
import { sourceKey } from '@nat/protocol';
import { type Logger, silentLogger } from '../logger.js';
import { type RateLimit, RateLimiter } from '../stun/rate-limiter.js';

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
  /** Error answers per second per source (0 disables). Default 50, bursts of 100. */
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
  /** Closed before the TLS handshake finished (out of time, failed, or the client left). */
  handshakeFailed: number;
  /** Closed: silent and carrying nothing. */
  idleClosed: number;
  /** Closed: unsent output over `maxQueuedBytes`. */
  overflowClosed: number;
  /** Times reading was paused because output was queued. */
  paused: number;
  /** Error answers not sent: the source was over `errorRate`. */
  errorsRateLimited: number;
  /** Relayed packets dropped because the connection's output was queued over `pauseBytes`. */
  relayDropped: number;
}

export const DEFAULT_STREAM_LIMITS = {
  maxConnections: 10_000,
  maxConnectionsPerSource: 256,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  pauseBytes: 64 * 1024,
  maxQueuedBytes: 1024 * 1024,
  errorRate: { perSecond: 50, burst: 100 },
} as const satisfies Required<StreamLimits>;

/** What a service tells the governor about one connection. */
export interface StreamHooks {
  /** True while the connection carries something whose own lifetime governs it (no idle cut). */
  carries(): boolean;
  /** Reading resumed after a pause: process what was held back. */
  resumed(): void;
}

/** Counts, limits and closes the connections of one or more stream listeners. */
export class StreamGovernor {
  readonly stats: StreamGovernorStats = {
    open: 0,
    refusedTotal: 0,
    refusedPerSource: 0,
    handshakeFailed: 0,
    idleClosed: 0,
    overflowClosed: 0,
    paused: 0,
    errorsRateLimited: 0,
    relayDropped: 0,
  };
  readonly limits: Required<StreamLimits>;
  readonly log: Logger;
  readonly #perSource = new Map<string, number>();
  readonly #errors: RateLimiter;
  readonly #leases = new Set<StreamLease>();

  constructor(limits: StreamLimits = {}, log: Logger = silentLogger) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...dropUndefined(limits) };
    this.log = log;
    this.#errors = new RateLimiter(this.limits.errorRate);
  }

  /**
   * A connection was accepted (call it from the listener's 'connection' event, before TLS).
   * Returns its lease, or undefined after closing it when a cap or share is reached. A TLS
   * connection (`handshake` true) is closed unless {@link StreamLease.secured} comes in time.
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
      return undefined;
    }
    this.stats.open++;
    this.#perSource.set(source, held + 1);
    const lease = new StreamLease(this, raw, source, handshake);
    this.#leases.add(lease);
    raw.once('close', () => {
      lease.release();
      this.#leases.delete(lease);
      this.stats.open--;
      const n = (this.#perSource.get(source) ?? 1) - 1;
      if (n > 0) this.#perSource.set(source, n);
      else this.#perSource.delete(source);
    });
    return lease;
  }

  /** Takes one error-answer token for `source`. */
  allowError(source: string, now: number): boolean {
    if (this.#errors.allow(source, now)) return true;
    this.stats.errorsRateLimited++;
    return false;
  }

  /** Connections currently held by `address`'s source. */
  heldBy(address: string): number {
    return this.#perSource.get(sourceKey(address)) ?? 0;
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const lease of this.#leases) lease.raw.destroy();
  }
}

/** One governed connection: from accept to close. */
export class StreamLease {
  readonly source: string;
  readonly raw: Socket;
  #socket: Socket | undefined;
  #paused = false;
  #handshakeTimer: NodeJS.Timeout | undefined;
  readonly #gov: StreamGovernor;

  constructor(gov: StreamGovernor, raw: Socket, source: string, handshake: boolean) {
    this.#gov = gov;
    this.raw = raw;
    this.source = source;
    if (handshake) {
      this.#handshakeTimer = setTimeout(() => this.#handshakeTimeout(), gov.limits.handshakeTimeoutMs);
      this.#handshakeTimer.unref();
    }
  }

  /** True while reading is paused for queued output: the service stops processing frames. */
  get paused(): boolean {
    return this.#paused;
  }

  /** The TLS handshake did not finish in time: close the connection (counted when it closes). */
  #handshakeTimeout(): void {
    this.#gov.log.debug({ source: this.source, timeoutMs: this.#gov.limits.handshakeTimeoutMs }, 'connection closed: TLS handshake not finished in time');
    this.raw.destroy();
  }

  /**
   * The connection is ready for the service: `socket` is the raw socket (TCP) or the TLS socket
   * once its handshake finished. Arms the idle rule and the backpressure resume.
   */
  serve(socket: Socket, hooks: StreamHooks): void {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#socket = socket;
    const idle = this.#gov.limits.idleTimeoutMs;
    socket.setTimeout(idle, () => {
      if (hooks.carries()) {
        socket.setTimeout(idle); // re-armed: checked again after the next silent period
        return;
      }
      this.#gov.stats.idleClosed++;
      this.#gov.log.debug({ source: this.source, idleMs: idle }, 'connection closed: idle');
      socket.destroy();
    });
    socket.on('drain', () => {
      if (!this.#paused) return;
      this.#paused = false;
      hooks.resumed();
      if (!this.#paused && !socket.destroyed) socket.resume();
    });
  }

  /**
   * Sends bytes with backpressure. `droppable` bytes (relayed data) are dropped rather than
   * queued over `pauseBytes`; `error` answers are rate limited per source.
   */
  send(bytes: Uint8Array, kind: 'answer' | 'error' | 'droppable'): void {
    const socket = this.#socket;
    if (socket === undefined || socket.destroyed) return;
    const { pauseBytes, maxQueuedBytes } = this.#gov.limits;
    const queued = socket.writableLength;
    if (kind === 'droppable' && queued >= pauseBytes) return void this.#gov.stats.relayDropped++;
    if (kind === 'error' && !this.#gov.allowError(this.source, Date.now())) return;
    if (queued + bytes.length > maxQueuedBytes) {
      this.#gov.stats.overflowClosed++;
      this.#gov.log.info({ source: this.source, queued }, 'connection closed: output not read by the client');
      socket.destroy();
      return;
    }
    socket.write(bytes);
    if (!this.#paused && socket.writableLength > pauseBytes) {
      this.#paused = true;
      this.#gov.stats.paused++;
      socket.pause();
    }
  }

  /** Called once the raw socket closed; a TLS connection closed before its handshake finished is counted. */
  release(): void {
    if (this.#handshakeTimer === undefined) return;
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#gov.stats.handshakeFailed++;
  }
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
