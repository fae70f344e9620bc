/**
 * TURN ChannelData messages (RFC 8656 section 12.4): a 4-byte header, the channel number
 * (16 bits) then the length (16 bits) of the application data, then the data itself.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Channel Number        |            Length             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * /                       Application Data                        /
 * +-------------------------------+-------------------------------+
 * ```
 *
 * This is the relay's hot path, so decoding hands out views, never copies, and
 * {@link writeChannelDataHeader} / {@link readChannelNumber} allocate nothing at all.
 *
 * @module
 */
import { DecodeError, EncodeError } from '../errors.js';

/** The lowest valid channel number (RFC 8656 section 12). */
export const CHANNEL_NUMBER_MIN = 0x4000;

/**
 * The highest valid channel number (RFC 8656 section 12). RFC 5766 allowed up to 0x7FFF; RFC
 * 8656 reserves 0x5000-0xFFFF so that the first byte of a ChannelData message stays within
 * 64-79 and cannot be mistaken for other protocols sharing the port (RFC 7983, RFC 9443).
 */
export const CHANNEL_NUMBER_MAX = 0x4fff;

/** Size of the ChannelData header: channel number and length, 16 bits each. */
export const CHANNEL_DATA_HEADER_LENGTH = 4;

/** The largest application data a ChannelData message can carry (a 16-bit length field). */
export const CHANNEL_DATA_MAX_DATA_LENGTH = 0xffff;

/** A decoded ChannelData message. */
export interface ChannelData {
  /** The channel number, 0x4000-0x4FFF. */
  readonly channel: number;
  /** The application data: a view of the decoded bytes, without the padding. */
  readonly data: Uint8Array;
}

/** Options of {@link encodeChannelData}. */
export interface EncodeChannelDataOptions {
  /**
   * Pad the message with zero bytes to a multiple of 4. Required over TCP and TLS, optional over
   * UDP (RFC 8656 section 12.5). Default: false.
   */
  readonly padded?: boolean;
  /**
   * Accept the RFC 5766 channel range 0x4000-0x7FFF (RFC 8656 section 12 reserves 0x5000-0x7FFF
   * for RFC 7983 demultiplexing; older clients such as coturn's still use them). Default false.
   */
  readonly legacyChannelNumbers?: boolean;
}

/** The top of RFC 5766 section 11's channel range, for servers that interoperate with its clients. */
export const LEGACY_CHANNEL_NUMBER_MAX = 0x7fff;

/** True when `channel` is within RFC 5766's 0x4000-0x7FFF. */
export function isLegacyChannelNumber(channel: number): boolean {
  return Number.isInteger(channel) && channel >= CHANNEL_NUMBER_MIN && channel <= LEGACY_CHANNEL_NUMBER_MAX;
}

/** True when `channel` is an integer within 0x4000-0x4FFF, the channel numbers a client may bind. */
export function isValidChannelNumber(channel: number): boolean {
  return Number.isInteger(channel) && channel >= CHANNEL_NUMBER_MIN && channel <= CHANNEL_NUMBER_MAX;
}

function checkChannelForEncode(channel: number): void {
  if (!isValidChannelNumber(channel)) {
    throw new EncodeError('BAD_CHANNEL', `channel number ${String(channel)} is outside 0x4000-0x4FFF`);
  }
}

/**
 * Encodes a ChannelData message into a fresh array. With `padded`, zero bytes follow the data
 * up to a multiple of 4; the length field still holds the unpadded data length (RFC 8656
 * section 12.5).
 *
 * @throws EncodeError `BAD_CHANNEL` for a channel outside 0x4000-0x4FFF, `BAD_VALUE` for data
 * longer than 65535 bytes.
 */
export function encodeChannelData(channel: number, data: Uint8Array, options: EncodeChannelDataOptions = {}): Uint8Array {
  if (!(options.legacyChannelNumbers === true && isLegacyChannelNumber(channel))) checkChannelForEncode(channel);
  if (data.length > CHANNEL_DATA_MAX_DATA_LENGTH) {
    throw new EncodeError('BAD_VALUE', `ChannelData application data of ${data.length} bytes exceeds 65535`);
  }
  const unpadded = CHANNEL_DATA_HEADER_LENGTH + data.length;
  const total = options.padded === true ? (unpadded + 3) & ~3 : unpadded;
  // Buffer.allocUnsafe takes pooled memory (a fresh zero-filled Uint8Array costs ~5x more on the
  // relay's hot path, measured by bench/turn); every byte is written below, padding included.
  const out = Buffer.allocUnsafe(total);
  out[0] = channel >>> 8;
  out[1] = channel & 0xff;
  out[2] = data.length >>> 8;
  out[3] = data.length & 0xff;
  out.set(data, CHANNEL_DATA_HEADER_LENGTH);
  if (total > unpadded) out.fill(0, unpadded, total);
  return out;
}

