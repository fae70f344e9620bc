/**
 * PCP (RFC 6887) packets: MAP and PEER requests and responses and the ANNOUNCE opcode, with
 * the options a client uses (PREFER_FAILURE, FILTER). THIRD_PARTY is decoded but never
 * encoded: this client only asks for mappings of its own address. Sans-I/O; every failure is a
 * {@link DecodeError} or an {@link EncodeError}.
 *
 * Addresses travel as 16 bytes; IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`, section 5).
 */
import { bytesToIp, ipToBytes } from '../address.js';
import { DecodeError, EncodeError } from '../errors.js';
import type { MappingProtocol } from './natpmp.js';

/** PCP's version number (RFC 6887 section 7.1). */
export const PCP_VERSION = 2;
/** Largest PCP message, in bytes (section 7). */
export const PCP_MAX_MESSAGE = 1100;

/** PCP opcodes (section 19.2). */
export const PCP_OPCODE = { ANNOUNCE: 0, MAP: 1, PEER: 2 } as const;
/** PCP option codes (section 19.3). */
export const PCP_OPTION = { THIRD_PARTY: 1, PREFER_FAILURE: 2, FILTER: 3 } as const;

/** PCP result codes (section 7.4). */
export const PCP_RESULT = {
  SUCCESS: 0,
  UNSUPP_VERSION: 1,
  NOT_AUTHORIZED: 2,
  MALFORMED_REQUEST: 3,
  UNSUPP_OPCODE: 4,
  UNSUPP_OPTION: 5,
  MALFORMED_OPTION: 6,
  NETWORK_FAILURE: 7,
  NO_RESOURCES: 8,
  UNSUPP_PROTOCOL: 9,
  USER_EX_QUOTA: 10,
  CANNOT_PROVIDE_EXTERNAL: 11,
  ADDRESS_MISMATCH: 12,
  EXCESSIVE_REMOTE_PEERS: 13,
} as const;

const RESULT_NAMES = Object.fromEntries(Object.entries(PCP_RESULT).map(([k, v]) => [v, k])) as Record<number, string>;

/** The RFC's name of a PCP result code (`NO_RESOURCES`, ...). */
export function pcpResultName(code: number): string {
  return RESULT_NAMES[code] ?? `result code ${code}`;
}

/**
 * Result codes that are short-lifetime errors (section 7.4: the lifetime field of such a
 * response says when to retry): the others are long-lifetime errors.
 */
export function pcpIsShortLifetimeError(code: number): boolean {
  return code === PCP_RESULT.NETWORK_FAILURE || code === PCP_RESULT.NO_RESOURCES || code === PCP_RESULT.USER_EX_QUOTA;
}

/** Length of the mapping nonce (section 11.1). */
export const PCP_NONCE_LENGTH = 12;

/** A PCP option as it travels (section 7.3). */
export interface PcpOption {
  readonly code: number;
  readonly data: Uint8Array;
}

/** A FILTER option's value (section 13.3). */
export interface PcpFilter {
  readonly prefixLength: number;
  readonly remotePeerPort: number;
  readonly remotePeerAddress: string;
}

/** A MAP request (section 11.1). */
export interface PcpMapRequest {
  readonly opcode: 'map';
  /** The client's own address, as the server will see it (section 8.1). */
  readonly clientAddress: string;
  /** Requested lifetime in seconds; 0 deletes (section 15). */
  readonly lifetime: number;
  readonly nonce: Uint8Array;
  /** 'all' is protocol 0 (every protocol), allowed only with internal port 0. */
  readonly protocol: MappingProtocol | 'all';
  readonly internalPort: number;
  /** 0: no preference. */
  readonly suggestedExternalPort: number;
  /** '' or undefined: no preference (the all-zeros address of the family, section 11.1). */
  readonly suggestedExternalAddress?: string;
  /** Fail instead of assigning another port (section 13.2). */
  readonly preferFailure?: boolean;
  readonly filters?: readonly PcpFilter[];
}

/** A PEER request (section 12.1). */
export interface PcpPeerRequest extends Omit<PcpMapRequest, 'opcode' | 'preferFailure' | 'filters'> {
  readonly opcode: 'peer';
  readonly remotePeerPort: number;
  readonly remotePeerAddress: string;
}

