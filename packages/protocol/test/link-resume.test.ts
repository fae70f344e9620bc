import { describe, expect, it } from 'vitest';
import { LINK_RESUME_BYTES, LinkInner, LinkResumeKind, decodeLinkResume, encodeLinkResume } from '../src/index.js';

describe('link stream resumption messages', () => {
  it('kind, target, raw, echo and a 64-bit count, behind the Resume inner type', () => {
    const m = { kind: LinkResumeKind.Request, target: 0xdeadbeef, raw: 7, echo: 0x7fffffff, received: 5 * 2 ** 32 + 3 };
    const plain = encodeLinkResume(m);
    expect(plain.length).toBe(LINK_RESUME_BYTES);
    expect(plain[0]).toBe(LinkInner.Resume);
    expect(decodeLinkResume(plain)).toEqual(m);
  });

  it('refuses a message cut short, an unknown kind and a count past 2^53', () => {
    const plain = encodeLinkResume({ kind: LinkResumeKind.Confirm, target: 1, raw: 0, echo: 0, received: 1 });
    expect(decodeLinkResume(plain.subarray(0, LINK_RESUME_BYTES - 1))).toBeUndefined();
    const odd = Buffer.from(plain);
    odd[1] = 9;
    expect(decodeLinkResume(odd)).toBeUndefined();
    const huge = Buffer.from(plain);
    huge.writeBigUInt64BE(2n ** 60n, 14);
    expect(decodeLinkResume(huge)).toBeUndefined();
  });
});
