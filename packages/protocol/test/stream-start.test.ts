import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyStreamStart } from '../src/framing/stream-start.js';
import { StunClass, StunMethod, encodeStunMessage } from '../src/index.js';

describe('classifyStreamStart: what a TLS stream carries, by its first bytes', () => {
  const binding = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: new Uint8Array(12).fill(7), attributes: [] });

  it('a STUN message (cookie at bytes 4-7) is stun; each shorter prefix is need-more', () => {
    expect(classifyStreamStart(binding)).toBe('stun');
    for (let n = 0; n < 8; n++) expect(classifyStreamStart(binding.subarray(0, n))).toBe('need-more');
  });

  it('an HTTP request line is http, with any method token; a prefix of one is need-more', () => {
    for (const line of ['GET / HTTP/1.1\r\n', 'POST /x HTTP/1.1\r\n', 'OPTIONS * HTTP/1.1\r\n']) {
      expect(classifyStreamStart(Buffer.from(line))).toBe('http');
      expect(classifyStreamStart(Buffer.from(line.split(' ')[0]!))).toBe('need-more');
    }
  });

  it('anything else is unknown: no cookie, a PROXY v2 header, a TLS record, lower case, a long token', () => {
    const noCookie = Uint8Array.from(binding);
    noCookie[4] = 0;
    expect(classifyStreamStart(noCookie)).toBe('unknown');
    expect(classifyStreamStart(Buffer.from('0d0a0d0a000d0a515549540a2111000c', 'hex'))).toBe('unknown');
    expect(classifyStreamStart(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1]))).toBe('unknown');
    expect(classifyStreamStart(Buffer.from('get / HTTP/1.1'))).toBe('unknown');
    expect(classifyStreamStart(Buffer.from(' GET / HTTP/1.1'))).toBe('unknown');
    expect(classifyStreamStart(Buffer.from('A'.repeat(17)))).toBe('unknown');
  });

  it('never throws and decides within 17 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 17, maxLength: 64 }), (b) => {
        expect(classifyStreamStart(b)).not.toBe('need-more');
      }),
    );
  });
});