/** A decoded PCP response. */
export interface PcpResponse {
  readonly opcode: 'announce' | 'map' | 'peer';
  readonly resultCode: number;
  /** Granted lifetime (or, for an error, how long the error holds), seconds. */
  readonly lifetime: number;
  /** The server's Epoch Time (section 8.5). */
  readonly epoch: number;
  /** MAP and PEER only. */
  readonly nonce?: Uint8Array;
  readonly protocol?: MappingProtocol | 'all' | number;
  readonly internalPort?: number;
  readonly assignedExternalPort?: number;
  readonly assignedExternalAddress?: string;
  /** PEER only. */
  readonly remotePeerPort?: number;
  readonly remotePeerAddress?: string;
  readonly options: readonly PcpOption[];
}

/** What a PCP client can receive from a server that does not speak PCP (section 9). */
export interface PcpVersionMismatch {
  readonly opcode: 'unsupported-version';
  /** The version the server speaks (0 = NAT-PMP). */
  readonly serverVersion: number;
  readonly resultCode: number;
}

const protocolNumber = (p: MappingProtocol | 'all'): number => (p === 'udp' ? 17 : p === 'tcp' ? 6 : 0);
const protocolName = (n: number): MappingProtocol | 'all' | number => (n === 17 ? 'udp' : n === 6 ? 'tcp' : n === 0 ? 'all' : n);

/** 16 bytes of an address, IPv4 as IPv4-mapped IPv6. */
export function pcpAddressBytes(address: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = ipToBytes(address);
  } catch {
    throw new EncodeError('BAD_VALUE', `not an IP address: ${JSON.stringify(address)}`);
  }
  if (raw.length === 16) return raw;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(raw, 12);
  return out;
}

/** The text of a 16-byte PCP address: IPv4-mapped addresses as dotted quads. */
export function pcpAddressText(bytes: Uint8Array, offset: number): string {
  const a = bytes.subarray(offset, offset + 16);
  const mapped = a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff;
  return bytesToIp(mapped ? a.subarray(12) : a);
}

const isIPv4 = (address: string): boolean => !address.includes(':');

function checkCommon(r: PcpMapRequest | PcpPeerRequest): void {
  const port = (what: string, p: number): void => {
    if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new EncodeError('BAD_VALUE', `${what} ${p} is not a port`);
  };
  port('internal port', r.internalPort);
  port('suggested external port', r.suggestedExternalPort);
  if (!Number.isInteger(r.lifetime) || r.lifetime < 0 || r.lifetime > 0xffffffff)
    throw new EncodeError('BAD_VALUE', `lifetime ${r.lifetime} does not fit in 32 bits`);
  if (r.nonce.length !== PCP_NONCE_LENGTH) throw new EncodeError('BAD_VALUE', `nonce of ${r.nonce.length} bytes, ${PCP_NONCE_LENGTH} needed`);
  // Section 11.1: protocol 0 means all protocols and then the internal port must be 0.
  if (r.protocol === 'all' && r.internalPort !== 0) throw new EncodeError('BAD_VALUE', 'protocol "all" needs internal port 0');
  if (r.internalPort === 0 && r.lifetime !== 0 && r.protocol !== 'all')
    throw new EncodeError('BAD_VALUE', 'internal port 0 maps every port: use protocol "all"');
}

function writeHeader(out: Uint8Array, opcode: number, lifetime: number, clientAddress: string): void {
  out[0] = PCP_VERSION;
  out[1] = opcode & 0x7f; // R bit 0: a request
  new DataView(out.buffer, out.byteOffset).setUint32(4, lifetime);
  out.set(pcpAddressBytes(clientAddress), 8);
}

function writeOption(out: Uint8Array, o: number, code: number, data: Uint8Array): number {
  out[o] = code;
  out[o + 1] = 0;
  new DataView(out.buffer, out.byteOffset).setUint16(o + 2, data.length);
  out.set(data, o + 4);
  return o + 4 + ((data.length + 3) & ~3);
}

