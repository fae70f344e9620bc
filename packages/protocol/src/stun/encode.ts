import { randomFillSync } from 'node:crypto';
import { bytesAttribute } from '../attributes/primitives.js';
import { attributeName } from '../attributes/registry.js';
import { type AttributeEntry, writeU32 } from '../attributes/spec.js';
import { EncodeError } from '../errors.js';
import { HEADER_LENGTH, MAGIC_COOKIE, type StunClass, encodeMessageType } from './constants.js';
import { computeFingerprint } from './fingerprint.js';
import { computeIntegrity } from './integrity.js';

/** What a STUN message is made of, for {@link encodeStunMessage}. */
export interface StunMessageInit {
  readonly method: number;
  readonly class: StunClass;
  /**
   * 12 bytes (RFC 8489), or 16 bytes for a classic RFC 3489 message (no magic cookie). A fresh
   * random one is made when absent.
   */
  readonly transactionId?: Uint8Array;
  /** Attributes in wire order, made with `attr(Attr.X, value)` or `rawAttribute(type, bytes)`. */
  readonly attributes?: readonly AttributeEntry[];
  /** Encode a classic RFC 3489 message. Default: true when transactionId has 16 bytes. */
  readonly classic?: boolean;
}

/** How to finish the message: integrity, fingerprint, padding. */
export interface EncodeOptions {
  /** Key for MESSAGE-INTEGRITY (HMAC-SHA1), RFC 8489 section 14.5. */
  readonly integrity?: Uint8Array;
  /** Key for MESSAGE-INTEGRITY-SHA256, RFC 8489 section 14.6. */
  readonly integritySha256?: Uint8Array;
  /** Bytes of the SHA-256 MAC to send (16-32, a multiple of 4). Default 32. */
  readonly integritySha256Length?: number;
  /** Append FINGERPRINT (RFC 8489 section 14.7). */
  readonly fingerprint?: boolean;
  /**
   * The byte used to pad attribute values to 4 bytes. RFC 8489 section 14 says senders pad with
   * zeroes (the default) and receivers ignore the padding; RFC 5769's vectors pad with spaces.
   */
  readonly paddingByte?: number;
}

const MAX_BODY = 0xffff & ~3;

/** An attribute of any type with raw value bytes (for unregistered types, tests and proxies). */
export function rawAttribute(type: number, value: Uint8Array): AttributeEntry {
  return {
    spec: bytesAttribute(type, attributeName(type), 'raw') as AttributeEntry['spec'],
    value,
  };
}

const ID_POOL_SIZE = 12 * 512;
let idPool = new Uint8Array(0);
let idPoolOffset = ID_POOL_SIZE;

/** A fresh, cryptographically random 96-bit transaction id (RFC 8489 section 5). */
export function randomTransactionId(): Uint8Array {
  if (idPoolOffset + 12 > ID_POOL_SIZE) {
    idPool = randomFillSync(new Uint8Array(ID_POOL_SIZE));
    idPoolOffset = 0;
  }
  const id = idPool.slice(idPoolOffset, idPoolOffset + 12);
  idPoolOffset += 12;
  return id;
}

/**
 * Encodes a STUN message. Attributes are written in order, each padded to 4 bytes; then
 * MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT as asked, in the order RFC 8489
 * section 14 requires. Throws {@link EncodeError} for values that cannot be encoded.
 */
export function encodeStunMessage(init: StunMessageInit, options: EncodeOptions = {}): Uint8Array {
  const attributes = init.attributes ?? [];
  const classic = init.classic ?? init.transactionId?.length === 16;
  const idLength = classic ? 16 : 12;
  const transactionId = init.transactionId ?? (classic ? randomFillSync(new Uint8Array(16)) : randomTransactionId());
  if (transactionId.length !== idLength) {
    throw new EncodeError('BAD_VALUE', `transaction id of ${transactionId.length} bytes, expected ${idLength}`);
  }
  if (!Number.isInteger(init.method) || init.method < 0 || init.method > 0xfff) {
    throw new EncodeError('BAD_VALUE', `method ${init.method} is not a 12-bit value`);
  }
  const lengths = new Array<number>(attributes.length);
  let body = 0;
  for (let i = 0; i < attributes.length; i++) {
    const { spec, value } = attributes[i]!;
    const n = spec.encodedLength(value);
    if (n > 0xffff) throw new EncodeError('BAD_VALUE', `${spec.name}: value of ${n} bytes`);
    lengths[i] = n;
    body += 4 + ((n + 3) & ~3);
  }
  const shaLength = options.integritySha256Length ?? 32;
  if (options.integritySha256 && (shaLength < 16 || shaLength > 32 || shaLength % 4 !== 0)) {
    throw new EncodeError('BAD_VALUE', `MESSAGE-INTEGRITY-SHA256 length ${shaLength} is not 16-32 in steps of 4`);
  }
  const integrityAt = HEADER_LENGTH + body;
  if (options.integrity) body += 24;
  const sha256At = HEADER_LENGTH + body;
  if (options.integritySha256) body += 4 + shaLength;
  const fingerprintAt = HEADER_LENGTH + body;
  if (options.fingerprint) body += 8;
  if (body > MAX_BODY) throw new EncodeError('BAD_VALUE', `message body of ${body} bytes exceeds 65532`);

  const m = Buffer.allocUnsafe(HEADER_LENGTH + body);
  const type = encodeMessageType(init.method, init.class);
  m[0] = type >>> 8;
  m[1] = type & 0xff;
  m[2] = body >>> 8;
  m[3] = body & 0xff;
  if (classic) {
    m.set(transactionId, 4);
  } else {
    writeU32(m, 4, MAGIC_COOKIE);
    m.set(transactionId, 8);
  }
  const pad = options.paddingByte ?? 0;
  let p = HEADER_LENGTH;
  for (let i = 0; i < attributes.length; i++) {
    const { spec, value } = attributes[i]!;
    const n = lengths[i]!;
    m[p] = spec.type >>> 8;
    m[p + 1] = spec.type & 0xff;
    m[p + 2] = n >>> 8;
    m[p + 3] = n & 0xff;
    spec.write(value, m, p + 4);
    const padded = (n + 3) & ~3;
    if (padded !== n) m.fill(pad, p + 4 + n, p + 4 + padded);
    p += 4 + padded;
  }
  if (options.integrity) {
    m[p] = 0x00;
    m[p + 1] = 0x08;
    m[p + 2] = 0;
    m[p + 3] = 20;
    computeIntegrity(m, integrityAt, options.integrity, 'sha1', 20).copy(m, integrityAt + 4);
    p += 24;
  }
  if (options.integritySha256) {
    m[p] = 0x00;
    m[p + 1] = 0x1c;
    m[p + 2] = 0;
    m[p + 3] = shaLength;
    computeIntegrity(m, sha256At, options.integritySha256, 'sha256', shaLength).copy(m, sha256At + 4, 0, shaLength);
    p += 4 + shaLength;
  }
  if (options.fingerprint) {
    m[p] = 0x80;
    m[p + 1] = 0x28;
    m[p + 2] = 0;
    m[p + 3] = 4;
    writeU32(m, fingerprintAt + 4, computeFingerprint(m, fingerprintAt));
  }
  return m;
}
