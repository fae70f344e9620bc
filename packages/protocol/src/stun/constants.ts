/** RFC 8489 section 5: the fixed value in bytes 4-7 of every (non-classic) STUN message. */
export const MAGIC_COOKIE = 0x2112a442;
/** RFC 8489 section 5: every STUN message starts with a 20-byte header. */
export const HEADER_LENGTH = 20;
/** RFC 8489 section 14.7: FINGERPRINT is the CRC-32 of the message XORed with this value. */
export const FINGERPRINT_XOR = 0x5354554e;

/** The two class bits of a STUN message type (RFC 8489 section 5). */
export const StunClass = {
  Request: 0b00,
  Indication: 0b01,
  SuccessResponse: 0b10,
  ErrorResponse: 0b11,
} as const;
export type StunClass = (typeof StunClass)[keyof typeof StunClass];

/**
 * STUN methods (IANA "STUN Methods" registry): RFC 8489 Binding, RFC 3489 Shared Secret, RFC 8656
 * TURN methods and RFC 6062 TURN-TCP methods.
 */
export const StunMethod = {
  Binding: 0x001,
  /** RFC 3489 only; reserved by RFC 8489. */
  SharedSecret: 0x002,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
  Connect: 0x00a,
  ConnectionBind: 0x00b,
  ConnectionAttempt: 0x00c,
} as const;
export type StunMethod = (typeof StunMethod)[keyof typeof StunMethod];

const METHOD_NAMES = new Map<number, string>(Object.entries(StunMethod).map(([k, v]) => [v, k]));
const CLASS_NAMES = ['Request', 'Indication', 'SuccessResponse', 'ErrorResponse'] as const;

/** Name of a method, or `0x...` for one not in the registry. */
export function methodName(method: number): string {
  return METHOD_NAMES.get(method) ?? `0x${method.toString(16).padStart(3, '0')}`;
}

/** Name of a class. */
export function className(cls: StunClass): string {
  return CLASS_NAMES[cls];
}

/**
 * The 14-bit message type: RFC 8489 section 5 interleaves the two class bits (C1 at bit 8, C0 at
 * bit 4) between the 12 method bits M11..M0.
 */
export function encodeMessageType(method: number, cls: StunClass): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 0b01) << 4) | ((cls & 0b10) << 7);
}

/** The method of a 14-bit message type. */
export function methodOfType(type: number): number {
  return (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
}

/** The class of a 14-bit message type. */
export function classOfType(type: number): StunClass {
  return (((type >> 4) & 0b01) | ((type >> 7) & 0b10)) as StunClass;
}
