import { attributeName, attributeSpec } from '../attributes/registry.js';
import { type AttributeSpec, isComprehensionRequired } from '../attributes/spec.js';
import { DecodeError } from '../errors.js';
import { HEADER_LENGTH, MAGIC_COOKIE, type StunClass, classOfType, className, methodName, methodOfType } from './constants.js';

const TYPE_MESSAGE_INTEGRITY = 0x0008;
const TYPE_MESSAGE_INTEGRITY_SHA256 = 0x001c;
const TYPE_FINGERPRINT = 0x8028;

/** Where one attribute sits in the message: its type, and its value's offset and length. */
export interface AttributePosition {
  readonly type: number;
  /** Offset of the value (after the 4-byte attribute header) from the start of the message. */
  readonly offset: number;
  readonly length: number;
}

/**
 * A decoded STUN message: a view over the bytes it came from. Decoding checks the header and
 * the attribute framing only; attribute values are decoded when asked for, so a server pays only
 * for what it reads. Attributes are never copied: byte-valued attributes are views of `bytes`.
 */
export class StunMessage {
  /** Exactly the message's bytes (a view of the input). */
  readonly bytes: Uint8Array;
  /** The 14-bit message type. */
  readonly type: number;
  readonly method: number;
  readonly class: StunClass;
  /**
   * True for a classic RFC 3489 message: bytes 4-7 are not the magic cookie, and the transaction id
   * is the 16 bytes 4-19 (RFC 3489 section 11.1).
   */
  readonly classic: boolean;
  /** Flat [type, valueOffset, length] triples, in wire order. */
  private readonly positions: number[];
  /** Offset of the MESSAGE-INTEGRITY attribute header, or -1. */
  readonly integrityOffset: number;
  /** Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, or -1. */
  readonly integritySha256Offset: number;
  /** Offset of the FINGERPRINT attribute header, or -1. */
  readonly fingerprintOffset: number;

  /** @internal use {@link decodeStunMessage} */
  constructor(
    bytes: Uint8Array,
    type: number,
    classic: boolean,
    positions: number[],
    integrityOffset: number,
    integritySha256Offset: number,
    fingerprintOffset: number,
  ) {
    this.bytes = bytes;
    this.type = type;
    this.method = methodOfType(type);
    this.class = classOfType(type);
    this.classic = classic;
    this.positions = positions;
    this.integrityOffset = integrityOffset;
    this.integritySha256Offset = integritySha256Offset;
    this.fingerprintOffset = fingerprintOffset;
  }

  /** The transaction id: 12 bytes (RFC 8489) or 16 bytes (classic RFC 3489), a view. */
  get transactionId(): Uint8Array {
    return this.classic ? this.bytes.subarray(4, 20) : this.bytes.subarray(8, 20);
  }

  /**
   * The transaction id as a lower-case hex string of bytes 4-19 (cookie included), a convenient
   * key for matching responses to requests that works for classic and modern messages alike.
   */
  get transactionKey(): string {
    let s = '';
    for (let i = 4; i < 20; i++) s += (this.bytes[i]! < 16 ? '0' : '') + this.bytes[i]!.toString(16);
    return s;
  }

  /** Number of attributes read (attributes after MESSAGE-INTEGRITY are ignored, RFC 8489 section 14.5). */
  get attributeCount(): number {
    return this.positions.length / 3;
  }

  /** The attributes in wire order. */
  attributes(): AttributePosition[] {
    const out: AttributePosition[] = [];
    for (let i = 0; i < this.positions.length; i += 3) {
      out.push({ type: this.positions[i]!, offset: this.positions[i + 1]!, length: this.positions[i + 2]! });
    }
    return out;
  }

  /** Whether an attribute of this type (or spec) is present. */
  has(typeOrSpec: number | AttributeSpec<unknown>): boolean {
    const type = typeof typeOrSpec === 'number' ? typeOrSpec : typeOrSpec.type;
    for (let i = 0; i < this.positions.length; i += 3) if (this.positions[i] === type) return true;
    return false;
  }

