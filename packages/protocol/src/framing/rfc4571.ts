/**
 * RFC 4571 framing: over a connection-oriented transport, each packet is preceded by its length
 * as a 16-bit big-endian unsigned integer. ICE-TCP (RFC 6544 section 3) frames STUN and media
 * packets this way, unlike TURN over TCP, which relies on the messages' own headers (see
 * `StunStreamFramer`).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |             LENGTH            |  packet ...                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 *
 * @module
 */
import { DecodeError, EncodeError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';

/** The largest packet RFC 4571 framing can carry (a 16-bit LENGTH field). */
export const RFC4571_MAX_PACKET_LENGTH = 0xffff;

/**
 * Prefixes `packet` with its 16-bit big-endian length, in a fresh array.
 *
 * @throws EncodeError `BAD_VALUE` when the packet is longer than 65535 bytes.
 */
export function encodeRfc4571(packet: Uint8Array): Uint8Array {
  if (packet.length > RFC4571_MAX_PACKET_LENGTH) {
    throw new EncodeError('BAD_VALUE', `packet of ${packet.length} bytes exceeds the RFC 4571 maximum of 65535`);
  }
  const out = new Uint8Array(2 + packet.length);
  out[0] = packet.length >>> 8;
  out[1] = packet.length & 0xff;
  out.set(packet, 2);
  return out;
}

/** Options of {@link Rfc4571Framer}. */
export interface Rfc4571FramerInit {
  /**
   * Largest packet accepted, without the 2-byte prefix; a larger declared LENGTH fails the
   * stream. Default {@link RFC4571_MAX_PACKET_LENGTH} (65535, no limit beyond the wire's).
   */
  readonly maxPacketLength?: number;
}

/**
 * Cuts an RFC 4571 byte stream into packets: `push` each chunk as it arrives, then call `next`
 * (or iterate) until it returns `undefined`. Returned packets exclude the length prefix; a
 * LENGTH of 0 yields an empty packet. A packet that lay within one chunk is a view of it,
 * otherwise a fresh copy, so a chunk must not be modified after it is pushed.
 *
 * A LENGTH above `maxPacketLength` fails the framer for good (the connection should be
 * closed); once failed, `push` and `next` rethrow the same {@link DecodeError}.
 */
export class Rfc4571Framer implements Iterable<Uint8Array> {
  readonly #queue = new ByteQueue();
  readonly #maxPacketLength: number;
  #error: DecodeError | undefined;

  /** @throws RangeError when `maxPacketLength` is not an integer within 0-65535. */
  constructor(init: Rfc4571FramerInit = {}) {
    const max = init.maxPacketLength ?? RFC4571_MAX_PACKET_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > RFC4571_MAX_PACKET_LENGTH) {
      throw new RangeError(`maxPacketLength must be an integer within 0-65535, got ${String(max)}`);
    }
    this.#maxPacketLength = max;
  }

  /** Bytes received and not yet returned as packets (length prefixes included). */
  get bufferedLength(): number {
    return this.#queue.length;
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
   * The next complete packet (without its length prefix), or `undefined` when the buffered
   * bytes do not yet hold one.
   *
   * @throws DecodeError `BAD_LENGTH` for a LENGTH above `maxPacketLength`; the framer then
   * stays failed.
   */
  next(): Uint8Array | undefined {
    if (this.#error !== undefined) throw this.#error;
    const queue = this.#queue;
    if (queue.length < 2) return undefined;
    const length = queue.uint16At(0);
    if (length > this.#maxPacketLength) {
      this.#error = new DecodeError('BAD_LENGTH', `RFC 4571 packet of ${length} bytes exceeds the limit of ${this.#maxPacketLength}`);
      queue.clear();
      throw this.#error;
    }
    if (queue.length < 2 + length) return undefined;
    queue.skip(2);
    return queue.take(length);
  }

  /** Yields every complete packet now buffered; same errors as {@link next}. */
  *[Symbol.iterator](): Iterator<Uint8Array> {
    for (let packet = this.next(); packet !== undefined; packet = this.next()) yield packet;
  }
}
