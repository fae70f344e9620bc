import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyPacket, demultiplex, type DemultiplexedProtocol } from '../src/framing/demux.js';

// RFC 7983 section 7 as updated by RFC 9443 section 3, written out as its ranges.
const TABLE: readonly [number, number, DemultiplexedProtocol][] = [
  [0, 3, 'stun'],
  [16, 19, 'zrtp'],
  [20, 63, 'dtls'],
  [64, 79, 'turn-channel'],
  [128, 191, 'rtp'],
];

function expected(byte: number): DemultiplexedProtocol {
  for (const [lo, hi, kind] of TABLE) if (byte >= lo && byte <= hi) return kind;
  return 'unknown';
}

describe('demultiplex', () => {
  it('matches the RFC table on every value 0..255', () => {
    const counts = new Map<DemultiplexedProtocol, number>();
    for (let b = 0; b <= 255; b++) {
      const kind = demultiplex(b);
      expect(kind, `byte ${b}`).toBe(expected(b));
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({
      stun: 4,
      zrtp: 4,
      dtls: 44,
      'turn-channel': 16,
      rtp: 64,
      unknown: 256 - 4 - 4 - 44 - 16 - 64,
    });
  });

  it('gets the range edges right', () => {
    const edges: [number, DemultiplexedProtocol][] = [
      [3, 'stun'],
      [4, 'unknown'],
      [15, 'unknown'],
      [16, 'zrtp'],
      [19, 'zrtp'],
      [20, 'dtls'],
      [63, 'dtls'],
      [64, 'turn-channel'],
      [79, 'turn-channel'],
      [80, 'unknown'],
      [127, 'unknown'],
      [128, 'rtp'],
      [191, 'rtp'],
      [192, 'unknown'],
      [255, 'unknown'],
    ];
    for (const [b, kind] of edges) expect(demultiplex(b), `byte ${b}`).toBe(kind);
  });

  it('calls anything that is not a byte unknown', () => {
    for (const v of [-1, 256, 1000, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(demultiplex(v)).toBe('unknown');
    }
  });

  it('takes RFC 5766 channel numbers (first byte 80-127) as ChannelData only when asked', () => {
    const legacy = { legacyChannelNumbers: true };
    for (let b = 0; b <= 255; b++) {
      const strict = demultiplex(b);
      const wide = demultiplex(b, legacy);
      if (b >= 80 && b <= 127) {
        expect(strict, `byte ${b}`).toBe('unknown');
        expect(wide, `byte ${b}`).toBe('turn-channel');
      } else expect(wide, `byte ${b}`).toBe(strict);
    }
    expect(classifyPacket(Uint8Array.from([0x7f, 0xff, 0, 0]), legacy)).toBe('turn-channel');
    expect(classifyPacket(Uint8Array.from([0x7f, 0xff, 0, 0]))).toBe('unknown');
  });
});

describe('classifyPacket', () => {
  it('classifies real first bytes', () => {
    // STUN Binding request header: type 0x0001, length 0, magic cookie, transaction id.
    const stun = Uint8Array.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, ...new Array<number>(12).fill(9)]);
    expect(classifyPacket(stun)).toBe('stun');
    // STUN Binding success response starts 0x01 0x01.
    expect(classifyPacket(Uint8Array.from([0x01, 0x01, 0x00, 0x00]))).toBe('stun');
    // DTLS 1.2 handshake record (content type 22), version 0xFEFD.
    expect(classifyPacket(Uint8Array.from([22, 0xfe, 0xfd, 0, 0]))).toBe('dtls');
    // ChannelData on channel 0x4001.
    expect(classifyPacket(Uint8Array.from([0x40, 0x01, 0x00, 0x00]))).toBe('turn-channel');
    // RTP version 2, no padding/extension/CSRC: 0x80; RTCP sender report: 0x80 200.
    expect(classifyPacket(Uint8Array.from([0x80, 0x60, 0x00, 0x01]))).toBe('rtp');
    expect(classifyPacket(Uint8Array.from([0x80, 200, 0x00, 0x06]))).toBe('rtp');
    // ZRTP packets start with 0x10.
    expect(classifyPacket(Uint8Array.from([0x10, 0x00]))).toBe('zrtp');
    // A QUIC long header (0xC0 and up) is not handled by this stack.
    expect(classifyPacket(Uint8Array.from([0xc3, 0, 0, 0, 1]))).toBe('unknown');
  });

  it('calls an empty packet unknown', () => {
    expect(classifyPacket(new Uint8Array(0))).toBe('unknown');
  });

  it('looks only at byte 0', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), (bytes) => {
        expect(classifyPacket(bytes)).toBe(expected(bytes[0]!));
      }),
    );
  });
});
