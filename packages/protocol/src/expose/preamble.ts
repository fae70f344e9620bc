import { DecodeError, EncodeError } from '../errors.js';
import { type TransportAddress, bytesToIp, ipToBytes } from '../address.js';

/**
 * The first bytes of every stream the server opens to an exposing client: what the stream
 * carries and between which addresses.
 *
 *     version (8) = 1 | kind (8): 1 TCP connection, 2 UDP datagrams | public port (16)
 *     source: family (8) 4|6, address (4|16), port (16)
 *     destination: family (8), address, port (16)
 *
 * For a TCP connection, source is the public client and destination the public address it
 * dialled; for a UDP stream both are the public address.
 */
export const STREAM_PREAMBLE_VERSION = 1;
export const StreamKind = { tcp: 1, udp: 2 } as const;
export type StreamKind = keyof typeof StreamKind;

export interface StreamPreamble {
  readonly kind: StreamKind;
  readonly publicPort: number;
  readonly source: TransportAddress;
  readonly destination: TransportAddress;
}

function addressBytes(a: TransportAddress): Uint8Array {
  const ip = ipToBytes(a.address);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new EncodeError('BAD_VALUE', `preamble: port ${a.port} out of range`);
  const out = Buffer.alloc(1 + ip.length + 2);
  out[0] = ip.length === 4 ? 4 : 6;
  out.set(ip, 1);
  out.writeUInt16BE(a.port, 1 + ip.length);
  return out;
}

export function encodeStreamPreamble(p: StreamPreamble): Uint8Array {
  const head = Buffer.alloc(4);
  head[0] = STREAM_PREAMBLE_VERSION;
  head[1] = StreamKind[p.kind];
  head.writeUInt16BE(p.publicPort, 2);
  return Buffer.concat([head, addressBytes(p.source), addressBytes(p.destination)]);
}

/** Reads one address at `off`; undefined when more bytes are needed. */
function readAddress(b: Uint8Array, off: number): { address: TransportAddress; next: number } | undefined {
  if (b.length < off + 1) return undefined;
  const fam = b[off];
  if (fam !== 4 && fam !== 6) throw new DecodeError('BAD_ATTRIBUTE', `preamble: address family ${fam}`);
  const len = fam === 4 ? 4 : 16;
  if (b.length < off + 1 + len + 2) return undefined;
  const ip = bytesToIp(b.subarray(off + 1, off + 1 + len));
  const port = (b[off + 1 + len]! << 8) | b[off + 2 + len]!;
  return { address: { family: fam === 4 ? 'IPv4' : 'IPv6', address: ip, port }, next: off + 3 + len };
}

/**
 * Decodes a preamble at the start of `bytes`: the preamble and how many bytes it took, or
 * undefined when `bytes` holds only part of it (at most 40 bytes are ever needed). Throws
 * DecodeError for a bad version, kind or family.
 */
export function decodeStreamPreamble(bytes: Uint8Array): { preamble: StreamPreamble; length: number } | undefined {
  if (bytes.length < 4) return undefined;
  if (bytes[0] !== STREAM_PREAMBLE_VERSION) throw new DecodeError('BAD_ATTRIBUTE', `preamble: version ${bytes[0]}`);
  const kind = bytes[1] === 1 ? 'tcp' : bytes[1] === 2 ? 'udp' : undefined;
  if (kind === undefined) throw new DecodeError('BAD_ATTRIBUTE', `preamble: kind ${bytes[1]}`);
  const publicPort = (bytes[2]! << 8) | bytes[3]!;
  const src = readAddress(bytes, 4);
  if (src === undefined) return undefined;
  const dst = readAddress(bytes, src.next);
  if (dst === undefined) return undefined;
  return { preamble: { kind, publicPort, source: src.address, destination: dst.address }, length: dst.next };
}
