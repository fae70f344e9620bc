import { type TransportAddress, bytesToIp, canonicalIp, ipFamily } from '../address.js';
import { DecodeError } from '../errors.js';
import { PROXY_V2_SIGNATURE } from './proxy-v2.js';

/**
 * Decoding the PROXY protocol header a load balancer sends first on a connection (HAProxy's
 * proxy-protocol.txt): version 2 (binary, section 2.2) and version 1 (text, section 2.1).
 * Incremental and sans-I/O: feed it what arrived so far; it answers `need-more`, or the header
 * with the bytes that follow it, or throws a {@link DecodeError}. It never reads past the buffer
 * and never waits for more than `maxLength` bytes.
 */

/** What a PROXY header says. `source`/`destination` are absent for LOCAL, UNKNOWN and non-IP families. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `proxy`: relayed for a client (use `source`); `local`: the balancer's own connection (health check). */
  readonly command: 'proxy' | 'local';
  readonly transport: 'tcp' | 'udp' | 'unspec';
  readonly source?: TransportAddress;
  readonly destination?: TransportAddress;
}

export type ProxyHeaderResult =
  { readonly kind: 'need-more' } | { readonly kind: 'header'; readonly header: ProxyHeader; readonly length: number; readonly rest: Uint8Array };

/** Version 1 headers are at most 107 bytes, CRLF included (section 2.1). */
export const PROXY_V1_MAX_LENGTH = 107;
/** The default cap on a whole header: v2's 16 bytes, IPv6 addresses and a few TLVs. */
export const PROXY_HEADER_DEFAULT_MAX = 1024;

const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "

function prefixMatches(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** True when `bytes` (possibly only the first few of a connection) begin like a PROXY header of either version. */
export function looksLikeProxyHeader(bytes: Uint8Array): boolean {
  return bytes.length > 0 && (prefixMatches(bytes, PROXY_V2_SIGNATURE) || prefixMatches(bytes, V1_PREFIX));
}

/**
 * Decodes the PROXY header at the start of `bytes`. Throws DecodeError: BAD_SYNTAX (not a PROXY
 * header, or a v1 line that does not parse), BAD_VALUE (an unknown version, command, family or
 * transport), BAD_LENGTH (longer than `maxLength`, or an address block shorter than its family needs).
 */
export function decodeProxyHeader(bytes: Uint8Array, maxLength = PROXY_HEADER_DEFAULT_MAX): ProxyHeaderResult {
  if (bytes.length === 0) return { kind: 'need-more' };
  if (prefixMatches(bytes, PROXY_V2_SIGNATURE)) return decodeV2(bytes, maxLength);
  if (prefixMatches(bytes, V1_PREFIX)) return decodeV1(bytes, Math.min(maxLength, PROXY_V1_MAX_LENGTH));
  throw new DecodeError('BAD_SYNTAX', 'not a PROXY protocol header (neither the v2 signature nor "PROXY ")');
}

function done(header: ProxyHeader, bytes: Uint8Array, length: number): ProxyHeaderResult {
  return { kind: 'header', header, length, rest: bytes.subarray(length) };
}

function decodeV2(bytes: Uint8Array, maxLength: number): ProxyHeaderResult {
  if (bytes.length < 16) return { kind: 'need-more' };
  const verCmd = bytes[12]!;
  if (verCmd >> 4 !== 2) throw new DecodeError('BAD_VALUE', `PROXY v2: version ${verCmd >> 4}, expected 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new DecodeError('BAD_VALUE', `PROXY v2: unknown command ${cmd}`);
  const fam = bytes[13]! >> 4;
  const proto = bytes[13]! & 0x0f;
  if (fam > 3 || proto > 2) throw new DecodeError('BAD_VALUE', `PROXY v2: unknown family/transport byte 0x${bytes[13]!.toString(16)}`);
  const len = (bytes[14]! << 8) | bytes[15]!;
  const total = 16 + len;
  if (total > maxLength) throw new DecodeError('BAD_LENGTH', `PROXY v2: a ${total}-byte header is over the ${maxLength}-byte cap`);
  if (bytes.length < total) return { kind: 'need-more' };
  const transport = proto === 1 ? 'tcp' : proto === 2 ? 'udp' : 'unspec';
  // LOCAL: the receiver uses the connection's own endpoints (the addresses, if any, are ignored).
  if (cmd === 0) return done({ version: 2, command: 'local', transport }, bytes, total);
  const size = fam === 1 ? 4 : fam === 2 ? 16 : 0;
  // AF_UNSPEC and AF_UNIX carry no IP address: the real connection endpoints stand.
  if (size === 0) return done({ version: 2, command: 'proxy', transport }, bytes, total);
  if (len < 2 * size + 4) throw new DecodeError('BAD_LENGTH', `PROXY v2: ${len} address bytes, family ${fam} needs ${2 * size + 4}`);
  const family = size === 4 ? 'IPv4' : 'IPv6';
  const at = 16 + 2 * size;
  const source = { family, address: bytesToIp(bytes.subarray(16, 16 + size)), port: (bytes[at]! << 8) | bytes[at + 1]! } as const;
  const destination = { family, address: bytesToIp(bytes.subarray(16 + size, at)), port: (bytes[at + 2]! << 8) | bytes[at + 3]! } as const;
  return done({ version: 2, command: 'proxy', transport, source, destination }, bytes, total);
}

const PORT_RE = /^(0|[1-9]\d{0,4})$/;

function decodeV1(bytes: Uint8Array, maxLength: number): ProxyHeaderResult {
  let end = -1;
  const limit = Math.min(bytes.length, maxLength);
  for (let i = V1_PREFIX.length; i + 1 < limit; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end < 0) {
    if (bytes.length < maxLength) return { kind: 'need-more' };
    throw new DecodeError('BAD_LENGTH', `PROXY v1: no CRLF within ${maxLength} bytes`);
  }
  let line = '';
  for (let i = 0; i < end; i++) {
    const c = bytes[i]!;
    if (c < 0x20 || c > 0x7e) throw new DecodeError('BAD_SYNTAX', 'PROXY v1: a byte that is not printable ASCII');
    line += String.fromCharCode(c);
  }
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return done({ version: 1, command: 'proxy', transport: 'unspec' }, bytes, end + 2);
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) {
    throw new DecodeError('BAD_SYNTAX', `PROXY v1: expected "PROXY TCP4|TCP6 SRC DST SPORT DPORT", got ${JSON.stringify(line.slice(0, 60))}`);
  }
  const family = parts[1] === 'TCP4' ? 'IPv4' : 'IPv6';
  const [src, dst, sport, dport] = parts.slice(2) as [string, string, string, string];
  if (ipFamily(src) !== family || ipFamily(dst) !== family) throw new DecodeError('BAD_SYNTAX', `PROXY v1: addresses that are not ${family}`);
  if (!PORT_RE.test(sport) || !PORT_RE.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) {
    throw new DecodeError('BAD_SYNTAX', 'PROXY v1: a port that is not 0-65535');
  }
  const source = { family, address: canonicalIp(src), port: Number(sport) } as const;
  const destination = { family, address: canonicalIp(dst), port: Number(dport) } as const;
  return done({ version: 1, command: 'proxy', transport: 'tcp', source, destination }, bytes, end + 2);
}
