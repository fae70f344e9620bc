/**
 * Application datagrams on an ICE connection's selected pair (`@nat/client`'s `IceConnection`). Every datagram that is not STUN belongs to the
 * application (RFC 7983 demultiplexing); its first byte says what it is. The bytes used,
 * 0xF0-0xF2, lie in the range RFC 7983 section 7 leaves unassigned (192-255), so they are never
 * taken for STUN (0-3), DTLS (20-63), TURN ChannelData (64-79) or RTP (128-191).
 */

/** Application data: the payload follows. */
export const FRAME_DATA = 0xf0;
/** A ping: a 4-byte sequence number follows; answered with {@link FRAME_PONG}. */
export const FRAME_PING = 0xf1;
/** The answer to a ping, with the ping's sequence number. */
export const FRAME_PONG = 0xf2;

/** A data frame holding `payload`. */
export function encodeDataFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 1);
  out[0] = FRAME_DATA;
  out.set(payload, 1);
  return out;
}

/** A ping or pong frame for sequence number `seq`. */
export function encodePingFrame(kind: typeof FRAME_PING | typeof FRAME_PONG, seq: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, seq >>> 0);
  return out;
}

/** What a received application datagram is; undefined for an unknown or truncated frame. */
export type AppFrame = { readonly kind: 'data'; readonly payload: Uint8Array } | { readonly kind: 'ping' | 'pong'; readonly seq: number };

/** Reads a received application datagram. */
export function decodeFrame(bytes: Uint8Array): AppFrame | undefined {
  if (bytes.length === 0) return undefined;
  const type = bytes[0];
  if (type === FRAME_DATA) return { kind: 'data', payload: bytes.subarray(1) };
  if ((type === FRAME_PING || type === FRAME_PONG) && bytes.length >= 5) {
    const seq = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0);
    return { kind: type === FRAME_PING ? 'ping' : 'pong', seq };
  }
  return undefined;
}
