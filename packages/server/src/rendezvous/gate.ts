import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';

/** The limits the gate enforces (from {@link RendezvousLimits}). */
export interface GateLimits {
  readonly maxPendingPerSource: number;
  readonly handshakeTimeoutMs: number;
}

/** The gate's own counters (the connection pool's are its StreamGovernor's). */
export interface GateCounters {
  pendingRefused: number;
  handshakeTimeouts: number;
}

/** The node:http server options that close a connection which has not sent its request in time. */
export function handshakeServerOptions(limits: GateLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const ms = limits.handshakeTimeoutMs;
  return { headersTimeout: ms, requestTimeout: ms, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(ms / 4))) };
}

const GATE = Symbol('rendezvous gate');

/** Whether an `upgrade` listener is the gate's own (it answers nothing: other handlers decide). */
export function isGateListener(listener: unknown): boolean {
  return typeof listener === 'function' && GATE in listener;
}

/** What {@link PendingGate.admit} is told about one admitted connection. */
export interface PendingGate {
  /** A connection the governor admitted: false (after closing it) when its source holds `maxPendingPerSource` pending ones. */
  admit(socket: Socket, source: string): boolean;
  /** Whether `socket` was upgraded (its service governs its lifetime from then on). */
  upgraded(socket: Socket): boolean;
  readonly counters: GateCounters;
}

/**
 * What the rendezvous HTTP server adds to its StreamGovernor (which counts every connection, caps
 * them and holds each source to its share): at most `maxPendingPerSource` connections from one
 * source (IPv6: one /64) that have not sent their request yet, and a whole request within
 * `handshakeTimeoutMs` of the accept (node:http's own timer, via {@link handshakeServerOptions}),
 * answered 408. Upgraded connections leave the pending count: the services they reach keep their
 * own pools.
 */
export function gatePending(http: HttpServer, limits: GateLimits, log: Logger, events: ServerEventSink): PendingGate {
  const counters: GateCounters = { pendingRefused: 0, handshakeTimeouts: 0 };
  const pending = new Map<string, number>();
  const pendingOf = new WeakMap<Socket, string>();
  const upgraded = new WeakSet<Socket>();
  const settle = (socket: Socket): void => {
    const key = pendingOf.get(socket);
    if (key === undefined) return;
    pendingOf.delete(socket);
    const left = (pending.get(key) ?? 1) - 1;
    if (left <= 0) pending.delete(key);
    else pending.set(key, left);
  };
  const onUpgrade = Object.assign(
    (req: { socket: Socket }) => {
      upgraded.add(req.socket);
      settle(req.socket);
    },
    { [GATE]: true },
  );
  http.prependListener('upgrade', onUpgrade);
  http.prependListener('request', (req: { socket: Socket }) => settle(req.socket));
  http.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    if (socket.destroyed) return; // closed already (by the governor's silence rule in the same round)
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      counters.handshakeTimeouts++;
      log.debug({ remote: socket.remoteAddress }, 'rendezvous: no request within the handshake timeout; closing');
    }
    if (socket.writable && error.code !== 'ECONNRESET')
      socket.end(
        `HTTP/1.1 ${error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
    socket.destroy();
  });
  return {
    counters,
    upgraded: (socket) => upgraded.has(socket),
    admit(socket, source) {
      const n = pending.get(source) ?? 0;
      if (n >= limits.maxPendingPerSource) {
        counters.pendingRefused++;
        log.debug({ source, pending: n }, 'rendezvous: connection refused at accept (its source has its share of pending connections)');
        events({ type: 'refused', service: 'rendezvous', cause: 'source-share', source, pool: 'pending-connections' });
        socket.destroy();
        return false;
      }
      pending.set(source, n + 1);
      pendingOf.set(socket, source);
      socket.once('close', () => settle(socket));
      return true;
    },
  };
}
