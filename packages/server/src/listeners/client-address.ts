/**
 * The client's address of a connection that came through a load balancer: the PROXY header's
 * source replaces the socket's own remote address, on the socket itself (`remoteAddress`,
 * `remotePort`, `remoteFamily`), so that every service reads the real client (TURN's
 * XOR-MAPPED-ADDRESS, the governor's per-source shares, rate limits, logs and events) without
 * knowing a balancer was there. The socket's real peer stays known for matching a raw socket
 * with the TLS socket that wraps it ({@link peerKey}).
 */
import type { Socket } from 'node:net';
import type { TransportAddress } from '@nat/protocol';

const adopted = new WeakMap<Socket, { readonly client: TransportAddress; readonly peerKey: string }>();

/** The socket's real peer as `address|port` (the balancer's, for an adopted socket). */
export function peerKey(socket: Socket): string {
  return adopted.get(socket)?.peerKey ?? `${socket.remoteAddress}|${socket.remotePort}`;
}

/** Makes `client` the socket's remote address from now on. */
export function adoptClientAddress(socket: Socket, client: TransportAddress): void {
  const key = peerKey(socket);
  Object.defineProperties(socket, {
    remoteAddress: { value: client.address, configurable: true },
    remotePort: { value: client.port, configurable: true },
    remoteFamily: { value: client.family, configurable: true },
  });
  adopted.set(socket, { client, peerKey: key });
}

/** Gives `to` (a TLS socket wrapping `from`) the client address `from` adopted, if any. */
export function inheritClientAddress(from: Socket, to: Socket): void {
  const a = adopted.get(from);
  if (a !== undefined && to !== from) adoptClientAddress(to, a.client);
}
