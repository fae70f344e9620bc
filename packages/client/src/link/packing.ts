/**
 * How a link's udx packets travel on the shim route: gathered into one sealed datagram per
 * event-loop turn when small (`INNER_UDX_BATCH`), alone when large, and off loopback, when over
 * {@link FRAGMENT_BYTES}, in sealed pieces that fit a 1280-byte IPv6 packet
 * (`INNER_UDX_FRAGMENT`), put together again on arrival.
 */
import { LinkInner, decodeUdxFragment, encodeUdxBatch, encodeUdxFragment } from '@nat/protocol';

/**
 * udx probes the path MTU toward the shim (loopback: 1500, udx's maximum), so its packets are
 * larger than a sealed datagram may be on a real path (and an ICE host socket is a udx socket,
 * which sets Don't Fragment). udx packets larger than this travel in pieces unless the path takes
 * loopback-sized datagrams: a sealed piece (this + 4 + 26 bytes of framing and tag, + 1 of the
 * ICE frame) fits in a 1280-byte IPv6 packet, the smallest MTU any IPv6 path has (RFC 8200
 * section 5), and so any IPv4 path udx works on.
 */
export const FRAGMENT_BYTES = 1180;
/** Packets being reassembled at most (the oldest is dropped: udx resends the whole packet). */
const MAX_REASSEMBLY = 64;
/**
 * udx acknowledges every data packet, so half of what crosses the shim are acks of a few dozen
 * bytes: by default udx packets that arrive in one event-loop turn travel together in one sealed
 * datagram of at most this many bytes of plaintext (well below udx's own full packets, so within
 * any path MTU udx works with; sealed and framed, still below the 576-byte IPv4 datagram every
 * host must accept, RFC 791).
 */
export const BATCH_BYTES = 512;
/** The batch on a loopback path: a dozen of udx's full packets in one datagram. */
export const LOOPBACK_BATCH_BYTES = 16 * 1024;

/** Gathers the streams' udx packets into sealed datagrams (see the module comment). */
export class UdxPacker {
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #batchTimer: NodeJS.Immediate | undefined;
  #nextPacketNumber = 0;
  readonly #flushSoon = (): void => {
    this.#batchTimer = undefined;
    this.flush();
  };

  constructor(
    private readonly limit: () => number,
    private readonly sendSealed: (inner: number, payload: Uint8Array) => void,
  ) {}

  /** A udx packet from the streams' socket, to the path. */
  push(packet: Buffer): void {
    const limit = this.limit();
    if (2 + packet.length > limit) {
      this.flush(); // keep udx's order
      if (packet.length > FRAGMENT_BYTES && limit < LOOPBACK_BATCH_BYTES) this.#sendPieces(packet);
      else this.sendSealed(LinkInner.Udx, packet);
      return;
    }
    if (this.#batchBytes + 2 + packet.length > limit) this.flush();
    this.#batch.push(packet);
    this.#batchBytes += 2 + packet.length;
    this.#batchTimer ??= setImmediate(this.#flushSoon);
  }

  /** Sends what is gathered now. */
  flush(): void {
    if (this.#batchTimer !== undefined) {
      clearImmediate(this.#batchTimer);
      this.#batchTimer = undefined;
    }
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const bytes = this.#batchBytes;
    this.#batchBytes = 0;
    if (batch.length === 1) {
      this.sendSealed(LinkInner.Udx, batch[0]!);
      return;
    }
    this.sendSealed(LinkInner.UdxBatch, encodeUdxBatch(batch, bytes));
  }

  /** Drops what is gathered (the link closed). */
  clear(): void {
    if (this.#batchTimer !== undefined) clearImmediate(this.#batchTimer);
    this.#batchTimer = undefined;
    this.#batch = [];
    this.#batchBytes = 0;
  }

  #sendPieces(packet: Buffer): void {
    const id = this.#nextPacketNumber;
    this.#nextPacketNumber = (id + 1) & 0xffff;
    const count = Math.ceil(packet.length / FRAGMENT_BYTES);
    for (let i = 0; i < count; i++) {
      this.sendSealed(LinkInner.UdxFragment, encodeUdxFragment(id, i, count, packet.subarray(i * FRAGMENT_BYTES, (i + 1) * FRAGMENT_BYTES)));
    }
  }
}

/** Puts the pieces of udx packets together again. */
export class UdxReassembly {
  readonly #packets = new Map<number, { pieces: (Buffer | undefined)[]; got: number }>();

  /**
   * An authentic piece (the plaintext with its inner type): the whole packet when this was its
   * last piece, `malformed` when the piece does not decode, else undefined.
   */
  push(plain: Buffer): Buffer | 'malformed' | undefined {
    if (plain.length < 6) return undefined;
    const piece = decodeUdxFragment(plain);
    if (piece === undefined) return 'malformed';
    const { id, index, count } = piece;
    let entry = this.#packets.get(id);
    if (entry === undefined || entry.pieces.length !== count) {
      // packet numbers wrap at 2^16: forget every packet more than MAX_REASSEMBLY numbers
      // behind this one, so a number's next use never meets a leftover piece of its last
      for (const old of this.#packets.keys()) if (((id - old) & 0xffff) > MAX_REASSEMBLY) this.#packets.delete(old);
      entry = { pieces: new Array<Buffer | undefined>(count).fill(undefined), got: 0 };
      this.#packets.delete(id);
      this.#packets.set(id, entry);
      if (this.#packets.size > MAX_REASSEMBLY) this.#packets.delete(this.#packets.keys().next().value!);
    }
    if (entry.pieces[index] !== undefined) return undefined;
    entry.pieces[index] = piece.bytes;
    if (++entry.got < count) return undefined;
    this.#packets.delete(id);
    return Buffer.concat(entry.pieces as Buffer[]);
  }
}
