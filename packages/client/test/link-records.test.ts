import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerLinkError } from '../src/link/errors.js';
import { MAX_RECORD, RecordOpener, RecordSealer, streamKey } from '../src/link/records.js';

/** Feeds `wire` to `opener` in chunks of the given sizes (cycled), collecting the plaintext. */
function feed(opener: RecordOpener, wire: Buffer, sizes: readonly number[]): Buffer {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < wire.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    out.push(...opener.push(wire.subarray(at, at + n)));
    at += n;
  }
  return Buffer.concat(out);
}

const tampered = (f: () => unknown): void => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PeerLinkError);
    expect((e as PeerLinkError).code).toBe('TAMPERED');
    return;
  }
  throw new Error('expected TAMPERED');
};

describe('stream records (secretstream)', () => {
  it('derives one key per direction and stream pair, the same on both ends', () => {
    const tx = randomBytes(32);
    expect(streamKey(tx, 1, 2).equals(streamKey(tx, 1, 2))).toBe(true);
    expect(streamKey(tx, 1, 2).equals(streamKey(tx, 2, 1))).toBe(false);
    expect(streamKey(tx, 1, 2).equals(streamKey(randomBytes(32), 1, 2))).toBe(false);
  });

  it('opens exactly what was sealed, whatever the chunking, and recognises the sealed end', () => {
    const key = randomBytes(32);
    const sealer = new RecordSealer(key);
    const parts = [randomBytes(10), randomBytes(MAX_RECORD * 2 + 5), Buffer.alloc(0), randomBytes(1)];
    const wire = Buffer.concat([...parts.map((p) => sealer.seal(p)), sealer.seal(Buffer.alloc(0), true)]);
    // header 24 + 3 + 17 per record: the 128 KiB part is three records
    expect(wire.length).toBe(24 + parts.reduce((n, p) => n + p.length, 0) + 7 * (3 + 17));
    for (const sizes of [[1], [7, 1400], [wire.length]]) {
      const opener = new RecordOpener(key);
      expect(feed(opener, wire, sizes).equals(Buffer.concat(parts))).toBe(true);
      expect(opener.ended).toBe(true);
      expect(opener.buffered).toBe(0);
    }
    expect(() => sealer.seal(Buffer.from('after the end'))).toThrow();
  });

  it("an end without the FINAL record is not the sender's end", () => {
    const key = randomBytes(32);
    const sealer = new RecordSealer(key);
    const opener = new RecordOpener(key);
    opener.push(sealer.seal(Buffer.from('cut short here')));
    expect(opener.ended).toBe(false);
  });

  it("refuses an altered byte anywhere, a replayed or reordered record, another stream's records, and bytes after the end", () => {
    const key = randomBytes(32);
    const sealer = new RecordSealer(key);
    const first = sealer.seal(randomBytes(100)); // header + record 1
    const second = sealer.seal(randomBytes(100));
    const third = sealer.seal(randomBytes(100));
    for (const at of [0, 23, 24 + 3, first.length - 1]) {
      const bad = Buffer.from(first);
      bad[at]! ^= 0x40;
      tampered(() => new RecordOpener(key).push(bad));
    }
    // replay: record 2 twice
    const o1 = new RecordOpener(key);
    o1.push(first);
    o1.push(second);
    tampered(() => o1.push(second));
    // reorder: record 3 before record 2
    const o2 = new RecordOpener(key);
    o2.push(first);
    tampered(() => o2.push(third));
    // another stream's key (a record spliced in from elsewhere)
    tampered(() => new RecordOpener(streamKey(key, 1, 2)).push(first));
    // an impossible length
    const huge = Buffer.concat([first.subarray(0, 24), Buffer.from([0xff, 0xff, 0xff])]);
    tampered(() => new RecordOpener(key).push(huge));
    // bytes after the FINAL record
    const s2 = new RecordSealer(key);
    const o3 = new RecordOpener(key);
    o3.push(Buffer.concat([s2.seal(Buffer.from('x')), s2.seal(Buffer.alloc(0), true)]));
    tampered(() => o3.push(new RecordSealer(key).seal(Buffer.from('more')).subarray(24)));
  });

  it('fuzz: any bytes give plaintext records or a TAMPERED PeerLinkError, never anything else', () => {
    const key = randomBytes(32);
    const header = new RecordSealer(key).seal(Buffer.alloc(0)).subarray(0, 24);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withHeader) => {
        const opener = new RecordOpener(key);
        try {
          const out = opener.push(Buffer.concat([withHeader ? header : Buffer.alloc(0), Buffer.from(bytes)]));
          // random bytes never authenticate: only an incomplete record may be held
          expect(out.length).toBe(0);
        } catch (e) {
          expect(e).toBeInstanceOf(PeerLinkError);
          expect((e as PeerLinkError).code).toBe('TAMPERED');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
