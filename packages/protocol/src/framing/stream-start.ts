/**
 * Telling apart the protocols one TLS port carries (TURN and STUN over TLS, and HTTP for the
 * WebSocket services) by the first bytes a client sends after the handshake, for clients that
 * offered no ALPN:
 *
 * - STUN (RFC 8489 section 5): the two most significant bits of the first byte are 0, and bytes
 *   4-7 are the magic cookie 0x2112A442. A stream's first message is always STUN (a TURN client
 *   allocates before it sends ChannelData), so ChannelData is not looked for.
 * - HTTP/1.1 (RFC 9112 section 3): a request line starts with a method token (upper-case
 *   letters here: GET for a WebSocket upgrade) followed by a space.
 *
 * @module
 */

/** What a stream is, judged by its first bytes; 'need-more' until they decide. */
export type StreamStart = 'stun' | 'http' | 'unknown' | 'need-more';

/** The longest method token waited for (RFC 9110's registered methods are at most 7 letters). */
const MAX_METHOD = 16;

/** Bytes {@link classifyStreamStart} needs at most to decide. */
export const STREAM_START_BYTES = MAX_METHOD + 1;

/** Classifies the first bytes of a stream (see the module text). Allocates nothing. */
export function classifyStreamStart(bytes: Uint8Array): StreamStart {
  if (bytes.length === 0) return 'need-more';
  const b0 = bytes[0]!;
  if (b0 < 0x40) {
    if (bytes.length < 8) return 'need-more';
    return bytes[4] === 0x21 && bytes[5] === 0x12 && bytes[6] === 0xa4 && bytes[7] === 0x42 ? 'stun' : 'unknown';
  }
  for (let i = 0; i < bytes.length && i <= MAX_METHOD; i++) {
    const c = bytes[i]!;
    if (c === 0x20) return i > 0 ? 'http' : 'unknown';
    if (c < 0x41 || c > 0x5a) return 'unknown';
  }
  return bytes.length > MAX_METHOD ? 'unknown' : 'need-more';
}
