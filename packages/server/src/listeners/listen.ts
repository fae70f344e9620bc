import { type Server as NetServer, type Socket, createServer as createNetServer } from 'node:net';
import { type Server as TlsServer, type TLSSocket, createServer as createTlsServer } from 'node:tls';
import type { TlsCredentials } from '../tls/credentials.js';
import { inheritClientAddress, peerKey } from './client-address.js';
import type { ProxyFront } from './proxy-front.js';
import type { StreamGovernor, StreamLease } from './stream.js';

/** What a governed listener hands its service: the socket to serve and its lease. */
export type GovernedConnection = (socket: Socket, lease: StreamLease) => void;

/**
 * Routes a TCP server's connections through `governor` (counted and capped at accept), after
 * their PROXY header when `front` expects one from their source.
 */
export function governTcpServer(server: NetServer, governor: StreamGovernor, serve: GovernedConnection, front?: ProxyFront): void {
  const admit = (raw: Socket): void => {
    const lease = governor.admit(raw, false);
    if (lease !== undefined) serve(raw, lease);
  };
  server.on('connection', (raw: Socket) => (front === undefined ? admit(raw) : front.accept(raw, admit, true)));
}

/** A plain listener whose connections go to `tls` once `front` read their PROXY header (when their source owes one). */
export function proxiedTlsListener(tls: TlsServer, front: ProxyFront): NetServer {
  return createNetServer((raw: Socket) => front.accept(raw, (r) => void tls.emit('connection', r), false));
}

/**
 * A TLS server whose connections go through `governor` from TCP accept: counted and capped
 * before the handshake, closed when the handshake does not finish within the governor's
 * `handshakeTimeoutMs` or fails (Node 20's own `handshakeTimeout` only emits 'tlsClientError').
 */
export function createGovernedTlsServer(credentials: TlsCredentials, governor: StreamGovernor, serve: GovernedConnection, alpn?: readonly string[]): TlsServer {
  // The TLS socket wraps the raw one; both have the same real peer (see peerKey).
  const pending = new Map<string, StreamLease>();
  const options = {
    cert: credentials.cert,
    key: credentials.key,
    handshakeTimeout: governor.limits.handshakeTimeoutMs,
    ...(alpn ? { ALPNProtocols: [...alpn] } : {}),
  };
  const server = createTlsServer(options, (socket: TLSSocket) => {
    const key = peerKey(socket);
    const lease = pending.get(key);
    pending.delete(key);
    if (lease === undefined || lease.raw.destroyed) return void socket.destroy();
    inheritClientAddress(lease.raw, socket);
    serve(socket, lease);
  });
  // Registered after tls.Server's own listener: the raw socket is already wrapped; closing it closes both.
  server.on('connection', (raw: Socket) => {
    const lease = governor.admit(raw, true);
    if (lease === undefined) return;
    const key = peerKey(raw);
    pending.set(key, lease);
    raw.once('close', () => {
      if (pending.get(key) === lease) pending.delete(key);
    });
  });
  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: TLSSocket) => {
    const lease = pending.get(peerKey(socket));
    if (lease === undefined) return void socket.destroy();
    lease.close(e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'protocol-error');
  });
  return server;
}