/** Encodes a MAP or PEER request (sections 7.1, 11.1, 12.1). */
export function encodePcpRequest(r: PcpMapRequest | PcpPeerRequest): Uint8Array {
  checkCommon(r);
  const peer = r.opcode === 'peer';
  const filters = r.opcode === 'map' ? (r.filters ?? []) : [];
  const preferFailure = r.opcode === 'map' && r.preferFailure === true;
  const size = 24 + (peer ? 56 : 36) + (preferFailure ? 4 : 0) + filters.length * 24;
  if (size > PCP_MAX_MESSAGE) throw new EncodeError('BAD_VALUE', `PCP request of ${size} bytes, at most ${PCP_MAX_MESSAGE}`);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  writeHeader(out, peer ? PCP_OPCODE.PEER : PCP_OPCODE.MAP, r.lifetime, r.clientAddress);
  out.set(r.nonce, 24);
  out[36] = protocolNumber(r.protocol);
  v.setUint16(40, r.internalPort);
  v.setUint16(42, r.suggestedExternalPort);
  const suggested = r.suggestedExternalAddress || (isIPv4(r.clientAddress) ? '0.0.0.0' : '::');
  out.set(pcpAddressBytes(suggested), 44);
  let o = 60;
  if (r.opcode === 'peer') {
    if (!Number.isInteger(r.remotePeerPort) || r.remotePeerPort < 1 || r.remotePeerPort > 0xffff) {
      throw new EncodeError('BAD_VALUE', `remote peer port ${r.remotePeerPort} is not a port`);
    }
    v.setUint16(60, r.remotePeerPort);
    out.set(pcpAddressBytes(r.remotePeerAddress), 64);
    o = 80;
  }
  if (preferFailure) o = writeOption(out, o, PCP_OPTION.PREFER_FAILURE, new Uint8Array(0));
  for (const f of filters) {
    const data = new Uint8Array(20);
    if (!Number.isInteger(f.prefixLength) || f.prefixLength < 0 || f.prefixLength > 128) throw new EncodeError('BAD_VALUE', `prefix length ${f.prefixLength}`);
    data[1] = isIPv4(f.remotePeerAddress) ? f.prefixLength + 96 : f.prefixLength;
    new DataView(data.buffer).setUint16(2, f.remotePeerPort);
    data.set(pcpAddressBytes(f.remotePeerAddress), 4);
    o = writeOption(out, o, PCP_OPTION.FILTER, data);
  }
  return out;
}

/**
 * Decodes a PCP response, or recognizes the answer of a server that only speaks an older
 * version (NAT-PMP answers a PCP request with version 0 and result code 1, section 9).
 * Throws {@link DecodeError} for anything else that is not a well-formed response.
 */
