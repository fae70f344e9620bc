import { describe, expect, it } from 'vitest';
import { FRAME_DATA, FRAME_PING, FRAME_PONG, decodeFrame, demultiplex, encodeDataFrame, encodePingFrame } from '../src/index.js';

describe('application datagrams on the selected pair', () => {
  it('frames data with 0xF0 and reads it back', () => {
    const bytes = encodeDataFrame(Uint8Array.of(1, 2, 3));
    expect([...bytes]).toEqual([0xf0, 1, 2, 3]);
    const f = decodeFrame(bytes);
    expect(f?.kind).toBe('data');
    expect(f?.kind === 'data' ? [...f.payload] : []).toEqual([1, 2, 3]);
  });

  it('frames pings and pongs with a big-endian 32-bit sequence number', () => {
    expect([...encodePingFrame(FRAME_PING, 0x01020304)]).toEqual([0xf1, 1, 2, 3, 4]);
    expect([...encodePingFrame(FRAME_PONG, 2 ** 32 + 5)]).toEqual([0xf2, 0, 0, 0, 5]);
    expect(decodeFrame(Uint8Array.of(0xf2, 0xff, 0xff, 0xff, 0xfe))).toEqual({ kind: 'pong', seq: 0xfffffffe });
  });

  it('gives undefined for empty, unknown and truncated frames', () => {
    expect(decodeFrame(new Uint8Array(0))).toBeUndefined();
    expect(decodeFrame(Uint8Array.of(0xf3, 0))).toBeUndefined();
    expect(decodeFrame(Uint8Array.of(FRAME_PING, 0, 0, 0))).toBeUndefined();
  });

  it('uses first bytes that RFC 7983 leaves unassigned, never STUN, DTLS, ChannelData or RTP', () => {
    for (const b of [FRAME_DATA, FRAME_PING, FRAME_PONG]) expect(demultiplex(b)).toBe('unknown');
  });
});
