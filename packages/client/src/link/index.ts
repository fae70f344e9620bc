/**
 * # Peer links
 *
 * Encrypted, mutually authenticated, reliable, ordered, congestion-controlled and multiplexed
 * byte streams between two peers, over whatever path the ICE agent selected:
 *
 * ```ts
 * const conn = await connectPeer(rv, peerId);                       // or acceptPeers(...)
 * const link = await linkOverConnection(conn, { identity });        // Noise XX with the identity keys
 * const stream = await link.openStream();                           // a Node Duplex
 * link.on('stream', (s) => s.pipe(s));                              // the peer's streams
 * link.stats.dropped;                                               // { malformed, tampered, replayed }
 * ```
 *
 * How: a Noise XX handshake (`Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, noise-handshake with
 * noise-curve-ed) over the connection's datagrams authenticates both identity keys; a key that
 * does not hash to the expected peer id is refused (`REFUSED`). The streams are udx-native
 * (libudx: per-stream reliability and ordering, BBR congestion control, half-close), bound to a
 * private socket on 127.0.0.1 that talks only to a shim socket; the shim seals udx's packets as
 * Noise transport messages with an explicit counter (`seal.ts`: ChaCha20-Poly1305, an RFC 6479
 * replay window, Noise `Rekey()` every 2^20 messages) and hands them to the connection, and opens
 * what comes back. One message carries one udx packet, or several that arrived in one event-loop
 * turn: small ones (udx's acknowledgements) on every path, full ones too while the selected pair
 * is between two loopback addresses (`batchBytes`). Tampered and replayed datagrams are dropped and counted (`stats.dropped`),
 * never passed to udx. Because udx only sees the shim, the selected pair can change under it
 * (relay first, then direct; a NAT rebinding) without a stream noticing anything but a few
 * retransmissions.
 *
 * Limits: the udx socket and the shim listen on 127.0.0.1, and the shim takes only datagrams
 * from the udx socket's address, so only udx's packets enter the link; but another process on
 * the same host can still send datagrams to the udx socket's port (what libudx makes of them
 * for a connected stream is its own check, not the link's). Throughput is bounded by the two extra loopback
 * hops of every udx packet through the shim (see bench/tunnel/README.md).
 *
 * Defaults: keepalive after 15 s without sending (`keepaliveMs`, below Linux conntrack's 30 s
 * for a one-way UDP flow); the link closes with `IDLE_TIMEOUT` after three keepalive intervals
 * (45 s) without an authentic datagram (`idleTimeoutMs`); the handshake gives up after 10 s, resending every 250 ms.
 *
 * @module
 */
import type { IceConnection } from '../connect/connection.js';
import type { RendezvousIdentity } from '../rendezvous/identity.js';
import { BATCH_BYTES, LOOPBACK_BATCH_BYTES, type PeerLink, type PeerLinkOptions, openLink } from './link.js';

export { BATCH_BYTES, LOOPBACK_BATCH_BYTES, PeerLink, type PeerLinkOptions, type PeerLinkEvents, type LinkPath, type LinkStats, type LinkDropCounts, type UdxRoute, openLink, sodiumKeyPair } from './link.js';
export { MAX_RECORD, RecordOpener, RecordSealer, streamKey } from './records.js';
export { LinkStream } from './stream.js';
export { PeerLinkError, type PeerLinkErrorCode } from './errors.js';
export { PacketSealer, PacketOpener, rekey, type DropReason, REKEY_INTERVAL, REPLAY_WINDOW } from './seal.js';

/**
 * Opens a peer link over an ICE connection: the controlling side (the caller) initiates, and
 * the remote key must be the key of `conn.peerId`.
 */
export function linkOverConnection(
  conn: IceConnection,
  options: Omit<PeerLinkOptions, 'initiator' | 'remotePeerId'> & { readonly identity: RendezvousIdentity },
): Promise<PeerLink> {
  // direct or relayed: a TURN server on this host relays loopback-sized datagrams too
  const batchBytes = (): number => (conn.pathIsLoopback ? LOOPBACK_BATCH_BYTES : BATCH_BYTES);
  return openLink(conn, { batchBytes, ...options, initiator: conn.role === 'controlling', remotePeerId: conn.peerId });
}

