import { EncodeError } from '../errors.js';
import { type TransportAddress, ipToBytes } from '../address.js';

/**
 * The PROXY protocol version 2 header (HAProxy's proxy-protocol.txt, section 2.2): a binary
 * header a proxy sends first on a connection so that the server learns the original source and
 * destination addresses.
 *
 *     signature (12) \r\n\r\n\0\r\nQUIT\n | ver_cmd (8) 0x2_ | fam (8) | len (16) | addresses
 *
 * ver_cmd 0x21 = version 2, PROXY (0x20 = LOCAL: no addresses follow). fam: high nibble address
 * family (1 AF_INET, 2 AF_INET6), low nibble transport (1 STREAM, 2 DGRAM). Addresses: for
 * IPv4 src(4) dst(4) src_port(2) dst_port(2) = 12 bytes, for IPv6 16+16+2+2 = 36 bytes, all
 * in network byte order.
 */
export const PROXY_V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** The header for a connection from `source` to `destination` (same family), or LOCAL when omitted. */
export function encodeProxyV2Header(transport: 'tcp' | 'udp', source?: TransportAddress, destination?: TransportAddress): Uint8Array {
  if (source === undefined || destination === undefined) {
    const b = Buffer.alloc(16);
    b.set(PROXY_V2_SIGNATURE, 0);
    b[12] = 0x20; // v2 LOCAL
    b[13] = 0x00; // AF_UNSPEC, UNSPEC
    return b;
  }
  const src = ipToBytes(source.address);
  const dst = ipToBytes(destination.address);
  if (src.length !== dst.length) throw new EncodeError('BAD_VALUE', 'PROXY v2: source and destination are of different families');
  const addrLen = src.length * 2 + 4;
  const b = Buffer.alloc(16 + addrLen);
  b.set(PROXY_V2_SIGNATURE, 0);
  b[12] = 0x21;
  b[13] = ((src.length === 4 ? 0x1 : 0x2) << 4) | (transport === 'tcp' ? 0x1 : 0x2);
  b.writeUInt16BE(addrLen, 14);
  b.set(src, 16);
  b.set(dst, 16 + src.length);
  b.writeUInt16BE(source.port, 16 + 2 * src.length);
  b.writeUInt16BE(destination.port, 18 + 2 * src.length);
  return b;
}
