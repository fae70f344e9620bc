import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../src/errors.js';
import { decodeChannelData, encodeChannelData } from '../src/framing/channel-data.js';
import { Rfc4571Framer, encodeRfc4571 } from '../src/framing/rfc4571.js';
import { CHANNEL_DATA_FRAME_MAX_LENGTH, STUN_FRAME_MAX_LENGTH, StunStreamFramer, frameLength, type StreamFrame } from '../src/framing/stun-stream.js';

// ---------------------------------------------------------------------------------------------
// Helpers. STUN messages are built by hand (the STUN codec is not imported on purpose): a 20-byte
// header with the message type, the body length, the magic cookie 0x2112A442 and a 12-byte
// transaction id, then the body.

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function stunMessage(type: number, body: Uint8Array, tid: Uint8Array = hex('b7e7a701bc34d686fa87dfae')): Uint8Array {
  const out = new Uint8Array(20 + body.length);
  out[0] = type >>> 8;
  out[1] = type & 0xff;
  out[2] = body.length >>> 8;
  out[3] = body.length & 0xff;
  out.set([0x21, 0x12, 0xa4, 0x42], 4);
  out.set(tid, 8);
  out.set(body, 20);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Cuts `bytes` at the given positions (any order, duplicates and out-of-range ignored). */
function cut(bytes: Uint8Array, positions: readonly number[]): Uint8Array[] {
  const points = [...new Set(positions.filter((p) => p > 0 && p < bytes.length))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

const show = (frames: readonly StreamFrame[]): string[] => frames.map((f) => `${f.kind}:${toHex(f.bytes)}`);

/** Pushes each chunk and drains the framer after each push, as a socket driver would. */
function feedStun(chunks: readonly Uint8Array[], framer = new StunStreamFramer()): StreamFrame[] {
  const frames: StreamFrame[] = [];
  for (const c of chunks) {
    framer.push(c);
    frames.push(...framer);
  }
  return frames;
}

function feed4571(chunks: readonly Uint8Array[], framer = new Rfc4571Framer()): Uint8Array[] {
  const packets: Uint8Array[] = [];
  for (const c of chunks) {
    framer.push(c);
    packets.push(...framer);
  }
  return packets;
}

function expectCode(fn: () => unknown, code: string): DecodeError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DecodeError);
  expect((caught as DecodeError).code).toBe(code);
  return caught as DecodeError;
}

// A realistic TURN-over-TCP stream: requests, responses and padded ChannelData interleaved.
const BINDING_REQUEST = stunMessage(0x0001, new Uint8Array(0));
// Binding success response with XOR-MAPPED-ADDRESS 192.0.2.1:32853 (RFC 5769 section 2.2 values).
const BINDING_RESPONSE = stunMessage(0x0101, hex('0020 0008 0001 a147 e112a643'));
// Allocate request with REQUESTED-TRANSPORT UDP (17).
const ALLOCATE_REQUEST = stunMessage(0x0003, hex('0019 0004 11000000'));
const CD_HELLO = hex('40010005 68656c6c6f 000000'); // channel 0x4001, "hello", 3 padding bytes
const CD_EMPTY = hex('4fff0000');
const CD_ALIGNED = hex('40000008 0102030405060708');

const STREAM_FRAMES: readonly StreamFrame[] = [
  { kind: 'stun', bytes: BINDING_REQUEST },
  { kind: 'channel-data', bytes: CD_HELLO },
  { kind: 'stun', bytes: BINDING_RESPONSE },
  { kind: 'channel-data', bytes: CD_EMPTY },
  { kind: 'channel-data', bytes: CD_ALIGNED },
  { kind: 'stun', bytes: ALLOCATE_REQUEST },
];
const STREAM = concat(STREAM_FRAMES.map((f) => f.bytes));

// ---------------------------------------------------------------------------------------------

describe('frameLength', () => {
  it('reads the STUN length: 20 + message length', () => {
    expect(frameLength(BINDING_REQUEST)).toBe(20);
    expect(frameLength(BINDING_RESPONSE)).toBe(32);
    expect(frameLength(hex('0001ffff'))).toBe(65555);
  });

  it('reads the ChannelData length: 4 + length rounded up to a multiple of 4', () => {
    expect(frameLength(hex('40010005'))).toBe(12);
    expect(frameLength(hex('40010004'))).toBe(8);
    expect(frameLength(hex('40010000'))).toBe(4);
    expect(frameLength(hex('4001ffff'))).toBe(65540);
  });

  it('needs 4 bytes', () => {
    for (const h of ['', '00', '0001', '000100', '40', '4001', '400100']) {
      expect(frameLength(hex(h))).toBeUndefined();
    }
  });

  it('rejects a first byte that is neither STUN nor ChannelData, from one byte on', () => {
    expectCode(() => frameLength(hex('80')), 'NOT_STUN');
    expectCode(() => frameLength(hex('ff000000')), 'NOT_STUN');
    expectCode(() => frameLength(hex('50')), 'BAD_CHANNEL');
    expectCode(() => frameLength(hex('7fff0000')), 'BAD_CHANNEL');
  });

  it('never throws anything but DecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), (bytes) => {
        try {
          const n = frameLength(bytes);
          if (n !== undefined) expect(n).toBeGreaterThanOrEqual(4);
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
        }
      }),
    );
  });
});

