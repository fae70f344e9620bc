import { type AttributeSpec, badAttribute, badValue, readU16, writeU16 } from './spec.js';

/** One entry of PASSWORD-ALGORITHM(S): an algorithm number and its parameters. */
export interface PasswordAlgorithmValue {
  /** 0x0001 MD5, 0x0002 SHA-256 (RFC 8489 section 18.5). */
  readonly algorithm: number;
  readonly parameters: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const pad4 = (n: number): number => (n + 3) & ~3;

function readOne(name: string, m: Uint8Array, o: number, end: number): [PasswordAlgorithmValue, number] {
  if (end - o < 4) throw badAttribute(name, 'truncated algorithm entry');
  const algorithm = readU16(m, o);
  const paramLength = readU16(m, o + 2);
  // RFC 8489 section 14.11: parameters are padded to a 32-bit boundary inside the attribute.
  if (o + 4 + paramLength > end) throw badAttribute(name, 'algorithm parameters run past the attribute');
  const parameters = paramLength === 0 ? EMPTY : m.subarray(o + 4, o + 4 + paramLength);
  return [{ algorithm, parameters }, o + 4 + pad4(paramLength)];
}

function entryLength(name: string, v: PasswordAlgorithmValue): number {
  if (!Number.isInteger(v.algorithm) || v.algorithm < 0 || v.algorithm > 0xffff) throw badValue(name, `bad algorithm ${v.algorithm}`);
  if (v.parameters.length > 0xffff) throw badValue(name, 'parameters too long');
  return 4 + pad4(v.parameters.length);
}

function writeOne(v: PasswordAlgorithmValue, m: Uint8Array, o: number): number {
  writeU16(m, o, v.algorithm);
  writeU16(m, o + 2, v.parameters.length);
  m.set(v.parameters, o + 4);
  const padded = pad4(v.parameters.length);
  m.fill(0, o + 4 + v.parameters.length, o + 4 + padded);
  return o + 4 + padded;
}

/** PASSWORD-ALGORITHM (0x001D), RFC 8489 section 14.12: the algorithm the client chose. */
export const passwordAlgorithmAttribute: AttributeSpec<PasswordAlgorithmValue> = {
  type: 0x001d,
  name: 'PASSWORD-ALGORITHM',
  rfc: 'RFC 8489 section 14.12',
  decode(m, o, length) {
    const [value] = readOne(this.name, m, o, o + length);
    return value;
  },
  encodedLength(value) {
    return entryLength(this.name, value);
  },
  write(value, m, o) {
    writeOne(value, m, o);
  },
};

/** PASSWORD-ALGORITHMS (0x8002), RFC 8489 section 14.11: the algorithms the server offers, in order of preference. */
export const passwordAlgorithmsAttribute: AttributeSpec<readonly PasswordAlgorithmValue[]> = {
  type: 0x8002,
  name: 'PASSWORD-ALGORITHMS',
  rfc: 'RFC 8489 section 14.11',
  decode(m, o, length) {
    const out: PasswordAlgorithmValue[] = [];
    const end = o + length;
    let p = o;
    while (p < end) {
      const [value, next] = readOne(this.name, m, p, end);
      out.push(value);
      p = next;
    }
    return out;
  },
  encodedLength(value) {
    let n = 0;
    for (const v of value) n += entryLength(this.name, v);
    return n;
  },
  write(value, m, o) {
    let p = o;
    for (const v of value) p = writeOne(v, m, p);
  },
};
