/**
 * The UDP sockets of an ICE connection's host candidates are udx-native sockets of the process's
 * one udx instance, so that a peer link's udx streams can run on the very socket (and so the very
 * NAT binding) a direct pair uses: libudx takes the packets of its streams itself, and hands every
 * other datagram (STUN, the connection's frames) to the `message` listener here.
 */
import { type UdxSocket, bindUdxSocket, udx } from '../link/native.js';

/** What the connection needs of a UDP socket: node:dgram's `Socket` is one too (punching's extra sockets). */
export interface DatagramSocket {
  /** Sends one datagram; errors (unreachable routes) are not reported. */
  send(bytes: Uint8Array, port: number, address: string): void;
  close(): unknown;
}

/** A host candidate's socket: a udx-native socket with node:dgram's calling convention. */
export class UdxHostSocket implements DatagramSocket {
  /** The udx-native socket (for a peer link's streams). */
  readonly udx: UdxSocket;
  readonly port: number;

  /** Binds to `ip` (port 0); throws when the address cannot be bound. */
  constructor(ip: string, onMessage: (message: Buffer, fromIp: string, fromPort: number) => void) {
    const socket = bindUdxSocket(udx(), ip);
    socket.on('message', (message, from) => onMessage(message, from.host, from.port));
    this.udx = socket;
    this.port = socket.address().port;
  }

  send(bytes: Uint8Array, port: number, address: string): void {
    try {
      this.udx.trySend(bytes, port, address);
    } catch {
      // an address udx cannot parse (a scoped IPv6 address): as node:dgram's asynchronous error, dropped
    }
  }

  /** Closes the socket once no udx stream is on it any more. */
  close(): void {
    void this.udx.close().catch(() => {});
  }
}