/**
 * Decodes a ChannelData message. `data` is a view (subarray) of `bytes`, not a copy: it changes
 * if `bytes` is later overwritten. Bytes beyond 4 + length are ignored: they are the padding,
 * which is mandatory over TCP/TLS and allowed over UDP (RFC 8656 section 12.5).
 *
 * @throws DecodeError `TRUNCATED` when `bytes` is shorter than the header or than 4 + length,
 * `BAD_CHANNEL` when the channel number is outside 0x4000-0x4FFF.
 */
export function decodeChannelData(bytes: Uint8Array): ChannelData {
  if (bytes.length < CHANNEL_DATA_HEADER_LENGTH) {
    throw new DecodeError('TRUNCATED', `ChannelData of ${bytes.length} bytes is shorter than its 4-byte header`);
  }
  const channel = (bytes[0]! << 8) | bytes[1]!;
  if (channel < CHANNEL_NUMBER_MIN || channel > CHANNEL_NUMBER_MAX) {
    throw new DecodeError('BAD_CHANNEL', `channel number 0x${channel.toString(16)} is outside 0x4000-0x4FFF`);
  }
  const length = (bytes[2]! << 8) | bytes[3]!;
  const end = CHANNEL_DATA_HEADER_LENGTH + length;
  // RFC 8656 section 12.6: a datagram too short for the claimed length is discarded.
  if (bytes.length < end) {
    throw new DecodeError('TRUNCATED', `ChannelData declares ${length} data bytes but carries ${bytes.length - 4}`);
  }
  return { channel, data: bytes.subarray(CHANNEL_DATA_HEADER_LENGTH, end) };
}

/**
 * Writes a ChannelData header (channel number, data length) into `buf` at `offset`, for a relay
 * that builds the message in place around data it already holds. Allocates nothing. Returns the
 * offset just after the header, where the application data goes. Padding, if wanted, is the
 * caller's business.
 *
 * @throws EncodeError `BAD_CHANNEL` for a channel outside 0x4000-0x4FFF, `BAD_VALUE` for a
 * length outside 0-65535 or a header that does not fit in `buf` at `offset`.
 */
export function writeChannelDataHeader(buf: Uint8Array, offset: number, channel: number, length: number): number {
  checkChannelForEncode(channel);
  if (!Number.isInteger(length) || length < 0 || length > CHANNEL_DATA_MAX_DATA_LENGTH) {
    throw new EncodeError('BAD_VALUE', `ChannelData length ${String(length)} is outside 0-65535`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + CHANNEL_DATA_HEADER_LENGTH > buf.length) {
    throw new EncodeError('BAD_VALUE', `no room for a 4-byte ChannelData header at offset ${String(offset)}`);
  }
  buf[offset] = channel >>> 8;
  buf[offset + 1] = channel & 0xff;
  buf[offset + 2] = length >>> 8;
  buf[offset + 3] = length & 0xff;
  return offset + CHANNEL_DATA_HEADER_LENGTH;
}

/**
 * The channel number of a ChannelData message, or `undefined` when `bytes` is not a complete,
 * valid one (shorter than the header or than 4 + length, or a channel outside 0x4000-0x4FFF).
 * Never throws and allocates nothing: the relay's hot-path check. When it returns a number,
 * {@link readChannelDataLength} is safe to call and the data is
 * `bytes.subarray(4, 4 + readChannelDataLength(bytes))`.
 */
export function readChannelNumber(bytes: Uint8Array): number | undefined {
  if (bytes.length < CHANNEL_DATA_HEADER_LENGTH) return undefined;
  const b0 = bytes[0]!;
  // 0x4000-0x4FFF is exactly "first byte 0x40-0x4F".
  if ((b0 & 0xf0) !== 0x40) return undefined;
  const length = (bytes[2]! << 8) | bytes[3]!;
  if (bytes.length < CHANNEL_DATA_HEADER_LENGTH + length) return undefined;
  return (b0 << 8) | bytes[1]!;
}

/**
 * The length field of a ChannelData header (the unpadded application data length). The caller
 * ensures `bytes` holds at least 4 bytes, for example by a successful {@link readChannelNumber}.
 */
export function readChannelDataLength(bytes: Uint8Array): number {
  return ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
}
