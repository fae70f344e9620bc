import { DecodeError, EncodeError } from '../errors.js';

/**
 * How one STUN attribute is read and written. The registry holds one of these per attribute type.
 *
 * Both directions work in place on the whole message buffer: `message` starts at the STUN header,
 * so bytes 4-19 hold the magic cookie and transaction id that the XOR-address attributes need
 * (RFC 8489 section 14.2). Decoding reads `length` bytes at `offset` and never past them.
 */
export interface AttributeSpec<T> {
  /** The 16-bit attribute type. */
  readonly type: number;
  /** The name the RFC gives it, e.g. `XOR-MAPPED-ADDRESS`. */
  readonly name: string;
  /** The RFC section that defines it. */
  readonly rfc: string;
  decode(message: Uint8Array, offset: number, length: number): T;
  /** Length of the encoded value, without padding. Throws EncodeError for values it cannot encode. */
  encodedLength(value: T): number;
  /** Writes the value (exactly `encodedLength(value)` bytes) at `offset`. */
  write(value: T, message: Uint8Array, offset: number): void;
}

/** A value to encode together with the attribute it belongs to; made by {@link attr}. */
export interface AttributeEntry {
  readonly spec: AttributeSpec<unknown>;
  readonly value: unknown;
}

/** Pairs an attribute with a value of its type, for {@link encodeStunMessage}. */
export function attr<T>(spec: AttributeSpec<T>, value: T): AttributeEntry {
  return { spec: spec as AttributeSpec<unknown>, value };
}

/** RFC 8489 section 7.3.1: attributes 0x0000-0x7FFF must be understood by the receiver. */
export function isComprehensionRequired(type: number): boolean {
  return type < 0x8000;
}

export function badAttribute(name: string, why: string): DecodeError {
  return new DecodeError('BAD_ATTRIBUTE', `${name}: ${why}`);
}

export function badValue(name: string, why: string): EncodeError {
  return new EncodeError('BAD_VALUE', `${name}: ${why}`);
}

export function expectLength(name: string, length: number, expected: number): void {
  if (length !== expected) throw badAttribute(name, `length ${length}, expected ${expected}`);
}

export function readU16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v & 0xff;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
