import { DecodeError, EncodeError } from '../errors.js';

/**
 * The yamux frame header (hashicorp/yamux spec.md, the wire format libp2p and many Go tools use):
 *
 *     Version (8) | Type (8) | Flags (16) | StreamID (32) | Length (32)      big-endian, 12 bytes
 *
 * For a Data frame, Length bytes of payload follow; for a Window Update it is the window delta;
 * for a Ping the opaque value; for a Go Away the error code. Stream 0 is the session itself.
 */
export const MUX_HEADER_BYTES = 12;
export const MUX_VERSION = 0;

export const MuxType = { Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 } as const;
export type MuxType = (typeof MuxType)[keyof typeof MuxType];

export const MuxFlag = { SYN: 0x1, ACK: 0x2, FIN: 0x4, RST: 0x8 } as const;

/** Go Away codes (spec: 0 normal termination, 1 protocol error, 2 internal error). */
export const MuxGoAway = { normal: 0, protocolError: 1, internalError: 2 } as const;

/** The initial per-stream receive window of yamux: 256 KiB. */
export const MUX_INITIAL_WINDOW = 256 * 1024;

/** One decoded header. */
export interface MuxHeader {
  readonly type: MuxType;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
}

/** Encodes a header into a new 12-byte buffer. Throws EncodeError for out-of-range fields. */
export function encodeMuxHeader(type: MuxType, flags: number, streamId: number, length: number): Uint8Array {
  if (!(streamId >= 0 && streamId <= 0xffffffff && Number.isInteger(streamId))) throw new EncodeError('BAD_VALUE', `mux: stream id ${streamId} out of range`);
  if (!(length >= 0 && length <= 0xffffffff && Number.isInteger(length))) throw new EncodeError('BAD_VALUE', `mux: length ${length} out of range`);
  const b = Buffer.allocUnsafe(MUX_HEADER_BYTES);
  b[0] = MUX_VERSION;
  b[1] = type;
  b.writeUInt16BE(flags & 0xffff, 2);
  b.writeUInt32BE(streamId, 4);
  b.writeUInt32BE(length, 8);
  return b;
}

/** What a {@link MuxFrameReader} reports, in wire order. */
export interface MuxFrameSink {
  /** A header. For a Data frame its payload follows as {@link onData} pieces, then {@link onDataEnd}. */
  onHeader(header: MuxHeader): void;
  /** A piece of a Data frame's payload (a view into the pushed chunk: no copy). */
  onData(streamId: number, piece: Uint8Array): void;
  /** The Data frame whose header was last reported is complete (flags FIN/RST apply now). */
  onDataEnd(header: MuxHeader): void;
}

/**
 * Sans-I/O yamux frame reader: push bytes as they arrive; headers and payload pieces come out
 * through the sink, without copying payload. Throws DecodeError on a bad version or type (the
 * session answers with Go Away protocol error); a Data frame's length is checked by the sink
 * against its receive window, so nothing here allocates in proportion to a length field.
 */
export class MuxFrameReader {
  readonly #head = Buffer.alloc(MUX_HEADER_BYTES);
  #headFill = 0;
  #data: MuxHeader | undefined;
  #remaining = 0;
  #failed = false;

  push(chunk: Uint8Array, sink: MuxFrameSink): void {
    if (this.#failed) return;
    let off = 0;
    while (off < chunk.length) {
      if (this.#data !== undefined) {
        const n = Math.min(this.#remaining, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        off += n;
        this.#remaining -= n;
        const h = this.#data;
        if (this.#remaining === 0) this.#data = undefined;
        sink.onData(h.streamId, piece);
        if (this.#remaining === 0 && this.#data === undefined) sink.onDataEnd(h);
        continue;
      }
      const need = MUX_HEADER_BYTES - this.#headFill;
      const n = Math.min(need, chunk.length - off);
      this.#head.set(chunk.subarray(off, off + n), this.#headFill);
      this.#headFill += n;
      off += n;
      if (this.#headFill < MUX_HEADER_BYTES) break;
      this.#headFill = 0;
      const h = this.#decode();
      sink.onHeader(h);
      if (h.type === MuxType.Data) {
        if (h.length === 0) sink.onDataEnd(h);
        else {
          this.#data = h;
          this.#remaining = h.length;
        }
      }
    }
  }

  #decode(): MuxHeader {
    const b = this.#head;
    if (b[0] !== MUX_VERSION) {
      this.#failed = true;
      throw new DecodeError('BAD_ATTRIBUTE', `mux: unknown version ${b[0]}`);
    }
    const type = b[1]!;
    if (type > MuxType.GoAway) {
      this.#failed = true;
      throw new DecodeError('BAD_ATTRIBUTE', `mux: unknown frame type ${type}`);
    }
    return { type: type as MuxType, flags: b.readUInt16BE(2), streamId: b.readUInt32BE(4), length: b.readUInt32BE(8) };
  }
}
