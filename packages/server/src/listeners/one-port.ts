/**
 * One TLS port for several services (issue 17 item 5: networks that pass only TCP 443): after
 * the handshake, a connection goes to TURN/STUN or to the HTTP server of the WebSocket services
 * (the rendezvous, and the expose control connection on its path), chosen by the ALPN protocol
 * the client asked for ("stun.turn" and "stun.nat-discovery", RFC 7443; "http/1.1"), else by its first bytes
 * ({@link classifyStreamStart}). Until the first bytes decide, the connection is still under
 * its lease's handshake deadline.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { STREAM_START_BYTES, classifyStreamStart } from '@nat/protocol';
import type { GovernedConnection } from './listen.js';
import type { StreamLease } from './stream.js';

/** The ALPN protocols a shared TLS port offers, in the server's order of preference. */
export const ONE_PORT_ALPN = ['stun.turn', 'stun.nat-discovery', 'http/1.1'] as const;

/** Where {@link routeOnePort} sends a connection. */
export interface OnePortRoutes {
  readonly stun: GovernedConnection;
  /** The HTTP service sharing the port, when one does (else HTTP connections are closed). */
  http(): GovernedConnection | undefined;
}

/** Routes one TLS connection whose handshake finished (see the module text). */
export function routeOnePort(routes: OnePortRoutes, socket: TLSSocket, lease: StreamLease): void {
  const alpn = socket.alpnProtocol;
  if (alpn === 'stun.turn' || alpn === 'stun.nat-discovery') return routes.stun(socket, lease);
  if (alpn === 'http/1.1') return toHttp(routes, socket, lease);
  socket.on('error', () => socket.destroy()); // recorded by the lease; the close ends it
  let held: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const kind = classifyStreamStart(held.subarray(0, STREAM_START_BYTES));
    if (kind === 'need-more') return;
    socket.off('data', onData);
    socket.pause();
    socket.unshift(held);
    if (kind === 'stun') routes.stun(socket, lease);
    else if (kind === 'http') toHttp(routes, socket, lease);
    else return lease.close('protocol-error');
    if (!socket.destroyed) process.nextTick(() => socket.resume());
  };
  socket.on('data', onData);
}

function toHttp(routes: OnePortRoutes, socket: Socket, lease: StreamLease): void {
  const http = routes.http();
  if (http === undefined) return lease.close('protocol-error');
  http(socket, lease);
}