  /** The raw value bytes (a view) of the first attribute of a type. */
  raw(type: number): Uint8Array | undefined {
    for (let i = 0; i < this.positions.length; i += 3) {
      if (this.positions[i] === type) {
        const o = this.positions[i + 1]!;
        return this.bytes.subarray(o, o + this.positions[i + 2]!);
      }
    }
    return undefined;
  }

  /**
   * Decodes the first attribute of the spec's type, or returns undefined when absent. Throws
   * {@link DecodeError} when the value does not follow its RFC's grammar.
   */
  get<T>(spec: AttributeSpec<T>): T | undefined {
    const p = this.positions;
    for (let i = 0; i < p.length; i += 3) {
      if (p[i] === spec.type) return spec.decode(this.bytes, p[i + 1]!, p[i + 2]!);
    }
    return undefined;
  }

  /** Decodes every attribute of the spec's type (e.g. several XOR-PEER-ADDRESS in CreatePermission). */
  getAll<T>(spec: AttributeSpec<T>): T[] {
    const out: T[] = [];
    const p = this.positions;
    for (let i = 0; i < p.length; i += 3) {
      if (p[i] === spec.type) out.push(spec.decode(this.bytes, p[i + 1]!, p[i + 2]!));
    }
    return out;
  }

  /**
   * Comprehension-required attributes (0x0000-0x7FFF) this receiver does not understand: a
   * server answers a request that has any with 420 and UNKNOWN-ATTRIBUTES (RFC 8489 section 7.3.1).
   * `understood` defaults to "is in the registry"; a STUN-only server passes its own narrower set.
   */
  unknownComprehensionRequired(understood: (type: number) => boolean = (t) => attributeSpec(t) !== undefined): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.positions.length; i += 3) {
      const t = this.positions[i]!;
      if (isComprehensionRequired(t) && !understood(t) && !out.includes(t)) out.push(t);
    }
    return out;
  }

  /** A plain description for logs and `--json` output: names, and decoded values where they decode. */
  describe(): { method: string; class: string; classic: boolean; transactionId: string; attributes: { name: string; value: unknown }[] } {
    const attributes = this.attributes().map(({ type, offset, length }) => {
      const spec = attributeSpec(type);
      let value: unknown;
      try {
        value = spec ? spec.decode(this.bytes, offset, length) : Buffer.from(this.bytes.subarray(offset, offset + length)).toString('hex');
      } catch (e) {
        value = { error: (e as Error).message };
      }
      if (value instanceof Uint8Array) value = Buffer.from(value).toString('hex');
      if (typeof value === 'bigint') value = value.toString();
      return { name: attributeName(type), value };
    });
    return {
      method: methodName(this.method),
      class: className(this.class),
      classic: this.classic,
      transactionId: Buffer.from(this.transactionId).toString('hex'),
      attributes,
    };
  }
}

/** Options for {@link decodeStunMessage}. */
export interface DecodeOptions {
  /** Accept classic RFC 3489 messages (no magic cookie). Default true. */
  readonly allowClassic?: boolean;
}

/**
 * Decodes one STUN message that fills `bytes` exactly (a UDP datagram, or a frame cut from a
 * stream). Throws {@link DecodeError} (and nothing else) when the bytes are not a well-formed STUN
 * message. Never reads outside `bytes` and never allocates in proportion to an unchecked length.
 */
