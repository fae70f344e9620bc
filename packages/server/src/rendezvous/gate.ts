import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { sourceKey } from '@nat/protocol';
import type { Logger } from '../logger.js';
import type { RendezvousGateStats } from './stats.js';

/** The limits the gate enforces (from {@link RendezvousLimits}). */
export interface GateLimits {
  readonly maxConnections: number;
  readonly maxPendingPerSource: number;
  readonly handshakeTimeoutMs: number;
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

/**
 * The rendezvous HTTP server's admission of TCP connections, before any handler sees them: at
 * most twice `maxConnections` at once (the WebSocket count, `maxConnections`, is checked at
 * upgrade and answered 1013; the headroom is for handshakes), at most `maxPendingPerSource`
 * connections from one address (IPv6: one /64) that have not sent their request yet, and a
 * request within `handshakeTimeoutMs` of the accept (node:http's own timer, via
 * {@link handshakeServerOptions}): a connection that sends nothing is closed then, not after 90 s.
 * Upgraded connections leave the pending count: the services they reach keep their own shares.
 */
export function gateConnections(http: HttpServer, limits: GateLimits, log: Logger): () => RendezvousGateStats {
  const stats: RendezvousGateStats = { tcpConnections: 0, pendingRefused: 0, refusedTcpConnections: 0, handshakeTimeouts: 0 };
  const pending = new Map<string, number>();
  const pendingOf = new WeakMap<Socket, string>();
  const settle = (socket: Socket): void => {
    const key = pendingOf.get(socket);
    if (key === undefined) return;
    pendingOf.delete(socket);
    const left = (pending.get(key) ?? 1) - 1;
    if (left <= 0) pending.delete(key);
    else pending.set(key, left);
  };
  http.on('connection', (socket: Socket) => {
    const key = sourceKey(socket.remoteAddress ?? '?');
    const n = pending.get(key) ?? 0;
    if (stats.tcpConnections >= 2 * limits.maxConnections || n >= limits.maxPendingPerSource) {
      if (n >= limits.maxPendingPerSource) stats.pendingRefused++;
      else stats.refusedTcpConnections++;
      log.debug({ source: key, pending: n }, 'rendezvous: connection refused at accept (pending share of its source, or the cap)');
      socket.destroy();
      return;
    }
    pending.set(key, n + 1);
    pendingOf.set(socket, key);
    stats.tcpConnections++;
    socket.once('close', () => {
      stats.tcpConnections--;
      settle(socket);
    });
  });
  const onUpgrade = Object.assign((req: { socket: Socket }) => settle(req.socket), { [GATE]: true });
  http.prependListener('upgrade', onUpgrade);
  http.prependListener('request', (req: { socket: Socket }) => settle(req.socket));
  http.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      stats.handshakeTimeouts++;
      log.debug({ remote: socket.remoteAddress }, 'rendezvous: no request within the handshake timeout; closing');
    }
    if (socket.writable && error.code !== 'ECONNRESET')
      socket.end(
        `HTTP/1.1 ${error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
    socket.destroy();
  });
  return () => ({ ...stats });
}
