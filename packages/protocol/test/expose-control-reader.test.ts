/**
 * The expose control reader fed the way a hostile peer can feed it: a yamux Data frame of one
 * byte is one 'data' event, so a frame may arrive one byte per chunk.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ControlMessageReader, DecodeError, encodeControlMessage } from '../src/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ControlMessageReader', () => {
  it('fuzz finding: a control message trickled one byte per chunk is joined once (linear, not quadratic, copying)', () => {
    const frame = encodeControlMessage({ v: 1, type: 'error', code: 'bad-message', message: 'x'.repeat(500) });
    // 32 messages of ~530 bytes plus one of 16 KiB: its length checked, then its bytes awaited
    const big = Buffer.alloc(4 + 16384, 0x20);
    big.writeUInt32BE(16384, 0);
    const stream = Buffer.concat([...Array.from({ length: 32 }, () => frame), big]);
    // Buffer.concat is called through; only the bytes it copies are counted
    let copied = 0;
    const concat = Buffer.concat.bind(Buffer);
    vi.spyOn(Buffer, 'concat').mockImplementation((list: readonly Uint8Array[], total?: number) => {
      const out = concat(list, total);
      copied += out.length;
      return out;
    });
    const reader = new ControlMessageReader();
    let messages = 0;
    let error: unknown;
    for (let i = 0; i < stream.length; i++) {
      try {
        messages += reader.push(stream.subarray(i, i + 1)).length;
      } catch (e) {
        error = e;
        break;
      }
    }
    expect(messages).toBe(32);
    // the last frame is 16 KiB of spaces: not JSON, refused once it is complete
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).code).toBe('BAD_SYNTAX');
    // joined once per frame: about the stream's size, where re-copying per byte was ~n^2/2 (over 100 MB)
    expect(copied).toBeLessThan(4 * stream.length);
  });

  it('refuses a length over 64 KiB from its 4-byte header, before any of its bytes', () => {
    const reader = new ControlMessageReader();
    expect(reader.push(Uint8Array.of(0, 1))).toEqual([]);
    expect(() => reader.push(Uint8Array.of(0, 1))).toThrow(/65537 bytes/);
  });
});
