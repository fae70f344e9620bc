import { DecodeError } from '../errors.js';
import { type TransportAddress, bytesToIp, ipToBytes } from '../address.js';
import type { OutboundRefusal, OutboundTarget } from './outbound.js';

/**
 * The server side of SOCKS version 5 (RFC 1928), as much as a local CONNECT proxy needs: the
 * method negotiation (only "no authentication required", 0x00, is offered), the request, and the
 * reply. Sans-I/O: each parser takes the bytes received so far and returns undefined while more
 * are needed.
 *
 *     greeting: VER=5 | NMETHODS | METHODS (1-255)            answer: VER=5 | METHOD (0xFF: none acceptable)
 *     request:  VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT
 *     reply:    VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT
 */
export const SOCKS_VERSION = 5;
export const SOCKS_NO_AUTH = 0x00;
export const SOCKS_NO_ACCEPTABLE_METHOD = 0xff;

/** CMD values (RFC 1928 section 4). */
export const SocksCommand = { connect: 1, bind: 2, udpAssociate: 3 } as const;

/** REP values (RFC 1928 section 6). */
export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;
export type SocksReply = (typeof SocksReply)[keyof typeof SocksReply];

/** Parses the method-selection message: the methods offered and its length. Throws DecodeError for a version other than 5 or no method. */
export function parseSocksGreeting(bytes: Uint8Array): { methods: number[]; length: number } | undefined {
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== SOCKS_VERSION) throw new DecodeError('BAD_ATTRIBUTE', `SOCKS version ${bytes[0]} (only SOCKS5 is served)`);
  const n = bytes[1]!;
  if (n === 0) throw new DecodeError('BAD_LENGTH', 'SOCKS greeting offers no method');
  if (bytes.length < 2 + n) return undefined;
  return { methods: [...bytes.subarray(2, 2 + n)], length: 2 + n };
}

/** The method-selection answer: no authentication when the client offered it, else 0xFF (the client then closes). */
export function encodeSocksMethod(methods: readonly number[]): Uint8Array {
  return Uint8Array.of(SOCKS_VERSION, methods.includes(SOCKS_NO_AUTH) ? SOCKS_NO_AUTH : SOCKS_NO_ACCEPTABLE_METHOD);
}

/**
 * A parsed request: the command and target, or (for an address type this side does not know) the
 * reply to send before closing.
 */
export type SocksRequest =
  | { readonly ok: true; readonly command: number; readonly target: OutboundTarget; readonly length: number }
  | { readonly ok: false; readonly reply: SocksReply; readonly message: string };

/** Parses a request (RFC 1928 section 4). Throws DecodeError for a version other than 5. */
export function parseSocksRequest(bytes: Uint8Array): SocksRequest | undefined {
  if (bytes.length < 5) return undefined;
  if (bytes[0] !== SOCKS_VERSION) throw new DecodeError('BAD_ATTRIBUTE', `SOCKS request version ${bytes[0]}`);
  const command = bytes[1]!;
  const atyp = bytes[3];
  let host: string;
  let off: number;
  if (atyp === 1 || atyp === 4) {
    const len = atyp === 1 ? 4 : 16;
    if (bytes.length < 4 + len + 2) return undefined;
    host = bytesToIp(bytes.subarray(4, 4 + len));
    off = 4 + len;
  } else if (atyp === 3) {
    const len = bytes[4]!;
    if (bytes.length < 5 + len + 2) return undefined;
    host = Buffer.from(bytes.subarray(5, 5 + len)).toString('utf8');
    off = 5 + len;
  } else return { ok: false, reply: SocksReply.addressTypeNotSupported, message: `address type ${atyp}` };
  const port = (bytes[off]! << 8) | bytes[off + 1]!;
  return { ok: true, command, target: { host, port }, length: off + 2 };
}

/** Encodes a reply; `bound` defaults to 0.0.0.0:0 (as after a failure). */
export function encodeSocksReply(reply: SocksReply, bound?: TransportAddress): Uint8Array {
  const ip = ipToBytes(bound?.address ?? '0.0.0.0');
  const out = Buffer.alloc(4 + ip.length + 2);
  out[0] = SOCKS_VERSION;
  out[1] = reply;
  out[2] = 0;
  out[3] = ip.length === 4 ? 1 : 4;
  out.set(ip, 4);
  out.writeUInt16BE(bound?.port ?? 0, 4 + ip.length);
  return out;
}

/**
 * The SOCKS reply for an outbound refusal: policy refusals (the server's flag off, a denied
 * target, caps, the rate limit) are 0x02 "connection not allowed by ruleset"; unreachable network
 * 0x03, unreachable or unresolvable host 0x04, refused 0x05, timeout 0x06 "TTL expired" (the
 * closest code RFC 1928 has), anything else 0x01.
 */
export function socksReplyOf(reason: OutboundRefusal): SocksReply {
  switch (reason) {
    case 'network-unreachable':
      return SocksReply.networkUnreachable;
    case 'host-unreachable':
      return SocksReply.hostUnreachable;
    case 'connection-refused':
      return SocksReply.connectionRefused;
    case 'timeout':
      return SocksReply.ttlExpired;
    case 'failed':
      return SocksReply.generalFailure;
    default:
      return SocksReply.notAllowed;
  }
}