describe('StunStreamFramer', () => {
  it('has the wire maxima as default limits', () => {
    expect(STUN_FRAME_MAX_LENGTH).toBe(65555);
    expect(CHANNEL_DATA_FRAME_MAX_LENGTH).toBe(65540);
  });

  it('splits a stream pushed in one chunk, handing out views of it', () => {
    const framer = new StunStreamFramer();
    framer.push(STREAM);
    const frames = [...framer];
    expect(show(frames)).toEqual(show(STREAM_FRAMES));
    let offset = 0;
    for (const f of frames) {
      expect(f.bytes.buffer).toBe(STREAM.buffer);
      expect(f.bytes.byteOffset).toBe(offset);
      offset += f.bytes.length;
    }
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedLength).toBe(0);
  });

  it('yields ChannelData frames that decodeChannelData accepts (padding included)', () => {
    const framer = new StunStreamFramer();
    framer.push(CD_HELLO);
    const frame = framer.next()!;
    expect(frame.kind).toBe('channel-data');
    expect(frame.bytes.length).toBe(12);
    const { channel, data } = decodeChannelData(frame.bytes);
    expect(channel).toBe(0x4001);
    expect(Buffer.from(data).toString()).toBe('hello');
  });

  it('yields exactly the frames for a split at every pair of byte boundaries', () => {
    const want = show(STREAM_FRAMES);
    for (let i = 0; i <= STREAM.length; i++) {
      for (let j = i; j <= STREAM.length; j++) {
        expect(show(feedStun(cut(STREAM, [i, j]))), `cuts ${i},${j}`).toEqual(want);
      }
    }
  });

  it('with 1-byte chunks, yields each frame exactly when its last byte arrives', () => {
    const framer = new StunStreamFramer();
    const ends: number[] = [];
    let end = 0;
    for (const f of STREAM_FRAMES) ends.push((end += f.bytes.length));
    const seenAt: number[] = [];
    const frames: StreamFrame[] = [];
    for (let i = 0; i < STREAM.length; i++) {
      framer.push(STREAM.subarray(i, i + 1));
      for (const f of framer) {
        frames.push(f);
        seenAt.push(i + 1);
      }
    }
    expect(show(frames)).toEqual(show(STREAM_FRAMES));
    expect(seenAt).toEqual(ends);
  });

  it('holds a partial frame until it is complete', () => {
    const framer = new StunStreamFramer();
    framer.push(BINDING_RESPONSE.subarray(0, 3));
    expect(framer.next()).toBeUndefined();
    framer.push(BINDING_RESPONSE.subarray(3, 31));
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedLength).toBe(31);
    framer.push(BINDING_RESPONSE.subarray(31));
    expect(toHex(framer.next()!.bytes)).toBe(toHex(BINDING_RESPONSE));
    expect(framer.next()).toBeUndefined();
  });

  it('ignores empty chunks', () => {
    expect(show(feedStun([new Uint8Array(0), CD_EMPTY, new Uint8Array(0)]))).toEqual(['channel-data:4fff0000']);
  });

  it('frames the largest messages the length fields allow, in 1-byte chunks, in linear time', () => {
    const bigCd = encodeChannelData(0x4abc, new Uint8Array(0xffff).fill(0x5a), { padded: true });
    const bigStun = stunMessage(0x0001, new Uint8Array(65532).fill(0xa5));
    const stream = concat([bigCd, bigStun]);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
    const frames = feedStun(chunks);
    expect(frames.map((f) => [f.kind, f.bytes.length])).toEqual([
      ['channel-data', 65540],
      ['stun', 65552],
    ]);
    expect(toHex(frames[0]!.bytes)).toBe(toHex(bigCd));
    expect(toHex(frames[1]!.bytes)).toBe(toHex(bigStun));
  });

  it('handles thousands of tiny chunks buffered before one drain', () => {
    const one = concat([CD_EMPTY, BINDING_REQUEST, CD_HELLO]);
    const stream = concat(new Array<Uint8Array>(2000).fill(one));
    const framer = new StunStreamFramer();
    for (let i = 0; i < stream.length; i++) framer.push(stream.subarray(i, i + 1));
    const frames = [...framer];
    expect(frames.length).toBe(6000);
    expect(show(frames.slice(0, 3))).toEqual(show(feedStun([one])));
    expect(toHex(frames[5999]!.bytes)).toBe(toHex(CD_HELLO));
    expect(framer.bufferedLength).toBe(0);
  });

  it('fails on an oversized declared length as soon as the header is in, and stays failed', () => {
    const framer = new StunStreamFramer({ maxStunMessageLength: 100 });
    framer.push(hex('000100')); // 3 bytes: the length is not known yet
    expect(framer.next()).toBeUndefined();
    framer.push(hex('c8')); // length 200 => 220-byte frame
    const err = expectCode(() => framer.next(), 'BAD_LENGTH');
    expect(framer.error).toBe(err);
    expect(() => framer.next()).toThrow(err);
    expect(() => framer.push(BINDING_REQUEST)).toThrow(err);
    expect(framer.bufferedLength).toBe(0);
  });

  it('applies the ChannelData limit to the padded size', () => {
    const framer = new StunStreamFramer({ maxChannelDataLength: 16 });
    framer.push(encodeChannelData(0x4001, new Uint8Array(12), { padded: true })); // 16 bytes: fine
    expect(framer.next()!.bytes.length).toBe(16);
    framer.push(hex('4001000d')); // 13 bytes of data => 20 bytes padded
    expectCode(() => framer.next(), 'BAD_LENGTH');
  });

  it('accepts limits equal to the message', () => {
    const framer = new StunStreamFramer({ maxStunMessageLength: 32, maxChannelDataLength: 12 });
    framer.push(concat([BINDING_RESPONSE, CD_HELLO]));
    expect([...framer].length).toBe(2);
  });

  it('rejects limits outside header size .. wire maximum', () => {
    expect(() => new StunStreamFramer({ maxStunMessageLength: 19 })).toThrow(RangeError);
    expect(() => new StunStreamFramer({ maxStunMessageLength: 65556 })).toThrow(RangeError);
    expect(() => new StunStreamFramer({ maxChannelDataLength: 3 })).toThrow(RangeError);
    expect(() => new StunStreamFramer({ maxChannelDataLength: 65541 })).toThrow(RangeError);
    expect(() => new StunStreamFramer({ maxChannelDataLength: 10.5 })).toThrow(RangeError);
  });

  it('yields the good frames before a bad first byte, then fails', () => {
    const framer = new StunStreamFramer();
    framer.push(concat([BINDING_REQUEST, CD_HELLO, hex('80')]));
    expect(framer.next()!.kind).toBe('stun');
    expect(framer.next()!.kind).toBe('channel-data');
    expectCode(() => framer.next(), 'NOT_STUN');
    expectCode(() => framer.next(), 'NOT_STUN');
  });

  it('fails on a reserved channel number (0x5000-0x7FFF) with BAD_CHANNEL', () => {
    const framer = new StunStreamFramer();
    framer.push(hex('50'));
    expectCode(() => framer.next(), 'BAD_CHANNEL');
  });

  it('iterating a failed framer throws', () => {
    const framer = new StunStreamFramer();
    framer.push(hex('c0ffee'));
    expect(() => [...framer]).toThrow(DecodeError);
  });
});

