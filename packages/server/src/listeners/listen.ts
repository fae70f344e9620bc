import type { Server as NetServer, Socket } from 'node:net';
import { type Server as TlsServer, type TLSSocket, createServer as createTlsServer } from 'node:tls';
import type { TlsCredentials } from '../tls/credentials.js';
import type { StreamGovernor, StreamLease } from './stream.js';

/** What a governed listener hands its service: the socket to serve and its lease. */
export type GovernedConnection = (socket: Socket, lease: StreamLease) => void;

/** Routes a TCP server's connections through `governor` (counted and capped at accept). */
export function governTcpServer(server: NetServer, governor: StreamGovernor, serve: GovernedConnection): void {
  server.on('connection', (raw: Socket) => {
    const lease = governor.admit(raw, false);
    if (lease !== undefined) serve(raw, lease);
  });
}

/**
 * A TLS server whose connections go through `governor` from TCP accept: counted and capped
 * before the handshake, closed when the handshake does not finish within the governor's
 * `handshakeTimeoutMs` or fails (Node 20's own `handshakeTimeout` only emits 'tlsClientError').
 */
export function createGovernedTlsServer(credentials: TlsCredentials, governor: StreamGovernor, serve: GovernedConnection): TlsServer {
  // The TLS socket wraps the raw one; both report the same remote address and port.
  const pending = new Map<string, StreamLease>();
  const options = { cert: credentials.cert, key: credentials.key, handshakeTimeout: governor.limits.handshakeTimeoutMs };
  const server = createTlsServer(options, (socket: TLSSocket) => {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const lease = pending.get(key);
    pending.delete(key);
    if (lease === undefined || lease.raw.destroyed) return void socket.destroy();
    serve(socket, lease);
  });
  // Registered after tls.Server's own listener: the raw socket is already wrapped; closing it closes both.
  server.on('connection', (raw: Socket) => {
    const lease = governor.admit(raw, true);
    if (lease === undefined) return;
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    pending.set(key, lease);
    raw.once('close', () => {
      if (pending.get(key) === lease) pending.delete(key);
    });
  });
  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: TLSSocket) => {
    const lease = pending.get(`${socket.remoteAddress}|${socket.remotePort}`);
    if (lease === undefined) return void socket.destroy();
    lease.close(e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'protocol-error');
  });
  return server;
}
