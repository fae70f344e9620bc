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
 * (libudx: per-stream reliability and ordering, congestion control, half-close).
 *
 * Stream protection: each stream's bytes, in each direction, are a libsodium secretstream
 * (`records.ts`: XChaCha20-Poly1305 records of up to 64 KiB, as @hyperswarm/secret-stream over
 * udx) under a key derived from the Noise transport key and both stream ids, ending with an
 * authenticated FINAL record. A record that does not authenticate (altered, replayed, reordered,
 * spliced from another stream) or an END without the FINAL record destroys that stream with
 * `TAMPERED` (`stats.streamsTampered`); no unauthenticated byte is ever delivered.
 *
 * Routes (`stats.route`):
 * - `direct`: on a direct pair, the streams run on the pair's own host socket (the connection's
 *   host sockets are udx-native sockets of the same udx instance) and send to the peer's address
 *   of the pair. libudx handles their packets natively; no JavaScript touches them. The streams
 *   never change sockets (a udx stream moved to another socket while its peer moves too can
 *   stall for good): a direct pair on another socket than the one the link started on (a
 *   birthday-punched socket, a second interface) takes the shim route.
 * - `shim`: on a relayed pair, the streams send from that socket to a shim socket on loopback,
 *   which seals each udx packet again as a Noise transport message with an explicit counter
 *   (`seal.ts`: ChaCha20-Poly1305, an RFC 6479 replay window, Noise `Rekey()` every 2^20
 *   messages) and hands it to the connection (so through TURN), and opens what comes back;
 *   tampered and replayed datagrams are dropped and counted (`stats.dropped`) before udx sees
 *   them, so the relay cannot disturb a stream. One message carries one udx packet, or
 *   several that arrived in one event-loop turn: small ones (udx's acknowledgements) on every
 *   path, full ones too while every hop is on loopback (`batchBytes`); off loopback, a udx
 *   packet over 1180 bytes travels in two sealed pieces, so no datagram exceeds a 1280-byte
 *   IPv6 packet (a udx socket sets Don't Fragment, and udx probes its MTU toward the shim).
 * When the selected pair changes (relay first, then direct; a NAT rebinding) every stream moves
 * (udx `changeRemote`, the remote address only); the socket the streams are on takes their
 * packets from any source, so whichever side moves first, packets still arrive, through the shim
 * or directly.
 *
 * Limits:
 * - On the direct route, udx's own headers (stream ids, sequence numbers, acknowledgements)
 *   travel in clear and are not authenticated: an on-path attacker who alters or forges udx
 *   packets can end a stream (`TAMPERED`) or disturb its congestion control, but can neither
 *   read nor alter nor replay its bytes.
 * - The streams' socket is the ICE host socket on either route, and libudx takes a stream's
 *   packets from any source: a host anywhere that knows the socket's address (it is a candidate)
 *   and guesses a stream id (random, 31 bits) and a sequence number in the window could end a
 *   stream the same way, even while the link is relayed.
 * - libudx completes a move (`changeRemote`) only once every packet sent before it is
 *   acknowledged, and resends a packet only to the address it first went to: packets in flight
 *   to an address the peer no longer has never arrive. A stream whose move does not complete
 *   within 1 s, or whose udx stream fails while the link lives, resumes (`channel.ts`): both
 *   sides make a new udx stream pair on the current route and each writes again from the
 *   other's count of bytes received (sealed `Resume` datagrams, resent every 250 ms, given up
 *   after 30 s). Each side keeps what it wrote until the peer confirms it (every 1 MiB
 *   received), so the bytes come again exactly once, under the same records
 *   (`stats.streamsResumed`).
 * - A stream destroyed while the peer's side is already gone takes libudx about 13 s to give
 *   up, and the socket it is on closes only after that.
 *
 * Speed: see bench/tunnel/README.md.
 *
 * Defaults: keepalive after 15 s without sending (`keepaliveMs`, below Linux conntrack's 30 s
 * for a one-way UDP flow); the link closes with `IDLE_TIMEOUT` after three keepalive intervals
 * (45 s) without an authentic datagram (`idleTimeoutMs`); the handshake gives up after 10 s, resending every 250 ms.
 *
 * @module
 */
import type { IceConnection } from '../connect/connection.js';
import type { RendezvousIdentity } from '../rendezvous/identity.js';
import type { PeerLink, PeerLinkOptions } from './link.js';
import { openLink } from './open.js';
import { BATCH_BYTES, LOOPBACK_BATCH_BYTES } from './packing.js';

export {
  BATCH_BYTES,
  LOOPBACK_BATCH_BYTES,
  PeerLink,
  type PeerLinkOptions,
  type PeerLinkEvents,
  type LinkPath,
  type LinkStats,
  type LinkDropCounts,
  type UdxRoute,
} from './link.js';
export { openLink, sodiumKeyPair } from './open.js';
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
