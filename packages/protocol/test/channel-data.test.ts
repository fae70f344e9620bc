import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError, EncodeError } from '../src/errors.js';
import {
  CHANNEL_NUMBER_MAX,
  CHANNEL_NUMBER_MIN,
  decodeChannelData,
  encodeChannelData,
  isValidChannelNumber,
  readChannelDataLength,
  readChannelNumber,
  writeChannelDataHeader,
} from '../src/framing/channel-data.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function expectCode(fn: () => unknown, cls: typeof DecodeError | typeof EncodeError, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(cls);
  expect((caught as DecodeError).code).toBe(code);
}

describe('ChannelData constants', () => {
  it('are the RFC 8656 section 12 range', () => {
    expect(CHANNEL_NUMBER_MIN).toBe(0x4000);
    expect(CHANNEL_NUMBER_MAX).toBe(0x4fff);
    expect(isValidChannelNumber(0x4000)).toBe(true);
    expect(isValidChannelNumber(0x4fff)).toBe(true);
    expect(isValidChannelNumber(0x3fff)).toBe(false);
    expect(isValidChannelNumber(0x5000)).toBe(false);
    expect(isValidChannelNumber(0x4000 + 0.5)).toBe(false);
  });
});

describe('encodeChannelData', () => {
  const data = hex('68 65 6c 6c 6f'); // "hello"

  it('writes channel, unpadded length, data', () => {
    expect(toHex(encodeChannelData(0x4001, data))).toBe('400100056865' + '6c6c6f');
  });

  it('pads with zero bytes to a multiple of 4 when asked, length field unchanged', () => {
    const out = encodeChannelData(0x4001, data, { padded: true });
    expect(toHex(out)).toBe('40010005' + '68656c6c6f' + '000000');
    expect(out.length).toBe(12);
  });

  it('adds no padding when the data is already aligned', () => {
    expect(toHex(encodeChannelData(0x4fff, hex('01020304'), { padded: true }))).toBe('4fff000401020304');
  });

  it('encodes empty data as a bare header', () => {
    expect(toHex(encodeChannelData(0x4000, new Uint8Array(0), { padded: true }))).toBe('40000000');
  });

  it('encodes 65535 data bytes, padded to 65540', () => {
    const out = encodeChannelData(0x4abc, new Uint8Array(0xffff).fill(7), { padded: true });
    expect(out.length).toBe(65540);
    expect(toHex(out.subarray(0, 4))).toBe('4abcffff');
    expect(out[65538]).toBe(7);
    expect(out[65539]).toBe(0);
  });

  it('rejects channel numbers outside 0x4000-0x4FFF', () => {
    for (const ch of [0, 0x3fff, 0x5000, 0x7fff, 0xffff, 0x10000, -1, 0x4000 + 0.5, Number.NaN]) {
      expectCode(() => encodeChannelData(ch, data), EncodeError, 'BAD_CHANNEL');
    }
  });

  it('rejects data longer than 65535 bytes', () => {
    expectCode(() => encodeChannelData(0x4000, new Uint8Array(0x10000)), EncodeError, 'BAD_VALUE');
  });
});

describe('decodeChannelData', () => {
  it('decodes 40 01 00 05 + data', () => {
    const msg = hex('40010005 68656c6c6f');
    const { channel, data } = decodeChannelData(msg);
    expect(channel).toBe(0x4001);
    expect(toHex(data)).toBe('68656c6c6f');
  });

  it('returns a view of the input, not a copy', () => {
    const msg = hex('40010005 68656c6c6f 000000');
    const { data } = decodeChannelData(msg);
    expect(data.buffer).toBe(msg.buffer);
    expect(data.byteOffset).toBe(msg.byteOffset + 4);
    msg[4] = 0x48;
    expect(data[0]).toBe(0x48);
  });

  it('works on a subarray with a non-zero byte offset', () => {
    const backing = hex('ffffffff 4abc0002 abcd');
    const { channel, data } = decodeChannelData(backing.subarray(4));
    expect(channel).toBe(0x4abc);
    expect(toHex(data)).toBe('abcd');
    expect(data.byteOffset).toBe(8);
  });

  it('accepts padding (and other trailing bytes) after 4 + length', () => {
    const { data } = decodeChannelData(hex('40010005 68656c6c6f 000000'));
    expect(toHex(data)).toBe('68656c6c6f');
    expect(decodeChannelData(hex('4000 0000 00000000')).data.length).toBe(0);
  });

  it('rejects channel numbers 0x3FFF and 0x5000 (and the rest outside the range)', () => {
    for (const h of ['3fff0000', '50000000', '7fff0000', '00010000', 'ffff0000']) {
      expectCode(() => decodeChannelData(hex(h)), DecodeError, 'BAD_CHANNEL');
    }
  });

  it('rejects a header shorter than 4 bytes', () => {
    for (const h of ['', '40', '4001', '400100']) {
      expectCode(() => decodeChannelData(hex(h)), DecodeError, 'TRUNCATED');
    }
  });

  it('rejects a message shorter than 4 + length', () => {
    expectCode(() => decodeChannelData(hex('40010005 68656c6c')), DecodeError, 'TRUNCATED');
    expectCode(() => decodeChannelData(hex('4001ffff')), DecodeError, 'TRUNCATED');
  });
});

