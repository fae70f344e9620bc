/**
 * The peer link's public types: the path it runs over, its options, counters and events.
 */
import type { RendezvousIdentity } from '../rendezvous/identity.js';
import type { PeerLinkError } from './errors.js';
import type { UdxSocket } from './native.js';
import type { LinkStream } from './stream.js';

/** Where a link's udx streams send: a udx socket and the address on the other side. */
export interface UdxRoute {
  /** A socket of the link's udx instance ({@link udx}). */
  readonly socket: UdxSocket;
  readonly host: string;
  readonly port: number;
}

/** What the link needs from the path: an {@link IceConnection} is one. */
export interface LinkPath {
  send(data: Uint8Array): boolean;
  /**
   * Optional: sends `frame.subarray(1)` as one datagram without copying it; `frame[0]` is the
   * path's own (IceConnection.sendFrame writes its frame type there).
   */
  sendFrame?(frame: Uint8Array): boolean;
  /**
   * Optional: the selected pair as a udx route (its local udx socket and the peer's address),
   * when the pair is direct and its local socket is a udx socket of {@link udx}; undefined
   * otherwise (relayed). The link's streams then run on it without the shim.
   */
  readonly udxRoute?: UdxRoute | undefined;
  /**
   * Optional: the udx socket the link's streams live on while no direct route exists (they send
   * to the shim from it): the socket of the selected pair when direct, else the path's first
   * udx host socket. Without one, the link binds a private socket on loopback.
   */
  readonly udxHome?: UdxSocket | undefined;
  on(event: 'data', listener: (data: Uint8Array) => void): unknown;
  on(event: 'close', listener: (reason: string) => void): unknown;
  /** The selected pair changed: the link asks `udxRoute` again. */
  on(event: 'path', listener: () => void): unknown;
  off(event: 'data', listener: (data: Uint8Array) => void): unknown;
  off(event: 'close', listener: (reason: string) => void): unknown;
  off(event: 'path', listener: () => void): unknown;
}

/** Options of {@link openLink}. */
export interface PeerLinkOptions {
  /** This peer's Ed25519 identity (the rendezvous identity). Required. */
  readonly identity: RendezvousIdentity;
  /** The initiator sends the first handshake message: the ICE controlling side (the caller). Required. */
  readonly initiator: boolean;
  /**
   * The peer id the remote static key must hash to. Required: a peer that does not hold the key
   * of this id is refused (`REFUSED`).
   */
  readonly remotePeerId: string;
  /** A further check of the authenticated remote peer id (e.g. an allow list). Default: allow. */
  readonly allow?: (peerId: string) => boolean;
  /**
   * Send an (encrypted, empty) keepalive when nothing was sent for this long, ms, to keep NAT
   * bindings open: below the shortest UDP binding lifetime on the path (RFC 4787 REQ-5 asks NATs
   * for at least 120 s, Linux conntrack gives 30 s to a one-way flow). Default 15,000; 0 disables.
   */
  readonly keepaliveMs?: number;
  /**
   * Close the link with `IDLE_TIMEOUT` when nothing authentic arrived for this long, ms (the peer
   * keeps sending keepalives, so silence means the path or the peer is gone). Default 3 x
   * `keepaliveMs` (45,000), or 45,000 when keepalives are off; 0 disables.
   */
  readonly idleTimeoutMs?: number;
  /** Give up the handshake after this long, ms (`HANDSHAKE_TIMEOUT`). Default 10,000. */
  readonly handshakeTimeoutMs?: number;
  /** Handshake messages are resent this often until answered, ms. Default 250. */
  readonly handshakeRetransmitMs?: number;
  /** Aborts the handshake, and closes the link once open. */
  readonly signal?: AbortSignal;
  /**
   * How many bytes of udx packets one sealed datagram may carry on the path as it is now; asked
   * for each udx packet. udx packets that arrive in one event-loop turn and fit travel together.
   * Default {@link BATCH_BYTES} (512: small packets, udx's acknowledgements, within any path MTU).
   * {@link linkOverConnection} allows {@link LOOPBACK_BATCH_BYTES} while every hop of the
   * selected pair is on loopback (MTU 65,536; direct, or through a TURN server on this host), so
   * that full data packets travel together too. Over a real network (MTU 1500) a datagram has
   * room for one full udx packet: only acknowledgements batch there.
   */
  readonly batchBytes?: () => number;
  /**
   * Let the streams run directly on a direct pair's socket (`direct` route). Default true. False
   * keeps them on the shim route for the link's life (on both sides: the peer goes direct only
   * when this side says it can), slower. Either route survives either side moving (an ICE
   * restart on a new address): on the direct route libudx resends a packet only to the address
   * it first went to, so a stream whose move does not complete within a second resumes on a new
   * udx stream pair from the receiver's byte count (channel.ts).
   */
  readonly directRoute?: boolean;
}

/** Datagrams refused by a link, by reason. */
export interface LinkDropCounts {
  /** Too short, or an unknown type. */
  malformed: number;
  /** Failed authentication: altered, forged, or under a key we do not have. */
  tampered: number;
  /** A counter already seen, or older than the replay window. */
  replayed: number;
}

/** Counters of a link. */
export interface LinkStats {
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  keepalivesSent: number;
  dropped: LinkDropCounts;
  /** Streams destroyed because their bytes failed authentication (records.ts). */
  streamsTampered: number;
  /** Times the streams moved to another route (relay -> direct, a new remote address, ...). */
  routeChanges: number;
  /**
   * Times a stream (or the control stream) went on over a new udx stream pair because its udx
   * stream could not: its move did not complete, or it failed while the link lived (channel.ts).
   */
  streamsResumed: number;
  /** The streams' current route: `direct` on the pair's own socket, or `shim` (sealed packets over the path). */
  route: 'direct' | 'shim';
}

/** Events of {@link PeerLink}. */
export interface PeerLinkEvents {
  /** The peer opened a stream. */
  stream: [stream: LinkStream];
  /**
   * The streams' route changed: `direct` (on the selected pair's socket, straight to the peer) or
   * `shim` (sealed packets carried by the path, e.g. through TURN). Links start on `shim`.
   */
  route: [route: 'direct' | 'shim'];
  /** The link closed; `error` says why unless it was closed locally. */
  close: [error: PeerLinkError | undefined];
}
