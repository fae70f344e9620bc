/**
 * RFC 6062 peer connections of the TURN driver: the TCP connections the relay opens toward
 * peers (Connect) or accepts from them (on a TCP allocation's relay port), and their joining
 * with a client's data connection into one raw pipe (ConnectionBind).
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import type { AddressFamily, TransportAddress } from '@nat/protocol';
import type { TurnCore } from '../turn/core.js';
import { quotaUser } from '../turn/quota.js';

/** A client's data connection as the driver sees it (the stream service owns it). */
export interface DataConnection {
  readonly socket: Socket;
  /** Set once the connection is a raw pipe to a peer: the stream service stops framing it. */
  raw: boolean;
  /** Bytes the client sent after ConnectionBind that the framer already read: they go to the peer. */
  takeBuffered(): Uint8Array;
  /** Counts the connection against `user`'s share; false when it was closed for being over it. */
  attribute(user: string): boolean;
}

interface PeerConnection {
  readonly socket: Socket;
  readonly allocation: number;
  data?: Socket;
}

/** Milliseconds a Connect toward a peer may take. */
const CONNECT_TIMEOUT_MS = 30_000;

/** The RFC 6062 peer connections of one TURN core. */
export class TcpPeers {
  readonly #core: TurnCore;
  readonly #relayIps: ReadonlyMap<AddressFamily, string>;
  readonly #flush: () => void;
  readonly #peers = new Map<number, PeerConnection>();

  constructor(core: TurnCore, relayIps: ReadonlyMap<AddressFamily, string>, flush: () => void) {
    this.#core = core;
    this.#relayIps = relayIps;
    this.#flush = flush;
  }

  /** Connects to a peer for a Connect request (RFC 6062 section 5.2); the core learns how it went. */
  connect(allocation: number, connectionId: number, peer: TransportAddress): void {
    const socket = tcpConnect({ host: peer.address, port: peer.port, localAddress: this.#relayIps.get(peer.family) });
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error('timeout')));
    socket.once('connect', () => {
      socket.setTimeout(0);
      this.#track(connectionId, allocation, socket);
      this.#core.tcpConnected(connectionId, Date.now());
      this.#flush();
    });
    socket.once('error', () => {
      if (!this.#peers.has(connectionId)) {
        this.#core.tcpConnectFailed(connectionId);
        this.#flush();
      }
    });
  }

  /** A peer connected to a TCP allocation's relay port (RFC 6062 section 5.3). */
  incoming(allocation: number, socket: Socket): void {
    const peer: TransportAddress = {
      family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
    };
    const connectionId = this.#core.tcpIncoming(allocation, peer, Date.now());
    if (connectionId === undefined) return void socket.destroy();
    this.#track(connectionId, allocation, socket);
    this.#flush();
  }

  #track(id: number, allocation: number, socket: Socket): void {
    socket.pause();
    this.#peers.set(id, { socket, allocation });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      const entry = this.#peers.get(id);
      this.#peers.delete(id);
      entry?.data?.destroy();
      this.#core.tcpClosed(id);
    });
  }

  /**
   * Joins a client's data connection and a peer connection into one raw pipe (RFC 6062 section
   * 5.4). The data connection is counted against the allocation's user first.
   */
  bind(connectionId: number, data: DataConnection | undefined): void {
    const peer = this.#peers.get(connectionId);
    if (!peer || !data) {
      data?.socket.destroy();
      peer?.socket.destroy();
      return;
    }
    const username = this.#core.allocation(peer.allocation)?.username;
    if (username !== undefined && !data.attribute(quotaUser(username))) return void peer.socket.destroy();
    data.raw = true;
    peer.data = data.socket;
    const rest = data.takeBuffered();
    if (rest.length > 0) peer.socket.write(rest);
    data.socket.removeAllListeners('data');
    pipe(data.socket, peer.socket);
    pipe(peer.socket, data.socket);
    data.socket.once('close', () => {
      peer.socket.destroy();
      data.socket.destroy();
    });
    peer.socket.resume();
  }

  /** Closes a peer connection and its data connection. */
  close(connectionId: number): void {
    const entry = this.#peers.get(connectionId);
    this.#peers.delete(connectionId);
    entry?.socket.destroy();
    entry?.data?.destroy();
  }

  closeAll(): void {
    for (const id of [...this.#peers.keys()]) this.close(id);
  }
}

/** Forwards `from`'s bytes to `to`, pausing `from` while `to` is over its buffer. */
function pipe(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
}
