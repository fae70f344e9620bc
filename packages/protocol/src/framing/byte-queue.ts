/**
 * Internal buffering shared by the stream framers (`StunStreamFramer` and
 * `Rfc4571Framer`); not exported from the package.
 *
 * Received chunks are kept as a list, never concatenated on arrival, so every byte is copied at
 * most once whatever the chunking: a frame that lies within one chunk is handed out as a view
 * (subarray) of that chunk, and only a frame that spans chunks is copied, once, into a fresh
 * array of exactly its size.
 *
 * @module
 */

/** Compact the chunk list once this many consumed slots have piled up at its front. */
const COMPACT_AFTER = 64;

/** A first-in first-out queue of bytes made of the chunks a stream delivered. */
export class ByteQueue {
  /** Chunks not yet fully consumed start at index `#head`; slots before it are released. */
  #chunks: (Uint8Array | undefined)[] = [];
  #head = 0;
  /** Read position inside `#chunks[#head]`. */
  #offset = 0;
  #length = 0;

  /** Number of bytes queued and not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** Appends a chunk. The queue keeps a reference: the caller must not modify it afterwards. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The byte at `index` (0 = the oldest unread byte). The caller ensures `index < length`. */
  byteAt(index: number): number {
    let i = index + this.#offset;
    for (let k = this.#head; k < this.#chunks.length; k++) {
      const chunk = this.#chunks[k]!;
      if (i < chunk.length) return chunk[i]!;
      i -= chunk.length;
    }
    throw new RangeError('ByteQueue.byteAt past the end');
  }

  /** The big-endian 16-bit value at `index`. The caller ensures `index + 2 <= length`. */
  uint16At(index: number): number {
    return (this.byteAt(index) << 8) | this.byteAt(index + 1);
  }

  /** Drops `n` bytes from the front. The caller ensures `n <= length`. */
  skip(n: number): void {
    let left = n;
    while (left > 0) {
      const chunk = this.#chunks[this.#head]!;
      const step = Math.min(chunk.length - this.#offset, left);
      this.#offset += step;
      left -= step;
      if (this.#offset === chunk.length) this.#advance();
    }
    this.#length -= n;
  }

  /**
   * Removes and returns the first `n` bytes: a view of the current chunk when they lie within
   * it, otherwise one fresh copy. The caller ensures `n <= length`.
   */
  take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[this.#head]!;
    const start = this.#offset;
    if (first.length - start >= n) {
      this.#offset += n;
      this.#length -= n;
      if (this.#offset === first.length) this.#advance();
      return first.subarray(start, start + n);
    }
    const out = new Uint8Array(n);
    let written = 0;
    while (written < n) {
      const chunk = this.#chunks[this.#head]!;
      const step = Math.min(chunk.length - this.#offset, n - written);
      out.set(chunk.subarray(this.#offset, this.#offset + step), written);
      written += step;
      this.#offset += step;
      if (this.#offset === chunk.length) this.#advance();
    }
    this.#length -= n;
    return out;
  }

  /** Forgets every queued byte. */
  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#length = 0;
  }

  /** Moves past the fully consumed head chunk, compacting the list now and then. */
  #advance(): void {
    this.#chunks[this.#head] = undefined;
    this.#head++;
    this.#offset = 0;
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#chunks.length) {
      // Amortised O(1) per chunk: at least half the list is dead slots when this runs.
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
