import { DecodeError, EncodeError } from '../errors.js';
import { type TransportAddress, bytesToIp, ipToBytes } from '../address.js';

/**
 * UDP datagrams on a stream, each with the remote address (the sender's, towards the client;
 * the destination's, back towards the server):
 *
 *     length (16): bytes after this field | family (8) 4|6 | address (4|16) | port (16) | payload
 *
 * so a payload can be at most 65,535 - 19 bytes (IPv6): every UDP payload over IPv4 fits but
 * the very largest IPv6 ones.
 */
export const MAX_EXPOSED_DATAGRAM = 65_535 - 19;

/** Encodes one datagram (header and payload in one buffer). Throws EncodeError when it is too big. */
export function encodeExposedDatagram(remote: TransportAddress, payload: Uint8Array): Uint8Array {
  const ip = ipToBytes(remote.address);
  const len = 1 + ip.length + 2 + payload.length;
  if (len > 0xffff) throw new EncodeError('BAD_VALUE', `datagram of ${payload.length} bytes too large`);
  const b = Buffer.allocUnsafe(2 + len);
  b.writeUInt16BE(len, 0);
  b[2] = ip.length === 4 ? 4 : 6;
  b.set(ip, 3);
  b.writeUInt16BE(remote.port, 3 + ip.length);
  b.set(payload, 5 + ip.length);
  return b;
}

/** Sans-I/O reader of datagrams from stream bytes. */
export class ExposedDatagramReader {
  #buf: Buffer = Buffer.alloc(0);

  /** Pushes stream bytes; calls `on` per complete datagram. Throws DecodeError on a bad family or length. */
  push(chunk: Uint8Array, on: (remote: TransportAddress, payload: Uint8Array) => void): void {
    let b = this.#buf.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length) : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    while (b.length - off >= 2) {
      const len = b.readUInt16BE(off);
      if (b.length - off - 2 < len) break;
      const fam = b[off + 2];
      const alen = fam === 4 ? 4 : fam === 6 ? 16 : 0;
      if (alen === 0 || len < 1 + alen + 2) throw new DecodeError('BAD_ATTRIBUTE', `datagram: bad family ${fam} or length ${len}`);
      const ip = bytesToIp(b.subarray(off + 3, off + 3 + alen));
      const port = b.readUInt16BE(off + 3 + alen);
      on({ family: alen === 4 ? 'IPv4' : 'IPv6', address: ip, port }, b.subarray(off + 5 + alen, off + 2 + len));
      off += 2 + len;
    }
    b = b.subarray(off);
    this.#buf = b.length === 0 ? Buffer.alloc(0) : Buffer.from(b); // keep only the partial tail
  }
}
