/**
 * Packet protection of a peer link, sans-I/O: every datagram after the handshake is a Noise
 * transport message (Noise spec section 5.1, ChaChaPoly: 4 zero bytes + the 64-bit little-endian
 * counter as the nonce) carrying its counter in clear, as WireGuard does (its section 5.4.6), so
 * that datagrams may arrive lost, late or reordered. A sliding window of counters rejects
 * replays (the anti-replay window of RFC 6479). Keys rotate with Noise's `Rekey()` (section
 * 11.3, `REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros)[0..32]`) every {@link REKEY_INTERVAL}
 * messages: the key of epoch `n` is `Rekey` applied `n` times, and the receiver derives it from the
 * counter, so no rekey message is ever needed.
 */
import { sodium } from './native.js';

/** Bytes in front of the ciphertext: the 64-bit counter. */
export const COUNTER_BYTES = 8;
/** The Poly1305 tag. */
export const TAG_BYTES = 16;
/** Messages under one key before `Rekey()`. */
export const REKEY_INTERVAL = 2 ** 20;
/** Counters this far behind the highest seen are still accepted once (if not seen). */
export const REPLAY_WINDOW = 4096;

/** Why {@link PacketOpener.open} refused a datagram. */
export type DropReason = 'malformed' | 'tampered' | 'replayed';

const MAX_NONCE = Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Noise's `REKEY(k)`. */
export function rekey(key: Uint8Array): Buffer {
  const out = Buffer.alloc(32 + TAG_BYTES);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, Buffer.alloc(32), null, null, MAX_NONCE, key);
  return out.subarray(0, 32);
}

/** How many epochs ahead of the current one a receiver derives a key for. */
const EPOCHS_AHEAD = 4;

/**
 * The keys of a direction by epoch. Looking a key up never changes which epoch is current:
 * {@link EpochKeys.advance} does, and the opener calls it only for a packet that authenticated,
 * so that a forged counter cannot rotate the keys away from the sender's.
 */
class EpochKeys {
  #epoch = 0;
  #key: Buffer;
  #previous: Buffer | undefined;
  /** Keys of the epochs after the current one, derived on demand: `#ahead[i]` is epoch `#epoch + 1 + i`. */
  #ahead: Buffer[] = [];
  constructor(key: Uint8Array) {
    this.#key = Buffer.from(key);
  }
  /** The key of `epoch`: the current one, the one before, or up to {@link EPOCHS_AHEAD} later. */
  key(epoch: number): Buffer | undefined {
    if (epoch === this.#epoch) return this.#key;
    if (epoch === this.#epoch - 1) return this.#previous;
    if (epoch < this.#epoch || epoch > this.#epoch + EPOCHS_AHEAD) return undefined;
    const i = epoch - this.#epoch - 1;
    while (this.#ahead.length <= i) this.#ahead.push(rekey(this.#ahead.at(-1) ?? this.#key));
    return this.#ahead[i];
  }
  /** Makes `epoch` (whose key {@link key} gave) the current one; the one before it stays usable. */
  advance(epoch: number): void {
    const steps = epoch - this.#epoch;
    if (steps <= 0 || steps > this.#ahead.length) return;
    this.#previous = steps === 1 ? this.#key : this.#ahead[steps - 2];
    this.#key = this.#ahead[steps - 1]!;
    this.#ahead = this.#ahead.slice(steps);
    this.#epoch = epoch;
  }
}

/** The sending half: seals plaintexts under increasing counters. */
export class PacketSealer {
  readonly #keys: EpochKeys;
  readonly #nonce = Buffer.alloc(12);
  #counter: number;
  /** `firstCounter` (default 0) lets a test start late in the counter space. */
  constructor(key: Uint8Array, firstCounter = 0) {
    this.#keys = new EpochKeys(key);
    this.#counter = firstCounter;
  }
  /** Messages sealed so far. */
  get counter(): number {
    return this.#counter;
  }
  /** `prefix` bytes of room, the counter, then the ciphertext and tag of `plain`. */
  seal(plain: Uint8Array, prefix: number): Buffer {
    const n = this.#counter++;
    const epoch = Math.floor(n / REKEY_INTERVAL);
    const key = this.#keys.key(epoch);
    if (key === undefined) throw new Error('unreachable: sender epochs only grow');
    this.#keys.advance(epoch);
    const out = Buffer.allocUnsafe(prefix + COUNTER_BYTES + plain.length + TAG_BYTES);
    const hi = Math.floor(n / 2 ** 32);
    const lo = n >>> 0;
    out.writeUInt32BE(hi, prefix);
    out.writeUInt32BE(lo, prefix + 4);
    this.#nonce.writeUInt32LE(lo, 4);
    this.#nonce.writeUInt32LE(hi, 8);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(prefix + COUNTER_BYTES), plain, null, null, this.#nonce, key);
    return out;
  }
}

/** The receiving half: opens sealed datagrams, refusing tampered and replayed ones. */
export class PacketOpener {
  readonly #keys: EpochKeys;
  readonly #nonce = Buffer.alloc(12);
  readonly #seen = new Uint32Array(REPLAY_WINDOW / 32);
  #highest = -1;
  constructor(key: Uint8Array) {
    this.#keys = new EpochKeys(key);
  }

  /** The plaintext of `sealed` (the counter and ciphertext), or why it was refused. */
  open(sealed: Uint8Array): Buffer | DropReason {
    if (sealed.length < COUNTER_BYTES + TAG_BYTES) return 'malformed';
    const view = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
    const hi = view.readUInt32BE(0);
    const lo = view.readUInt32BE(4);
    if (hi >= 2 ** 21) return 'tampered'; // beyond 2^53: never sent
    const n = hi * 2 ** 32 + lo;
    if (this.#isReplay(n)) return 'replayed';
    const epoch = Math.floor(n / REKEY_INTERVAL);
    const key = this.#keys.key(epoch);
    if (key === undefined) return 'tampered';
    this.#nonce.writeUInt32LE(lo, 4);
    this.#nonce.writeUInt32LE(hi, 8);
    const plain = Buffer.allocUnsafe(sealed.length - COUNTER_BYTES - TAG_BYTES);
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plain, null, view.subarray(COUNTER_BYTES), null, this.#nonce, key);
    } catch {
      return 'tampered';
    }
    // state changes only now that the packet authenticated: a forged counter moves neither
    // the epoch (its keys) nor the replay window
    this.#keys.advance(epoch);
    this.#markSeen(n);
    return plain;
  }

  #isReplay(n: number): boolean {
    if (n > this.#highest) return false;
    if (n <= this.#highest - REPLAY_WINDOW) return true;
    const bit = n % REPLAY_WINDOW;
    return (this.#seen[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  // Only after authentication (RFC 6479 section 2): a forged counter must not move the window.
  #markSeen(n: number): void {
    if (n > this.#highest) {
      const from = this.#highest + 1;
      if (n - from >= REPLAY_WINDOW) this.#seen.fill(0);
      else for (let i = from; i < n; i++) this.#seen[(i % REPLAY_WINDOW) >>> 5]! &= ~(1 << ((i % REPLAY_WINDOW) & 31));
      this.#highest = n;
    }
    const bit = n % REPLAY_WINDOW;
    this.#seen[bit >>> 5]! |= 1 << (bit & 31);
  }
}
