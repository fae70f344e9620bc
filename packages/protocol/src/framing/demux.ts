/**
 * Telling apart the protocols that share one UDP port (or one ICE component) by the first byte
 * of each packet: RFC 7983 section 7, as updated by RFC 9443 section 3.
 *
 * ```
 *   first byte   protocol
 *   0-3          STUN
 *   16-19        ZRTP
 *   20-63        DTLS
 *   64-79        TURN ChannelData
 *   128-191      RTP / RTCP
 *   anything else: drop
 * ```
 *
 * RFC 9443 section 3 narrows TURN channels to 64-79 (channel numbers 0x4000-0x4FFF, as RFC 8656
 * requires) so that 80-127 and 192-255 are left to QUIC; QUIC is not part of this stack, so
 * those bytes are 'unknown' here.
 *
 * @module
 */

/** What a packet is, judged by its first byte; 'rtp' covers RTP and RTCP alike. */
export type DemultiplexedProtocol = 'stun' | 'zrtp' | 'dtls' | 'turn-channel' | 'rtp' | 'unknown';

/** Options of {@link demultiplex}. */
export interface DemultiplexOptions {
  /**
   * Treat 80-127 as TURN ChannelData too: RFC 5766's channel numbers 0x4000-0x7FFF (RFC 7983's
   * original range), which RFC 8656 reserves but older clients still bind. Default false.
   */
  readonly legacyChannelNumbers?: boolean;
}

/**
 * The protocol a packet whose first byte is `firstByte` belongs to (RFC 7983 section 7 as
 * updated by RFC 9443 section 3). A value that is not an integer within 0-255 is 'unknown'.
 * Allocates nothing (hoist `options` out of a per-packet path).
 */
export function demultiplex(firstByte: number, options?: DemultiplexOptions): DemultiplexedProtocol {
  // Ranges in ascending order; NaN, fractions and values above 255 end up as unknown.
  if (!Number.isInteger(firstByte) || firstByte < 0) return 'unknown';
  if (firstByte <= 3) return 'stun';
  if (firstByte < 16) return 'unknown';
  if (firstByte <= 19) return 'zrtp';
  if (firstByte <= 63) return 'dtls';
  if (firstByte <= 79) return 'turn-channel';
  if (firstByte < 128) return options?.legacyChannelNumbers === true ? 'turn-channel' : 'unknown';
  if (firstByte <= 191) return 'rtp';
  return 'unknown';
}

/** The protocol of a received packet, judged by its first byte; an empty packet is 'unknown'. */
export function classifyPacket(bytes: Uint8Array, options?: DemultiplexOptions): DemultiplexedProtocol {
  return bytes.length === 0 ? 'unknown' : demultiplex(bytes[0]!, options);
}