export function decodePcpResponse(bytes: Uint8Array): PcpResponse | PcpVersionMismatch {
  if (bytes.length < 4) throw new DecodeError('TRUNCATED', `PCP response of ${bytes.length} bytes, at least 4 needed`);
  const version = bytes[0]!;
  if (version !== PCP_VERSION) {
    // NAT-PMP: version 0, opcode 128 + op, 16-bit result code.
    if (version === 0 && (bytes[1]! & 0x80) !== 0) {
      return { opcode: 'unsupported-version', serverVersion: 0, resultCode: (bytes[2]! << 8) | bytes[3]! };
    }
    if (version === 1 || version > PCP_VERSION) {
      // A PCP server of another version answers UNSUPP_VERSION with its own version number.
      return { opcode: 'unsupported-version', serverVersion: version, resultCode: bytes.length >= 4 ? bytes[3]! : 0 };
    }
    throw new DecodeError('BAD_SYNTAX', `PCP version ${version}`);
  }
  if (bytes.length < 24) throw new DecodeError('TRUNCATED', `PCP response of ${bytes.length} bytes, at least 24 needed`);
  if (bytes.length > PCP_MAX_MESSAGE) throw new DecodeError('BAD_LENGTH', `PCP response of ${bytes.length} bytes, at most ${PCP_MAX_MESSAGE}`);
  if (bytes.length % 4 !== 0) throw new DecodeError('BAD_LENGTH', `PCP response of ${bytes.length} bytes, not a multiple of 4`);
  if ((bytes[1]! & 0x80) === 0) throw new DecodeError('BAD_SYNTAX', 'R bit clear: a request, not a response');
  const op = bytes[1]! & 0x7f;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const resultCode = bytes[3]!;
  const lifetime = v.getUint32(4);
  const epoch = v.getUint32(8);
  let o = 24;
  let body: Partial<PcpResponse> = {};
  let opcode: PcpResponse['opcode'];
  if (op === PCP_OPCODE.ANNOUNCE) opcode = 'announce';
  else if (op === PCP_OPCODE.MAP || op === PCP_OPCODE.PEER) {
    opcode = op === PCP_OPCODE.MAP ? 'map' : 'peer';
    const need = op === PCP_OPCODE.MAP ? 36 : 56;
    if (bytes.length < 24 + need) {
      // Section 7.2: an error response may carry only the header (e.g. MALFORMED_REQUEST).
      if (resultCode !== PCP_RESULT.SUCCESS && bytes.length === 24) return { opcode, resultCode, lifetime, epoch, options: [] };
      throw new DecodeError('TRUNCATED', `PCP ${opcode.toUpperCase()} response of ${bytes.length} bytes, ${24 + need} needed`);
    }
    body = {
      nonce: bytes.slice(24, 36),
      protocol: protocolName(bytes[36]!),
      internalPort: v.getUint16(40),
      assignedExternalPort: v.getUint16(42),
      assignedExternalAddress: pcpAddressText(bytes, 44),
    };
    o = 60;
    if (op === PCP_OPCODE.PEER) {
      body = { ...body, remotePeerPort: v.getUint16(60), remotePeerAddress: pcpAddressText(bytes, 64) };
      o = 80;
    }
  } else throw new DecodeError('BAD_SYNTAX', `unknown PCP opcode ${op}`);
  const options: PcpOption[] = [];
  while (o < bytes.length) {
    if (o + 4 > bytes.length) throw new DecodeError('TRUNCATED', 'PCP option header past the end');
    const code = bytes[o]!;
    const length = v.getUint16(o + 2);
    const padded = (length + 3) & ~3;
    if (o + 4 + padded > bytes.length) throw new DecodeError('TRUNCATED', `PCP option ${code} of ${length} bytes past the end`);
    options.push({ code, data: bytes.slice(o + 4, o + 4 + length) });
    o += 4 + padded;
  }
  return { opcode, resultCode, lifetime, epoch, options, ...body };
}

/** Encodes a response: what a PCP server sends (used by tests and simulators). */
export function encodePcpResponse(r: Omit<PcpResponse, 'options'> & { readonly options?: readonly PcpOption[] }): Uint8Array {
  const op = r.opcode === 'announce' ? 0 : r.opcode === 'map' ? 1 : 2;
  const bodyLength = op === 0 ? 0 : op === 1 ? 36 : 56;
  const optionsLength = (r.options ?? []).reduce((n, x) => n + 4 + ((x.data.length + 3) & ~3), 0);
  const out = new Uint8Array(24 + bodyLength + optionsLength);
  const v = new DataView(out.buffer);
  out[0] = PCP_VERSION;
  out[1] = 0x80 | op;
  out[3] = r.resultCode;
  v.setUint32(4, r.lifetime);
  v.setUint32(8, r.epoch);
  let o = 24;
  if (op !== 0) {
    if (r.nonce?.length !== PCP_NONCE_LENGTH) throw new EncodeError('BAD_VALUE', 'MAP/PEER response needs a 12-byte nonce');
    out.set(r.nonce, 24);
    const p = r.protocol ?? 0;
    out[36] = typeof p === 'number' ? p : protocolNumber(p);
    v.setUint16(40, r.internalPort ?? 0);
    v.setUint16(42, r.assignedExternalPort ?? 0);
    out.set(pcpAddressBytes(r.assignedExternalAddress ?? '::'), 44);
    o = 60;
    if (op === 2) {
      v.setUint16(60, r.remotePeerPort ?? 0);
      out.set(pcpAddressBytes(r.remotePeerAddress ?? '::'), 64);
      o = 80;
    }
  }
  for (const x of r.options ?? []) o = writeOption(out, o, x.code, x.data);
  return out;
}
