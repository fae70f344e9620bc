/**
 * Splitting a TCP or TLS byte stream into STUN messages and TURN ChannelData messages.
 *
 * Over a stream, STUN and ChannelData messages follow one another with no length prefix
 * (RFC 8489 section 6.2.2, RFC 8656 section 12.5): the receiver tells them apart by the first
 * byte (STUN's two most significant bits are 00, a ChannelData channel number starts with
 * 0x40-0x4F) and learns each message's size from its own header:
 *
 * - STUN: 20 (the header) + the 16-bit message length at bytes 2-3;
 * - ChannelData: 4 (the header) + the 16-bit length at bytes 2-3, rounded up to a multiple of 4,
 *   because over TCP and TLS ChannelData MUST be padded so the next message stays aligned, and
 *   the padding is not counted in the length field (RFC 8656 section 12.5).
 *
 * Either way, four bytes are enough to know where the frame ends.
 *
 * @module
 */
import { DecodeError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';

/** The largest STUN frame a 16-bit length field can declare: 20 + 65535 bytes. */
export const STUN_FRAME_MAX_LENGTH = 20 + 0xffff;

/**
 * The largest ChannelData frame on a stream: 4 + 65535 bytes rounded up to a multiple of 4,
 * that is 65540 bytes (the padding never exceeds 3 bytes).
 */
export const CHANNEL_DATA_FRAME_MAX_LENGTH = (4 + 0xffff + 3) & ~3;

/** What a frame on a STUN stream is. */
export type StreamFrameKind = 'stun' | 'channel-data';

/** One message cut from a STUN stream. */
export interface StreamFrame {
  readonly kind: StreamFrameKind;
  /**
   * The whole message: a STUN message (header included), or a ChannelData message including its
   * padding (which `decodeChannelData` accepts). A view of a pushed chunk when the frame
   * lay within one chunk, otherwise a fresh copy.
   */
  readonly bytes: Uint8Array;
}

/** Options of {@link StunStreamFramer}. */
export interface StunStreamFramerInit {
  /**
   * Largest STUN message accepted, header included, in bytes; a larger declared length fails
   * the stream. Default {@link STUN_FRAME_MAX_LENGTH} (65555, no limit beyond the wire's).
   */
  readonly maxStunMessageLength?: number;
  /**
   * Largest ChannelData message accepted, header and padding included, in bytes; a larger
   * declared length fails the stream. Default {@link CHANNEL_DATA_FRAME_MAX_LENGTH} (65540, no
   * limit beyond the wire's).
   */
  readonly maxChannelDataLength?: number;
  /** Take first bytes 0x50-0x7F as ChannelData too (RFC 5766 channel numbers). Default false. */
  readonly legacyChannelNumbers?: boolean;
}

/** The kind of frame a first byte starts, or `undefined` when it starts neither. */
function kindOf(firstByte: number, legacy = false): StreamFrameKind | undefined {
  if (firstByte < 0x40) return 'stun';
  if (firstByte < (legacy ? 0x80 : 0x50)) return 'channel-data';
  return undefined;
}

/** The error for a first byte that starts neither STUN nor ChannelData. */
function badFirstByte(firstByte: number): DecodeError {
  const hex = `0x${firstByte.toString(16).padStart(2, '0')}`;
  if (firstByte < 0x80) {
    // 0x5000-0x7FFF were channel numbers in RFC 5766; RFC 8656 section 12 reserves them.
    return new DecodeError('BAD_CHANNEL', `first byte ${hex} starts a reserved channel number`);
  }
  return new DecodeError('NOT_STUN', `first byte ${hex} starts neither STUN nor ChannelData`);
}

/** Full frame length from the kind and the 16-bit length field at bytes 2-3. */
function lengthOf(kind: StreamFrameKind, lengthField: number): number {
  return kind === 'stun' ? 20 + lengthField : (4 + lengthField + 3) & ~3;
}

/**
 * The full length in bytes of the STUN or ChannelData frame at the start of `bytes` (ChannelData
 * padding included), or `undefined` when fewer than 4 bytes are present. Only the header is
 * read: `bytes` may hold less or more than the frame.
 *
 * @throws DecodeError as soon as the first byte is present and is neither STUN (0x00-0x3F) nor
 * ChannelData (0x40-0x4F): `BAD_CHANNEL` for 0x50-0x7F, `NOT_STUN` for 0x80-0xFF.
 */
export function frameLength(bytes: Uint8Array): number | undefined {
  if (bytes.length === 0) return undefined;
  const kind = kindOf(bytes[0]!);
  if (kind === undefined) throw badFirstByte(bytes[0]!);
  if (bytes.length < 4) return undefined;
  return lengthOf(kind, (bytes[2]! << 8) | bytes[3]!);
}

function checkLimit(value: number | undefined, min: number, max: number, name: string): number {
  if (value === undefined) return max;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer within ${min}-${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Cuts a TCP/TLS byte stream into STUN and ChannelData frames: `push` each chunk as it arrives,
 * then call `next` (or iterate) until it returns `undefined`.
 *
 * A first byte that starts neither STUN nor ChannelData, or a declared length above the limits,
 * fails the framer for good: the stream has lost its framing and cannot resynchronise, so the
 * connection should be closed. Once failed, `push` and `next` rethrow the same
 * {@link DecodeError}.
 *
 * Pushed chunks are kept by reference and frames may be views of them, so a chunk must not be
 * modified after it is pushed (node:net hands out a fresh Buffer per 'data' event, which is
 * fine). A frame view keeps its whole chunk alive until the frame is dropped.
 */
export class StunStreamFramer implements Iterable<StreamFrame> {
  readonly #queue = new ByteQueue();
  readonly #maxStun: number;
  readonly #maxChannelData: number;
  readonly #legacy: boolean;
  #error: DecodeError | undefined;

  /** @throws RangeError when a limit is not an integer within its header size and wire maximum. */
  constructor(init: StunStreamFramerInit = {}) {
    this.#maxStun = checkLimit(init.maxStunMessageLength, 20, STUN_FRAME_MAX_LENGTH, 'maxStunMessageLength');
    this.#maxChannelData = checkLimit(init.maxChannelDataLength, 4, CHANNEL_DATA_FRAME_MAX_LENGTH, 'maxChannelDataLength');
    this.#legacy = init.legacyChannelNumbers === true;
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedLength(): number {
    return this.#queue.length;
  }

  /**
   * Removes and returns every buffered byte that is not yet a frame. For protocols that switch a
   * connection from STUN framing to raw bytes (RFC 6062 ConnectionBind): the bytes that followed
   * the last frame belong to the raw stream.
   */
  takeBuffered(): Uint8Array {
    return this.#queue.take(this.#queue.length);
  }

  /** The error that failed the stream, or `undefined` while it is healthy. */
  get error(): DecodeError | undefined {
    return this.#error;
  }

  /**
   * Queues a chunk received from the stream. Cheap: nothing is parsed until {@link next}.
   *
   * @throws DecodeError the stored error, once the framer has failed.
   */
  push(chunk: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error;
    this.#queue.push(chunk);
  }

  /**
   * The next complete frame, or `undefined` when the buffered bytes do not yet hold one.
   *
   * @throws DecodeError `NOT_STUN` or `BAD_CHANNEL` for a first byte that starts neither a STUN
   * nor a ChannelData message, `BAD_LENGTH` for a declared length above the configured limit.
   * The framer then stays failed.
   */
  next(): StreamFrame | undefined {
    if (this.#error !== undefined) throw this.#error;
    const queue = this.#queue;
    if (queue.length === 0) return undefined;
    const firstByte = queue.byteAt(0);
    const kind = kindOf(firstByte, this.#legacy);
    if (kind === undefined) throw this.#fail(badFirstByte(firstByte));
    if (queue.length < 4) return undefined;
    const length = lengthOf(kind, queue.uint16At(2));
    const max = kind === 'stun' ? this.#maxStun : this.#maxChannelData;
    if (length > max) {
      throw this.#fail(new DecodeError('BAD_LENGTH', `${kind} frame of ${length} bytes exceeds the limit of ${max}`));
    }
    if (queue.length < length) return undefined;
    return { kind, bytes: queue.take(length) };
  }

  /** Yields every complete frame now buffered; same errors as {@link next}. */
  *[Symbol.iterator](): Iterator<StreamFrame> {
    for (let frame = this.next(); frame !== undefined; frame = this.next()) yield frame;
  }

  #fail(error: DecodeError): DecodeError {
    this.#error = error;
    this.#queue.clear();
    return error;
  }
}
