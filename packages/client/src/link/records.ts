/**
 * Stream protection of a peer link, sans-I/O: each udx stream's bytes, in each direction, are a
 * libsodium secretstream (XChaCha20-Poly1305, `crypto_secretstream_xchacha20poly1305`, the
 * construction @hyperswarm/secret-stream uses over udx too): a 24-byte header, then records of a
 * 3-byte big-endian ciphertext length and the ciphertext of at most {@link MAX_RECORD} bytes.
 * A record that does not authenticate, arrives out of order, or is replayed fails (secretstream
 * chains each record's nonce to the one before). The last record carries the FINAL tag, so an end
 * of stream that an attacker forged (a udx END) is told apart from the sender's.
 *
 * Each stream and direction has its own key, derived from the Noise transport key of that
 * direction and both udx stream ids ({@link streamKey}), so records of one stream cannot be
 * spliced into another.
 */
import { PeerLinkError } from './errors.js';
import { sodium } from './native.js';

/** Plaintext bytes in one record, at most. */
export const MAX_RECORD = 64 * 1024;
const LENGTH_BYTES = 3;
const HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES;
const ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES;
const STATE_BYTES = sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES;
const TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
const TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
const CONTEXT = Buffer.from('nat-peer-link/stream');

/**
 * The key of the bytes stream `fromId` sends to stream `toId`, under the Noise transport key of
 * that direction (the sender's `tx`, the receiver's `rx`): BLAKE2b-256 keyed with it.
 */
export function streamKey(directionKey: Uint8Array, fromId: number, toId: number): Buffer {
  const input = Buffer.alloc(CONTEXT.length + 8);
  CONTEXT.copy(input);
  input.writeUInt32BE(fromId >>> 0, CONTEXT.length);
  input.writeUInt32BE(toId >>> 0, CONTEXT.length + 4);
  const out = Buffer.alloc(32);
  sodium.crypto_generichash(out, input, directionKey);
  return out;
}

/** Seals one direction of a stream: the header with the first bytes, then records. */
export class RecordSealer {
  readonly #state = Buffer.alloc(STATE_BYTES);
  readonly #header: Buffer | undefined;
  #headerSent = false;
  #finished = false;

  constructor(key: Uint8Array) {
    this.#header = Buffer.alloc(HEADER_BYTES);
    sodium.crypto_secretstream_xchacha20poly1305_init_push(this.#state, this.#header, key);
  }

  /** The wire bytes of `plain` (split into records of at most {@link MAX_RECORD}); `final` ends the stream. */
  seal(plain: Uint8Array, final = false): Buffer {
    if (this.#finished) throw new Error('the sealed stream has ended');
    const records = Math.max(1, Math.ceil(plain.length / MAX_RECORD));
    const header = this.#headerSent ? 0 : HEADER_BYTES;
    const out = Buffer.allocUnsafe(header + plain.length + records * (LENGTH_BYTES + ABYTES));
    let at = 0;
    if (header > 0) {
      this.#header!.copy(out);
      this.#headerSent = true;
      at = header;
    }
    for (let i = 0; i < records; i++) {
      const m = plain.subarray(i * MAX_RECORD, (i + 1) * MAX_RECORD);
      const c = out.subarray(at + LENGTH_BYTES, at + LENGTH_BYTES + m.length + ABYTES);
      out.writeUIntBE(c.length, at, LENGTH_BYTES);
      const tag = final && i === records - 1 ? TAG_FINAL : TAG_MESSAGE;
      sodium.crypto_secretstream_xchacha20poly1305_push(this.#state, c, m, null, tag);
      at += LENGTH_BYTES + c.length;
    }
    if (final) this.#finished = true;
    return out;
  }
}

/**
 * Opens one direction of a stream from its wire bytes, in whatever chunks they arrive. Throws
 * {@link PeerLinkError} `TAMPERED` for a record that does not authenticate (altered, reordered,
 * replayed, under another key), an impossible length, or bytes after the FINAL record.
 */
export class RecordOpener {
  readonly #key: Uint8Array;
  readonly #state = Buffer.alloc(STATE_BYTES);
  readonly #tag = Buffer.alloc(1);
  #started = false;
  #ended = false;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** The ciphertext length of the record being gathered, once its length prefix arrived. */
  #length: number | undefined;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** True once the FINAL record was opened: the sender ended the stream. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes held waiting for the rest of their record (its length prefix included). */
  get buffered(): number {
    return this.#bytes + (this.#length === undefined ? 0 : LENGTH_BYTES);
  }

  /** The plaintexts of the records `chunk` completes (often none, or one). */
  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (!this.#started) {
        if (this.#bytes < HEADER_BYTES) return out;
        const header = this.#take(HEADER_BYTES);
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(this.#state, header, this.#key);
        this.#started = true;
        continue;
      }
      if (this.#length === undefined) {
        if (this.#bytes < LENGTH_BYTES) return out;
        const length = this.#take(LENGTH_BYTES).readUIntBE(0, LENGTH_BYTES);
        if (length < ABYTES || length > MAX_RECORD + ABYTES) throw new PeerLinkError('TAMPERED', `a stream record of impossible length ${length}`);
        this.#length = length;
      }
      const length = this.#length;
      if (this.#bytes < length) return out;
      if (this.#ended) throw new PeerLinkError('TAMPERED', 'bytes after the end of the stream');
      this.#length = undefined;
      const record = this.#take(length);
      const plain = Buffer.allocUnsafe(length - ABYTES);
      try {
        sodium.crypto_secretstream_xchacha20poly1305_pull(this.#state, plain, this.#tag, record, null);
      } catch (cause) {
        throw new PeerLinkError('TAMPERED', 'a stream record did not authenticate (altered, replayed, reordered or forged)', { cause });
      }
      if (this.#tag[0] === TAG_FINAL) this.#ended = true;
      if (plain.length > 0) out.push(plain);
    }
  }

  /** The next `n` bytes (held ones: `n` <= this.#bytes). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#bytes -= n;
      return out;
    }
    const all = this.#chunks.length === 1 ? first : Buffer.concat(this.#chunks, this.#bytes);
    const out = all.subarray(0, n);
    this.#chunks = all.length > n ? [all.subarray(n)] : [];
    this.#bytes -= n;
    return out;
  }
}
