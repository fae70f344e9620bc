/**
 * Fuzz targets of the text formats the network feeds: signalling messages (WebSocket text frames)
 * and ICE candidate lines (carried inside them). Both fail only with ParseError; whatever parses
 * formats back to text that parses to the same value.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  ParseError,
  decodeSignallingMessage,
  encodeSignallingMessage,
  formatCandidate,
  parseCandidate,
  tryDecodeSignallingMessage,
  tryParseSignallingMessage,
} from '../src/index.js';
import { type FuzzTarget, loadCorpus } from './harness.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const isParseError = (e: unknown): boolean => e instanceof ParseError;
const utf8 = new TextDecoder();

const SIGNALLING_TYPES = [
  'challenge',
  'register',
  'registered',
  'offer',
  'answer',
  'candidate',
  'end-of-candidates',
  'bye',
  'claim-name',
  'resolve-name',
  'name',
  'error',
  'ping',
  'pong',
];

/** JSON objects of a real message type with random fields (a seed's fields overwritten with random values). */
const signallingObjects = fc
  .tuple(
    fc.constantFrom(...SIGNALLING_TYPES),
    fc.dictionary(
      fc.constantFrom('v', 'id', 'to', 'from', 'sdp', 'candidate', 'code', 'peerId', 'nonce', 'name', 'ref', 'message', 'ufrag', '__proto__', 'constructor'),
      fc.jsonValue({ maxDepth: 3 }),
    ),
  )
  .map(([type, fields]) => new TextEncoder().encode(JSON.stringify({ v: 1, type, ...fields })));

export const signallingTarget: FuzzTarget = {
  name: 'signalling',
  corpus: loadCorpus(CORPUS, 'signalling'),
  typed: isParseError,
  dictionary: ['"', '{', '}', '[', ']', ',', ':', '\\u0000', '\\ud800', '"v":1', '"type":"offer"', '"id":"', 'null', '1e999', '-0', '"__proto__":{}'],
  generated: signallingObjects,
  run(input) {
    const text = utf8.decode(input);
    const tried = tryDecodeSignallingMessage(text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (value !== undefined && tryParseSignallingMessage(value).ok !== tried.ok) throw new Error('tryParse and tryDecode disagree');
    const message = decodeSignallingMessage(text);
    if (!tried.ok) throw new Error('decodeSignallingMessage accepted what tryDecodeSignallingMessage refused');
    const again = decodeSignallingMessage(encodeSignallingMessage(message));
    if (!isDeepStrictEqual(again, message)) throw new Error('a signalling message does not round-trip');
    return message;
  },
};

export const iceCandidateTarget: FuzzTarget = {
  name: 'ice-candidate',
  corpus: loadCorpus(CORPUS, 'ice-candidate'),
  typed: isParseError,
  dictionary: [
    ' ',
    '  ',
    'candidate:',
    'a=',
    ' typ ',
    'host',
    'srflx',
    'relay',
    ' raddr ',
    ' rport ',
    ' tcptype ',
    'passive',
    'udp',
    'TCP',
    '::ffff:',
    '.local',
    '\r\n',
    '4294967296',
    '65536',
  ],
  run(input) {
    const line = utf8.decode(input);
    const candidate = parseCandidate(line);
    const again = parseCandidate(formatCandidate(candidate));
    if (!isDeepStrictEqual(again, candidate)) throw new Error(`candidate does not round-trip: ${JSON.stringify(line)}`);
    return candidate;
  },
};
