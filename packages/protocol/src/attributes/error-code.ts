import { errorReason } from '../stun/error-reasons.js';
import { utf8Length } from './primitives.js';
import { type AttributeSpec, badAttribute, badValue } from './spec.js';

/** The value of ERROR-CODE: a 300-699 code and its UTF-8 reason phrase. */
export interface ErrorCodeValue {
  readonly code: number;
  readonly reason: string;
}

const decoder = new TextDecoder('utf-8');
const encoder = new TextEncoder();
/** RFC 8489 section 14.8: the reason phrase is fewer than 128 characters (up to 763 bytes). */
const MAX_REASON_BYTES = 763;

/** Reads class (3 bits) and number (8 bits) as RFC 8489 section 14.8 lays them out. */
export function readErrorCode(name: string, m: Uint8Array, o: number): number {
  const cls = m[o + 2]! & 0x07;
  const number = m[o + 3]!;
  // RFC 8489 section 14.8: class 3-6, number 0-99.
  if (cls < 3 || cls > 6 || number > 99) throw badAttribute(name, `invalid code class ${cls} number ${number}`);
  return cls * 100 + number;
}

export function writeErrorCode(name: string, code: number, m: Uint8Array, o: number): void {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw badValue(name, `code ${code} is not 300-699`);
  m[o + 2] = Math.floor(code / 100);
  m[o + 3] = code % 100;
}

export function decodeReason(name: string, m: Uint8Array, o: number, length: number): string {
  if (length > MAX_REASON_BYTES) throw badAttribute(name, `reason phrase of ${length} bytes`);
  return decoder.decode(m.subarray(o, o + length));
}

export function reasonLength(name: string, reason: string): number {
  const n = utf8Length(reason);
  if (n > MAX_REASON_BYTES) throw badValue(name, `reason phrase of ${n} bytes`);
  return n;
}

export function writeReason(reason: string, m: Uint8Array, o: number): void {
  encoder.encodeInto(reason, m.subarray(o));
}

/** ERROR-CODE (0x0009), RFC 8489 section 14.8. */
export const errorCodeAttribute: AttributeSpec<ErrorCodeValue> = {
  type: 0x0009,
  name: 'ERROR-CODE',
  rfc: 'RFC 8489 section 14.8',
  decode(m, o, length) {
    if (length < 4) throw badAttribute(this.name, `length ${length} is too short`);
    return { code: readErrorCode(this.name, m, o), reason: decodeReason(this.name, m, o + 4, length - 4) };
  },
  encodedLength(value) {
    return 4 + reasonLength(this.name, value.reason);
  },
  write(value, m, o) {
    m[o] = 0;
    m[o + 1] = 0;
    writeErrorCode(this.name, value.code, m, o);
    writeReason(value.reason, m, o + 4);
  },
};

/** An ERROR-CODE value with the RFC's reason phrase. */
export function errorCode(code: number, reason = errorReason(code)): ErrorCodeValue {
  return { code, reason };
}