describe('writeChannelDataHeader / readChannelNumber (hot path)', () => {
  it('writes the header in place and returns the data offset', () => {
    const buf = new Uint8Array(16).fill(0xee);
    expect(writeChannelDataHeader(buf, 3, 0x4001, 5)).toBe(7);
    expect(toHex(buf)).toBe('eeeeee40010005eeeeeeeeeeeeeeeeee');
  });

  it('builds a message that decodes', () => {
    const payload = hex('0102030405');
    const buf = new Uint8Array(4 + payload.length);
    buf.set(payload, writeChannelDataHeader(buf, 0, 0x4123, payload.length));
    expect(toHex(buf)).toBe(toHex(encodeChannelData(0x4123, payload)));
  });

  it('rejects bad channels, lengths and offsets', () => {
    const buf = new Uint8Array(8);
    expectCode(() => writeChannelDataHeader(buf, 0, 0x3fff, 0), EncodeError, 'BAD_CHANNEL');
    expectCode(() => writeChannelDataHeader(buf, 0, 0x5000, 0), EncodeError, 'BAD_CHANNEL');
    expectCode(() => writeChannelDataHeader(buf, 0, 0x4000, 0x10000), EncodeError, 'BAD_VALUE');
    expectCode(() => writeChannelDataHeader(buf, 0, 0x4000, -1), EncodeError, 'BAD_VALUE');
    expectCode(() => writeChannelDataHeader(buf, 5, 0x4000, 0), EncodeError, 'BAD_VALUE');
    expectCode(() => writeChannelDataHeader(buf, -1, 0x4000, 0), EncodeError, 'BAD_VALUE');
    expect(writeChannelDataHeader(buf, 4, 0x4000, 0)).toBe(8);
  });

  it('reads the channel number of a complete message only', () => {
    expect(readChannelNumber(hex('40010005 68656c6c6f'))).toBe(0x4001);
    expect(readChannelNumber(hex('4fff0000'))).toBe(0x4fff);
    expect(readChannelNumber(hex('40010005 68656c6c'))).toBeUndefined(); // truncated
    expect(readChannelNumber(hex('400100'))).toBeUndefined(); // short header
    expect(readChannelNumber(hex('3fff0000'))).toBeUndefined();
    expect(readChannelNumber(hex('50000000'))).toBeUndefined();
    expect(readChannelNumber(hex('0001000021120442'))).toBeUndefined(); // a STUN header
    expect(readChannelDataLength(hex('40010005 68656c6c6f'))).toBe(5);
  });
});

describe('ChannelData properties', () => {
  const channel = fc.integer({ min: CHANNEL_NUMBER_MIN, max: CHANNEL_NUMBER_MAX });
  const data = fc.uint8Array({ maxLength: 300 });

  it('decode(encode(x)) == x, padded or not', () => {
    fc.assert(
      fc.property(channel, data, fc.boolean(), (ch, d, padded) => {
        const msg = encodeChannelData(ch, d, { padded });
        expect(msg.length % 4 === 0 || !padded).toBe(true);
        const out = decodeChannelData(msg);
        expect(out.channel).toBe(ch);
        expect(toHex(out.data)).toBe(toHex(d));
        expect(readChannelNumber(msg)).toBe(ch);
        expect(readChannelDataLength(msg)).toBe(d.length);
      }),
    );
  });

  it('random bytes: decode throws only DecodeError, and readChannelNumber agrees with it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let decoded: number | undefined;
        try {
          decoded = decodeChannelData(bytes).channel;
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
        }
        expect(readChannelNumber(bytes)).toBe(decoded);
      }),
      { numRuns: 2000 },
    );
  });
});
