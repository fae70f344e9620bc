/**
 * Fuzz targets of the framing layer: ChannelData, the STUN/ChannelData stream framer and the
 * RFC 4571 framer. The stream framers are fed in random chunks and drained after each one; they
 * must never hold more than one frame's worth below their limit (a declared length is checked
 * before its bytes are waited for), and what they hand out plus what they hold is exactly what
 * was pushed.
 */
import { DecodeError, Rfc4571Framer, StunStreamFramer, decodeChannelData, encodeChannelData, readChannelDataLength, readChannelNumber } from '../src/index.js';
import { type FuzzTarget, inChunks, loadCorpus } from './harness.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const isDecodeError = (e: unknown): boolean => e instanceof DecodeError;
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export const channelDataTarget: FuzzTarget = {
  name: 'channel-data',
  corpus: loadCorpus(CORPUS, 'channel-data'),
  typed: isDecodeError,
  isolated: true,
  run(input) {
    const quick = readChannelNumber(input);
    let decoded;
    try {
      decoded = decodeChannelData(input);
    } catch (error) {
      // the hot-path check may accept nothing the full decoder refuses
      if (quick !== undefined) throw new Error(`readChannelNumber accepted 0x${quick.toString(16)} but decodeChannelData threw`);
      throw error;
    }
    if (quick !== undefined && (quick !== decoded.channel || readChannelDataLength(input) !== decoded.data.length)) {
      throw new Error('readChannelNumber/readChannelDataLength disagree with decodeChannelData');
    }
    return decoded;
  },
  roundTrip(seed) {
    const d = decodeChannelData(seed);
    for (const padded of [false, true]) {
      const again = decodeChannelData(encodeChannelData(d.channel, d.data, { padded }));
      if (again.channel !== d.channel || !sameBytes(again.data, d.data)) throw new Error('ChannelData does not round-trip');
    }
  },
};

/** Runs a framer over chunks: frames out, buffered length checked after every drain. */
function drainFramer<F>(
  input: Uint8Array,
  cuts: readonly number[],
  framer: { push(c: Uint8Array): void; next(): F | undefined; readonly bufferedLength: number },
  bytesOf: (f: F) => Uint8Array,
  bound: number,
): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let pushed = 0;
  let out = 0;
  inChunks(input, cuts, (chunk) => {
    framer.push(chunk);
    pushed += chunk.length;
    for (let f = framer.next(); f !== undefined; f = framer.next()) {
      const bytes = bytesOf(f);
      frames.push(bytes);
      out += bytes.length;
    }
    if (framer.bufferedLength >= bound) throw new Error(`framer holds ${framer.bufferedLength} bytes after a drain (bound ${bound})`);
  });
  if (pushed !== input.length) throw new Error('harness fed a wrong byte count');
  return frames.concat([Uint8Array.of(out & 0xff)]);
}

/** Limits chosen by the input's last byte, so the fuzzer explores small limits too. */
const stunLimits = (input: Uint8Array): { maxStunMessageLength?: number; maxChannelDataLength?: number; legacyChannelNumbers?: boolean } => {
  const knob = input.length === 0 ? 0 : input[input.length - 1]!;
  if (knob % 3 === 0) return {};
  return { maxStunMessageLength: 20 + ((knob * 7) % 600), maxChannelDataLength: 4 + ((knob * 13) % 1500), legacyChannelNumbers: knob % 2 === 0 };
};

export const stunStreamTarget: FuzzTarget = {
  name: 'stun-stream',
  corpus: loadCorpus(CORPUS, 'stun-stream'),
  typed: isDecodeError,
  run(input, cuts) {
    const limits = stunLimits(input);
    const framer = new StunStreamFramer(limits);
    const bound = Math.max(limits.maxStunMessageLength ?? 20 + 0xffff, limits.maxChannelDataLength ?? 65540, 4);
    try {
      const frames = drainFramer(input, cuts, framer, (f) => f.bytes, bound);
      // nothing lost, nothing invented: the frames and what is held are the input
      const held = framer.takeBuffered();
      const joined = Buffer.concat([...frames.slice(0, -1), held]);
      if (!sameBytes(joined, input)) throw new Error('stream framer frames plus held bytes differ from the input');
      return frames.length;
    } catch (error) {
      if (error instanceof DecodeError) {
        if (framer.bufferedLength !== 0 || framer.error !== error) throw new Error('a failed stream framer still holds bytes or forgot its error');
        try {
          framer.push(Uint8Array.of(0));
        } catch (again) {
          if (again !== error) throw new Error('a failed stream framer throws another error on push');
        }
      }
      throw error;
    }
  },
  roundTrip(seed) {
    const framer = new StunStreamFramer();
    framer.push(seed);
    const frames = [...framer];
    if (frames.length === 0 || framer.bufferedLength !== 0) throw new Error('a valid stream is not cut into whole frames');
    for (const f of frames) if (f.kind === 'channel-data') decodeChannelData(f.bytes);
  },
};

export const rfc4571Target: FuzzTarget = {
  name: 'rfc4571',
  corpus: loadCorpus(CORPUS, 'rfc4571'),
  typed: isDecodeError,
  run(input, cuts) {
    const knob = input.length === 0 ? 0 : input[0]!;
    const max = knob % 2 === 0 ? 0xffff : (knob * 37) % 2000;
    const framer = new Rfc4571Framer({ maxPacketLength: max });
    const frames = drainFramer(input, cuts, framer, (p) => p, max + 2);
    // every packet came with a 2-byte prefix: the packets and the prefixes cannot exceed the input
    const total = frames.slice(0, -1).reduce((n, p) => n + p.length + 2, 0);
    if (total + framer.bufferedLength !== input.length) throw new Error('RFC 4571 framer lost or invented bytes');
    return frames.length;
  },
  roundTrip(seed) {
    const framer = new Rfc4571Framer();
    framer.push(seed);
    const packets = [...framer];
    if (packets.length === 0 || framer.bufferedLength !== 0) throw new Error('a valid RFC 4571 stream is not cut into whole packets');
  },
};