export function decodeStunMessage(bytes: Uint8Array, options?: DecodeOptions): StunMessage {
  const n = bytes.length;
  if (n < HEADER_LENGTH) throw new DecodeError('TRUNCATED', `${n} bytes is shorter than a STUN header`);
  // RFC 8489 section 5: the most significant 2 bits of every STUN message are zeroes.
  if ((bytes[0]! & 0xc0) !== 0) throw new DecodeError('NOT_STUN', 'the first two bits are not zero');
  const type = ((bytes[0]! << 8) | bytes[1]!) & 0x3fff;
  const length = (bytes[2]! << 8) | bytes[3]!;
  if ((length & 3) !== 0) throw new DecodeError('BAD_LENGTH', `message length ${length} is not a multiple of 4`);
  if (HEADER_LENGTH + length > n) throw new DecodeError('TRUNCATED', `header declares ${length} bytes, ${n - HEADER_LENGTH} present`);
  if (HEADER_LENGTH + length < n) throw new DecodeError('BAD_LENGTH', `header declares ${length} bytes, ${n - HEADER_LENGTH} present`);
  const cookie = ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0;
  const classic = cookie !== MAGIC_COOKIE;
  if (classic && options?.allowClassic === false) throw new DecodeError('NOT_STUN', 'no magic cookie (a classic RFC 3489 message)');

  const positions: number[] = [];
  let integrity = -1;
  let integritySha256 = -1;
  let fingerprint = -1;
  let p = HEADER_LENGTH;
  while (p < n) {
    if (n - p < 4) throw new DecodeError('TRUNCATED', `attribute header at offset ${p} is cut short`);
    const t = (bytes[p]! << 8) | bytes[p + 1]!;
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    const padded = (len + 3) & ~3;
    if (p + 4 + padded > n) {
      throw new DecodeError('TRUNCATED', `attribute ${attributeName(t)} at offset ${p} declares ${len} bytes past the message end`);
    }
    if (fingerprint >= 0) {
      // RFC 8489 section 14.7: FINGERPRINT, when present, is the last attribute.
      throw new DecodeError('BAD_ORDER', `attribute ${attributeName(t)} follows FINGERPRINT`);
    }
    if (t === TYPE_FINGERPRINT) {
      if (len !== 4) throw new DecodeError('BAD_ATTRIBUTE', `FINGERPRINT: length ${len}, expected 4`);
      fingerprint = p;
      positions.push(t, p + 4, len);
    } else if (integritySha256 >= 0) {
      // RFC 8489 section 14.6: after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT counts.
    } else if (t === TYPE_MESSAGE_INTEGRITY_SHA256) {
      if (len < 16 || len > 32 || len % 4 !== 0) {
        throw new DecodeError('BAD_ATTRIBUTE', `MESSAGE-INTEGRITY-SHA256: length ${len}, expected 16-32 in steps of 4`);
      }
      integritySha256 = p;
      positions.push(t, p + 4, len);
    } else if (integrity >= 0) {
      // RFC 8489 section 14.5: attributes after MESSAGE-INTEGRITY, other than
      // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, are ignored.
    } else if (t === TYPE_MESSAGE_INTEGRITY) {
      if (len !== 20) throw new DecodeError('BAD_ATTRIBUTE', `MESSAGE-INTEGRITY: length ${len}, expected 20`);
      integrity = p;
      positions.push(t, p + 4, len);
    } else {
      positions.push(t, p + 4, len);
    }
    p += 4 + padded;
  }
  return new StunMessage(bytes, type, classic, positions, integrity, integritySha256, fingerprint);
}

/**
 * True when `bytes` may be a STUN message: long enough, the top two bits zero, the length a
 * multiple of 4 that matches, and (unless `allowClassic`) the magic cookie. A cheap test for
 * demultiplexing (RFC 8489 section 6.3 / RFC 7983), not a full decode.
 */
export function looksLikeStun(bytes: Uint8Array, allowClassic = false): boolean {
  if (bytes.length < HEADER_LENGTH || (bytes[0]! & 0xc0) !== 0) return false;
  const length = (bytes[2]! << 8) | bytes[3]!;
  if ((length & 3) !== 0 || HEADER_LENGTH + length !== bytes.length) return false;
  if (allowClassic) return true;
  return bytes[4] === 0x21 && bytes[5] === 0x12 && bytes[6] === 0xa4 && bytes[7] === 0x42;
}
