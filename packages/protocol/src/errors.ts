/**
 * The protocol layer's one error type. Every failure to decode or encode bytes, or to parse a
 * textual form (an address, an ICE candidate line), is a {@link ProtocolError} with a stable
 * `code`; decoding hostile input never throws anything else.
 */
export type ProtocolErrorCode =
  /** fewer bytes than the header or an attribute declares */
  | 'TRUNCATED'
  /** a length field that is impossible (not a multiple of 4, larger than allowed, ...) */
  | 'BAD_LENGTH'
  /** the two most significant bits of a STUN message are not zero */
  | 'NOT_STUN'
  /** an attribute value that does not follow its RFC's grammar */
  | 'BAD_ATTRIBUTE'
  /** FINGERPRINT is not the last attribute, or an attribute appears where the RFC forbids */
  | 'BAD_ORDER'
  /** a ChannelData channel number outside 0x4000-0x4FFF */
  | 'BAD_CHANNEL'
  /** a textual form (address, candidate line, SDP attribute) that does not parse */
  | 'BAD_SYNTAX'
  /** a value that cannot be encoded (too long, out of range) */
  | 'BAD_VALUE'
  /** a string rejected by the PRECIS OpaqueString profile (RFC 8265) */
  | 'BAD_STRING';

export class ProtocolError extends Error {
  override readonly name: string = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Thrown by every decoder when the bytes are not a valid message or attribute. */
export class DecodeError extends ProtocolError {
  override readonly name = 'DecodeError';
}

/** Thrown when a value cannot be encoded (for example a USERNAME longer than 513 bytes). */
export class EncodeError extends ProtocolError {
  override readonly name = 'EncodeError';
}

/** Thrown when a textual form (an address, an ICE candidate line) does not parse. */
export class ParseError extends ProtocolError {
  override readonly name = 'ParseError';
}
