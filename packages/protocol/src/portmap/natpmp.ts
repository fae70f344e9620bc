/**
 * NAT-PMP (RFC 6886) packets: the two requests a client sends and the responses a gateway
 * returns. Sans-I/O: bytes in, values out; every failure is a {@link DecodeError} or an
 * {@link EncodeError}.
 *
 * ```
 * request  external address (2 bytes):  vers=0 | op=0
 * response external address (12 bytes): vers=0 | op=128 | result(16) | epoch(32) | external IPv4
 * request  map (12 bytes):  vers=0 | op=1 UDP, 2 TCP | reserved(16) | internal port | suggested external port | lifetime(32)
 * response map (16 bytes):  vers=0 | op=128+op | result(16) | epoch(32) | internal port | mapped external port | lifetime(32)
 * ```
 */
import { formatIPv4 } from '../address.js';
import { DecodeError, EncodeError } from '../errors.js';

/** The port a NAT-PMP (and PCP) server listens on (RFC 6886 section 3.1, RFC 6887 section 19.1). */
export const NATPMP_SERVER_PORT = 5351;
/** The port a client listens on for the gateway's multicast address announcements (RFC 6886 section 3.2.1). */
export const NATPMP_CLIENT_PORT = 5350;
/** NAT-PMP's version number, 0. */
export const NATPMP_VERSION = 0;

/** The transport of a mapping, as both NAT-PMP and PCP name them. */
export type MappingProtocol = 'udp' | 'tcp';

/** NAT-PMP result codes (RFC 6886 section 3.5). */
export const NATPMP_RESULT = {
  SUCCESS: 0,
  UNSUPPORTED_VERSION: 1,
  NOT_AUTHORIZED: 2,
  NETWORK_FAILURE: 3,
  OUT_OF_RESOURCES: 4,
  UNSUPPORTED_OPCODE: 5,
} as const;

const RESULT_NAMES: Record<number, string> = {
  0: 'Success',
  1: 'Unsupported Version',
  2: 'Not Authorized/Refused',
  3: 'Network Failure',
  4: 'Out of resources',
  5: 'Unsupported opcode',
};

/** The RFC's name of a NAT-PMP result code. */
export function natPmpResultName(code: number): string {
  return RESULT_NAMES[code] ?? `result code ${code}`;
}

/** A decoded NAT-PMP response. */
export type NatPmpResponse =
  | {
      readonly op: 'external-address';
      readonly resultCode: number;
      /** Seconds Since Start of Epoch. */
      readonly epoch: number;
      /** Present when the result code is SUCCESS. */
      readonly externalAddress: string | undefined;
    }
  | {
      readonly op: 'map';
      readonly protocol: MappingProtocol;
      readonly resultCode: number;
      readonly epoch: number;
      readonly internalPort: number;
      /** Mapped external port (0 when the result is not SUCCESS). */
      readonly externalPort: number;
      /** Mapping lifetime in seconds granted by the gateway. */
      readonly lifetime: number;
    };

/** A NAT-PMP map request. */
export interface NatPmpMapRequest {
  readonly protocol: MappingProtocol;
  readonly internalPort: number;
  /** 0 lets the gateway choose (RFC 6886 section 3.3). */
  readonly suggestedExternalPort: number;
  /** Requested lifetime in seconds; 0 deletes the mapping (section 3.4). */
  readonly lifetime: number;
}

const checkPort = (what: string, p: number, allowZero: boolean): void => {
  if (!Number.isInteger(p) || p < (allowZero ? 0 : 1) || p > 0xffff) throw new EncodeError('BAD_VALUE', `${what} ${p} is not a port`);
};
const checkU32 = (what: string, v: number): void => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new EncodeError('BAD_VALUE', `${what} ${v} does not fit in 32 bits`);
};

/** The 2-byte external address request (RFC 6886 section 3.2). */
export function encodeNatPmpExternalAddressRequest(): Uint8Array {
  return Uint8Array.of(NATPMP_VERSION, 0);
}

/** The 12-byte map request (RFC 6886 section 3.3). */
export function encodeNatPmpMapRequest(r: NatPmpMapRequest): Uint8Array {
  // Deleting all mappings (internal port 0) is allowed with lifetime 0 only (section 3.4).
  checkPort('internal port', r.internalPort, r.lifetime === 0);
  checkPort('suggested external port', r.suggestedExternalPort, true);
  checkU32('lifetime', r.lifetime);
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  out[0] = NATPMP_VERSION;
  out[1] = r.protocol === 'udp' ? 1 : 2;
  v.setUint16(4, r.internalPort);
  v.setUint16(6, r.suggestedExternalPort);
  v.setUint32(8, r.lifetime);
  return out;
}

/**
 * Decodes a NAT-PMP response. Throws {@link DecodeError} for anything that is not one: wrong
 * version, a request opcode, an unknown opcode, or fewer bytes than the opcode needs. A
 * response with a non-zero result code may stop after the epoch (8 bytes).
 */
export function decodeNatPmpResponse(bytes: Uint8Array): NatPmpResponse {
  if (bytes.length < 4) throw new DecodeError('TRUNCATED', `NAT-PMP response of ${bytes.length} bytes, at least 4 needed`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[0]!;
  const op = bytes[1]!;
  if (version !== NATPMP_VERSION) throw new DecodeError('BAD_SYNTAX', `NAT-PMP version ${version}, expected 0`);
  if (op < 128) throw new DecodeError('BAD_SYNTAX', `opcode ${op} is a request, not a response`);
  const resultCode = v.getUint16(2);
  // An "unsupported version/opcode" answer may be only the 4-byte header (section 3.5).
  const epoch = bytes.length >= 8 ? v.getUint32(4) : 0;
  if (resultCode === NATPMP_RESULT.SUCCESS && bytes.length < 8) throw new DecodeError('TRUNCATED', 'NAT-PMP success response without an epoch');
  switch (op - 128) {
    case 0: {
      if (resultCode === 0 && bytes.length < 12) throw new DecodeError('TRUNCATED', `external address response of ${bytes.length} bytes, 12 needed`);
      return { op: 'external-address', resultCode, epoch, externalAddress: resultCode === 0 ? formatIPv4(bytes, 8) : undefined };
    }
    case 1:
    case 2: {
      if (resultCode === 0 && bytes.length < 16) throw new DecodeError('TRUNCATED', `map response of ${bytes.length} bytes, 16 needed`);
      const full = bytes.length >= 16;
      return {
        op: 'map',
        protocol: op === 129 ? 'udp' : 'tcp',
        resultCode,
        epoch,
        internalPort: full ? v.getUint16(8) : 0,
        externalPort: full ? v.getUint16(10) : 0,
        lifetime: full ? v.getUint32(12) : 0,
      };
    }
    default:
      throw new DecodeError('BAD_SYNTAX', `unknown NAT-PMP response opcode ${op}`);
  }
}
