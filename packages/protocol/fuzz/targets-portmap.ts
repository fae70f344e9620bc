/**
 * Fuzz targets of the port-mapping answers a gateway (or anything on the LAN) sends: PCP,
 * NAT-PMP and SSDP. One-shot decoders: DecodeError only, nothing read outside the datagram.
 */
import { isDeepStrictEqual } from 'node:util';
import { DecodeError, decodeNatPmpResponse, decodePcpResponse, decodeSsdpResponse, encodePcpResponse } from '../src/index.js';
import { type FuzzTarget, loadCorpus } from './harness.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const isDecodeError = (e: unknown): boolean => e instanceof DecodeError;

export const pcpTarget: FuzzTarget = {
  name: 'pcp',
  corpus: loadCorpus(CORPUS, 'pcp'),
  typed: isDecodeError,
  isolated: true,
  dictionary: ['\x02\x81\x00\x00', '\x02\x82\x00\x00', '\x00\x00\xff\xff'],
  run: (input) => decodePcpResponse(input),
  roundTrip(seed) {
    const r = decodePcpResponse(seed);
    if (r.opcode === 'unsupported-version') return;
    if (!isDeepStrictEqual(decodePcpResponse(encodePcpResponse(r)), r)) throw new Error('PCP response does not round-trip');
  },
};

export const natPmpTarget: FuzzTarget = {
  name: 'natpmp',
  corpus: loadCorpus(CORPUS, 'natpmp'),
  typed: isDecodeError,
  isolated: true,
  run: (input) => decodeNatPmpResponse(input),
};

export const ssdpTarget: FuzzTarget = {
  name: 'ssdp',
  corpus: loadCorpus(CORPUS, 'ssdp'),
  typed: isDecodeError,
  isolated: true,
  dictionary: ['\r\n', '\r\n\r\n', ':', 'LOCATION: ', 'ST: ', 'USN: ', 'http://', 'HTTP/1.1 200 OK', 'http://[::1]:80/', 'file:///'],
  run: (input) => decodeSsdpResponse(input),
};
