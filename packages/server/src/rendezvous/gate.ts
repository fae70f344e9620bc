import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../logger.js';
import { sourceKey } from './names.js';
import type { RendezvousGateStats } from './stats.js';

/** The limits the gate enforces (from {@link RendezvousLimits}). */
export interface GateLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerSource: number;
  readonly handshakeTimeoutMs: number;
}

/** The node:http server options that close a connection which has not sent its request in time. */
export function handshakeServerOptions(limits: GateLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const ms = limits.handshakeTimeoutMs;
  return { headersTimeout: ms, requestTimeout: ms, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(ms / 4))) };
}

/**
 * The rendezvous HTTP server's admission of TCP connections: at most twice `maxConnections` at
 * once (upgraded or not: the WebSocket count, `maxConnections`, is checked at upgrade and
 * answered 1013; the headroom is for connections still in their handshake), at most
 * `maxConnectionsPerSource` from one address (IPv6: one /64), and a request (the upgrade) within
 * `handshakeTimeoutMs` of the accept (node:http's own timer, via {@link handshakeServerOptions}):
 * a connection that sends nothing is closed then, not after 90 s.
 */
export function gateConnections(http: HttpServer, limits: GateLimits, log: Logger): () => RendezvousGateStats {
  const stats: RendezvousGateStats = { tcpConnections: 0, refusedSourceShare: 0, refusedTcpConnections: 0, handshakeTimeouts: 0 };
  const perSource = new Map<string, number>();
  http.on('connection', (socket: Socket) => {
    const key = sourceKey(socket.remoteAddress ?? '?');
    const n = perSource.get(key) ?? 0;
    if (stats.tcpConnections >= 2 * limits.maxConnections || n >= limits.maxConnectionsPerSource) {
      if (n >= limits.maxConnectionsPerSource) stats.refusedSourceShare++;
      else stats.refusedTcpConnections++;
      log.debug({ source: key, open: n }, 'rendezvous: connection refused at accept (share of its source or the cap)');
      socket.destroy();
      return;
    }
    perSource.set(key, n + 1);
    stats.tcpConnections++;
    socket.once('close', () => {
      stats.tcpConnections--;
      const left = (perSource.get(key) ?? 1) - 1;
      if (left <= 0) perSource.delete(key);
      else perSource.set(key, left);
    });
  });
  http.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      stats.handshakeTimeouts++;
      log.debug({ remote: socket.remoteAddress }, 'rendezvous: no request within the handshake timeout; closing');
    }
    if (socket.writable && error.code !== 'ECONNRESET') socket.end(`HTTP/1.1 ${error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  return () => ({ ...stats });
}
