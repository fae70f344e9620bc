/**
 * The peer link's datagrams (the wire format of `@nat/client`'s PeerLink; the sealing itself,
 * Noise transport messages with a clear counter, stays with the link's crypto).
 *
 * Every datagram handed to the path starts with a type byte: the three Noise XX handshake
 * messages ({@link LINK_HS1} .. {@link LINK_HS3}) or {@link LINK_SEALED}. A sealed datagram's
 * plaintext starts with an inner type ({@link LinkInner}): one udx packet, a keepalive, the
 * link's close, a batch of small udx packets (each a 16-bit length and the packet), the
 * sender's route bit with a sequence number, or one piece of a udx packet too large for one
 * datagram of the path (a 16-bit packet number, the piece's index and the number of pieces).
 *
 * The link's control stream carries 9-byte messages: a type ({@link LinkControl}) and two 32-bit
 * stream ids.
 *
 * Decoders take the plaintext with its inner type byte at index 0 and return undefined for a
 * message cut short; none throws on hostile bytes.
 */

/** Datagram types on the path. */
export const LINK_HS1 = 0x01;
export const LINK_HS2 = 0x02;
export const LINK_HS3 = 0x03;
export const LINK_SEALED = 0x04;

/** The first byte of a sealed plaintext. */
export const LinkInner = {
  /** One udx packet. */
  Udx: 0x00,
  /** Nothing: keeps the path and the peer's idle timer alive. */
  Keepalive: 0x01,
  /** The sender closed the link. */
  Close: 0x02,
  /** Several small udx packets, each as a 16-bit length and the packet. */
  UdxBatch: 0x03,
  /**
   * One byte, 1 or 0 (whether the sender's selected pair is direct on the socket its streams
   * are on), then a 32-bit sequence number: the receiver keeps the newest.
   */
  Route: 0x04,
  /** A piece of a udx packet too large for one datagram of the path. */
  UdxFragment: 0x05,
  /** A stream's resumption on a new udx stream, or a count of its bytes received (`resume.ts`). */
  Resume: 0x06,
} as const;

/** Control stream message types. */
export const LinkControl = {
  /** Open a stream: the opener's stream id, 0. */
  Open: 1,
  /** Accepted: the opener's stream id, the acceptor's stream id. */
  Accept: 2,
  /**
   * The sender's stream (second id) failed (its udx stream timed out, was tampered with, or was
   * destroyed with an error): the receiver's stream (first id) is destroyed too.
   */
  Reset: 3,
} as const;

/** Bytes of one control message. */
export const LINK_CONTROL_BYTES = 9;

/** A control message: its type and two stream ids. */
export interface LinkControlMessage {
  readonly type: number;
  readonly a: number;
  readonly b: number;
}

/** A control message's 9 bytes. */
export function encodeLinkControl(type: number, a: number, b: number): Buffer {
  const out = Buffer.alloc(LINK_CONTROL_BYTES);
  out[0] = type;
  out.writeUInt32BE(a >>> 0, 1);
  out.writeUInt32BE(b >>> 0, 5);
  return out;
}

/** Splits the control stream's bytes into messages, keeping a message cut between chunks. */
export class LinkControlReader {
  #rest: Buffer = Buffer.alloc(0);

  /** The complete messages in `chunk` (with what an earlier chunk left). */
  push(chunk: Uint8Array): LinkControlMessage[] {
    let buf = this.#rest.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length) : Buffer.concat([this.#rest, chunk]);
    const out: LinkControlMessage[] = [];
    while (buf.length >= LINK_CONTROL_BYTES) {
      out.push({ type: buf[0]!, a: buf.readUInt32BE(1), b: buf.readUInt32BE(5) });
      buf = buf.subarray(LINK_CONTROL_BYTES);
    }
    this.#rest = Buffer.from(buf);
    return out;
  }
}

/** A {@link LinkInner.UdxBatch} payload (without its inner type byte) of `packets`, whose lengths with 2 bytes each add up to `bytes`. */
export function encodeUdxBatch(packets: readonly Uint8Array[], bytes = packets.reduce((n, p) => n + 2 + p.length, 0)): Buffer {
  const payload = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const p of packets) {
    payload.writeUInt16BE(p.length, at);
    payload.set(p, at + 2);
    at += 2 + p.length;
  }
  return payload;
}

/** The packets of a batch plaintext (inner type at index 0); `truncated` when the last one is cut short (it is left out). */
export function decodeUdxBatch(plain: Buffer): { readonly packets: Buffer[]; readonly truncated: boolean } {
  const packets: Buffer[] = [];
  for (let at = 1; at < plain.length;) {
    const length = at + 2 <= plain.length ? plain.readUInt16BE(at) : Infinity;
    if (at + 2 + length > plain.length) return { packets, truncated: true };
    packets.push(plain.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return { packets, truncated: false };
}

/** A piece of a udx packet. */
export interface UdxFragment {
  /** The packet's number (16 bits, wrapping). */
  readonly id: number;
  readonly index: number;
  readonly count: number;
  readonly bytes: Buffer;
}

/** A {@link LinkInner.UdxFragment} payload (without its inner type byte). */
export function encodeUdxFragment(id: number, index: number, count: number, bytes: Uint8Array): Buffer {
  const piece = Buffer.allocUnsafe(4 + bytes.length);
  piece.writeUInt16BE(id & 0xffff, 0);
  piece[2] = index;
  piece[3] = count;
  piece.set(bytes, 4);
  return piece;
}

/** A piece from its plaintext (inner type at index 0); undefined when cut short or inconsistent (fewer than 2 pieces, an index past the count). */
export function decodeUdxFragment(plain: Buffer): UdxFragment | undefined {
  if (plain.length < 6) return undefined;
  const index = plain[3]!;
  const count = plain[4]!;
  if (count < 2 || index >= count) return undefined;
  return { id: plain.readUInt16BE(1), index, count, bytes: plain.subarray(5) };
}

/** A {@link LinkInner.Route} payload (without its inner type byte). */
export function encodeLinkRoute(direct: boolean, seq: number): Buffer {
  const m = Buffer.allocUnsafe(5);
  m[0] = direct ? 1 : 0;
  m.writeUInt32BE(seq >>> 0, 1);
  return m;
}

/** A route message from its plaintext (inner type at index 0); undefined when cut short. */
export function decodeLinkRoute(plain: Buffer): { readonly direct: boolean; readonly seq: number } | undefined {
  if (plain.length < 6) return undefined;
  return { direct: plain[1] === 1, seq: plain.readUInt32BE(2) };
}