// ---------------------------------------------------------------------------------------------

describe('encodeRfc4571', () => {
  it('prefixes the 16-bit big-endian length', () => {
    expect(toHex(encodeRfc4571(hex('dead')))).toBe('0002dead');
    expect(toHex(encodeRfc4571(new Uint8Array(0)))).toBe('0000');
    expect(toHex(encodeRfc4571(BINDING_REQUEST).subarray(0, 4))).toBe('00140001');
    const max = encodeRfc4571(new Uint8Array(65535));
    expect(max.length).toBe(65537);
    expect(toHex(max.subarray(0, 2))).toBe('ffff');
  });

  it('rejects a packet above 65535 bytes with EncodeError BAD_VALUE', () => {
    let caught: unknown;
    try {
      encodeRfc4571(new Uint8Array(65536));
    } catch (err) {
      caught = err;
    }
    expect((caught as { name: string; code: string }).name).toBe('EncodeError');
    expect((caught as { code: string }).code).toBe('BAD_VALUE');
  });
});

describe('Rfc4571Framer', () => {
  // ICE-TCP (RFC 6544) carries STUN checks and media alike; an RTP v2 header; an empty packet.
  const RTP = hex('80600001 00000064 deadbeef cafe');
  const PACKETS: readonly Uint8Array[] = [BINDING_REQUEST, RTP, new Uint8Array(0), BINDING_RESPONSE, hex('ff')];
  const FRAMED = concat(PACKETS.map(encodeRfc4571));
  const want = PACKETS.map(toHex);

  it('splits a stream pushed in one chunk into views of it', () => {
    const framer = new Rfc4571Framer();
    framer.push(FRAMED);
    const packets = [...framer];
    expect(packets.map(toHex)).toEqual(want);
    expect(packets[0]!.buffer).toBe(FRAMED.buffer);
    expect(packets[0]!.byteOffset).toBe(2);
    expect(packets[1]!.byteOffset).toBe(24);
    expect(framer.bufferedLength).toBe(0);
  });

  it('yields exactly the packets for a split at every pair of byte boundaries', () => {
    for (let i = 0; i <= FRAMED.length; i++) {
      for (let j = i; j <= FRAMED.length; j++) {
        expect(feed4571(cut(FRAMED, [i, j])).map(toHex), `cuts ${i},${j}`).toEqual(want);
      }
    }
  });

  it('with 1-byte chunks, yields each packet exactly when its last byte arrives', () => {
    const framer = new Rfc4571Framer();
    const ends: number[] = [];
    let end = 0;
    for (const p of PACKETS) ends.push((end += 2 + p.length));
    const seenAt: number[] = [];
    const packets: Uint8Array[] = [];
    for (let i = 0; i < FRAMED.length; i++) {
      framer.push(FRAMED.subarray(i, i + 1));
      for (const p of framer) {
        packets.push(p);
        seenAt.push(i + 1);
      }
    }
    expect(packets.map(toHex)).toEqual(want);
    expect(seenAt).toEqual(ends);
  });

  it('holds a partial packet until it is complete', () => {
    const framer = new Rfc4571Framer();
    framer.push(hex('00'));
    expect(framer.next()).toBeUndefined();
    framer.push(hex('03 aa'));
    expect(framer.next()).toBeUndefined();
    framer.push(hex('bb'));
    expect(framer.next()).toBeUndefined();
    framer.push(hex('cc 0000'));
    expect(toHex(framer.next()!)).toBe('aabbcc');
    expect(framer.next()!.length).toBe(0);
    expect(framer.next()).toBeUndefined();
  });

  it('frames a 65535-byte packet fed one byte at a time', () => {
    const packet = new Uint8Array(65535).map((_, i) => i & 0xff);
    const framed = encodeRfc4571(packet);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < framed.length; i++) chunks.push(framed.subarray(i, i + 1));
    const out = feed4571(chunks);
    expect(out.length).toBe(1);
    expect(toHex(out[0]!)).toBe(toHex(packet));
  });

  it('fails on a LENGTH above maxPacketLength and stays failed', () => {
    const framer = new Rfc4571Framer({ maxPacketLength: 100 });
    framer.push(encodeRfc4571(new Uint8Array(100)));
    expect(framer.next()!.length).toBe(100);
    framer.push(hex('0065')); // 101
    const err = expectCode(() => framer.next(), 'BAD_LENGTH');
    expect(framer.error).toBe(err);
    expect(() => framer.next()).toThrow(err);
    expect(() => framer.push(hex('0000'))).toThrow(err);
  });

  it('rejects a maxPacketLength outside 0-65535', () => {
    expect(() => new Rfc4571Framer({ maxPacketLength: -1 })).toThrow(RangeError);
    expect(() => new Rfc4571Framer({ maxPacketLength: 65536 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------

describe('framing properties', () => {
  const stunArb = fc
    .tuple(
      fc.integer({ min: 0, max: 0x3fff }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.integer({ min: 0, max: 40 }).chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
    )
    .map(([type, tid, body]): StreamFrame => ({ kind: 'stun', bytes: stunMessage(type, body, tid) }));
  const channelDataArb = fc
    .tuple(fc.integer({ min: 0x4000, max: 0x4fff }), fc.uint8Array({ maxLength: 160 }))
    .map(([ch, data]): StreamFrame => ({ kind: 'channel-data', bytes: encodeChannelData(ch, data, { padded: true }) }));
  const framesArb = fc.array(fc.oneof(stunArb, channelDataArb), { maxLength: 12 });
  const cutsArb = fc.array(fc.nat(), { maxLength: 40 });

  it('random chunkings of a random STUN/ChannelData sequence reassemble exactly', () => {
    fc.assert(
      fc.property(framesArb, cutsArb, (frames, cuts) => {
        const stream = concat(frames.map((f) => f.bytes));
        const chunks = cut(
          stream,
          cuts.map((c) => c % (stream.length + 1)),
        );
        expect(show(feedStun(chunks))).toEqual(show(frames));
        // Pushing everything first and draining once gives the same frames.
        const framer = new StunStreamFramer();
        for (const c of chunks) framer.push(c);
        expect(show([...framer])).toEqual(show(frames));
        expect(framer.bufferedLength).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('random chunkings of a random RFC 4571 packet sequence reassemble exactly', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 12 }), cutsArb, (packets, cuts) => {
        const stream = concat(packets.map(encodeRfc4571));
        const chunks = cut(
          stream,
          cuts.map((c) => c % (stream.length + 1)),
        );
        expect(feed4571(chunks).map(toHex)).toEqual(packets.map(toHex));
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes make the STUN stream framer throw nothing but DecodeError, then stay failed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        cutsArb,
        fc.integer({ min: 20, max: STUN_FRAME_MAX_LENGTH }),
        fc.integer({ min: 4, max: CHANNEL_DATA_FRAME_MAX_LENGTH }),
        (bytes, cuts, maxStun, maxCd) => {
          const framer = new StunStreamFramer({ maxStunMessageLength: maxStun, maxChannelDataLength: maxCd });
          let total = 0;
          try {
            for (const c of cut(
              bytes,
              cuts.map((x) => x % (bytes.length + 1)),
            )) {
              framer.push(c);
              for (const f of framer) total += f.bytes.length;
            }
          } catch (err) {
            expect(err).toBeInstanceOf(DecodeError);
            expect(framer.error).toBe(err);
            expect(() => framer.next()).toThrow(err as Error);
            return;
          }
          expect(total + framer.bufferedLength).toBe(bytes.length);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('random bytes make the RFC 4571 framer throw nothing but DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, fc.integer({ min: 0, max: 0xffff }), (bytes, cuts, maxPacketLength) => {
        const framer = new Rfc4571Framer({ maxPacketLength });
        let total = 0;
        try {
          for (const c of cut(
            bytes,
            cuts.map((x) => x % (bytes.length + 1)),
          )) {
            framer.push(c);
            for (const p of framer) total += 2 + p.length;
          }
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
          expect((err as DecodeError).code).toBe('BAD_LENGTH');
          return;
        }
        expect(total + framer.bufferedLength).toBe(bytes.length);
      }),
      { numRuns: 1000 },
    );
  });
});
