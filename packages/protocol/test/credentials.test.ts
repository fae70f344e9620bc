import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EncodeError, ParseError } from '../src/errors.js';
import {
  NONCE_COOKIE_PREFIX,
  PasswordAlgorithm,
  SecurityFeatureBit,
  encodeNonceCookie,
  longTermKey,
  parseNonceCookie,
  selectPasswordAlgorithm,
  shortTermKey,
  userHash,
} from '../src/credentials/index.js';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function bytes(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** RFC 8489 appendix B.1 and RFC 5769 section 2.4 sample credentials. */
const USERNAME = '\u30de\u30c8\u30ea\u30c3\u30af\u30b9';
const PASSWORD = 'The\u00adM\u00aatr\u2168';
const REALM = 'example.org';

/** RFC 5769 section 2.4, "Sample Request with Long-Term Authentication" (MESSAGE-INTEGRITY last). */
const RFC5769_LONG_TERM_REQUEST = bytes(`
  00010060 2112a442 78ad3433 c6ad72c0 29da412e
  00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
  0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
  0014000b 6578616d 706c652e 6f726700
  00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666`);

/** RFC 5769 section 2.1, "Sample Request" (short-term; MESSAGE-INTEGRITY then FINGERPRINT). */
const RFC5769_SHORT_TERM_REQUEST = bytes(`
  00010058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`);

/**
 * RFC 8489 appendix B.1 as corrected by verified erratum 6268 (message length 0x90, a
 * PASSWORD-ALGORITHM of SHA-256 added, MESSAGE-INTEGRITY-SHA256 recomputed).
 */
const RFC8489_B1_CORRECTED = bytes(`
  00010090 2112a442 78ad3433 c6ad72c0 29da412e
  001e0020 4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704
  00150029 6f624d61 744a6f73 32414141 43662f2f 3439396b 39353464 364f4c33 346f4c39
           46535476 79363473 41000000
  0014000b 6578616d 706c652e 6f726700
  001d0004 00020000
  001c0020 b5c7bf00 5b6c52a2 1c51c5e8 92f81924 136296cb 927c4314 9309278c c6518e65`);

/** HMAC over `message` up to the integrity attribute of `macLength` bytes that ends at `end`. */
function integrityMatches(message: Buffer, key: Uint8Array, hash: 'sha1' | 'sha256', end: number): boolean {
  const macLength = hash === 'sha1' ? 20 : 32;
  const start = end - macLength - 4;
  const input = Buffer.from(message.subarray(0, start));
  input.writeUInt16BE(end - 20, 2); // the length field points at the end of the integrity attribute
  const mac = createHmac(hash, key).update(input).digest();
  return mac.equals(message.subarray(end - macLength, end));
}

describe('userHash (RFC 8489 section 14.4)', () => {
  it('reproduces the USERHASH value of the appendix B.1 sample request', () => {
    const printed = RFC8489_B1_CORRECTED.subarray(24, 56);
    expect(hex(userHash(USERNAME, REALM))).toBe('4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704');
    expect(Buffer.from(userHash(USERNAME, REALM)).equals(printed)).toBe(true);
  });

  it('processes both strings with OpaqueString first', () => {
    expect(hex(userHash('a\u00a0b', 'caf\u0065\u0301'))).toBe(createHash('sha256').update('a b:caf\u00e9', 'utf8').digest('hex'));
    expect(() => userHash('bad\u0000', REALM)).toThrow(ParseError);
  });
});

describe('longTermKey (RFC 8489 section 9.2.2)', () => {
  it('reproduces the example of section 9.2.2: MD5("user:realm:pass")', () => {
    const key = longTermKey({ username: 'user', realm: 'realm', password: 'pass' });
    expect(hex(key)).toBe('8493fbc53ba582fb4c044c456bdc40eb');
    expect(longTermKey({ username: 'user', realm: 'realm', password: 'pass', algorithm: 'MD5' })).toEqual(key);
    expect(longTermKey({ username: 'user', realm: 'realm', password: 'pass', algorithm: PasswordAlgorithm.MD5 })).toEqual(key);
  });

  it('removes trailing nulls from the three strings, as section 9.2.2 says', () => {
    const key = longTermKey({ username: 'user\u0000', realm: 'realm\u0000\u0000', password: 'pass\u0000' });
    expect(hex(key)).toBe('8493fbc53ba582fb4c044c456bdc40eb');
  });

  it('legacy (SASLprep): matches MD5 of the literal RFC 5769 section 2.4 string', () => {
    const key = longTermKey({ username: USERNAME, realm: REALM, password: PASSWORD, legacy: true });
    const direct = createHash('md5').update('\u30de\u30c8\u30ea\u30c3\u30af\u30b9:example.org:TheMatrIX', 'utf8').digest();
    expect(key.length).toBe(16);
    expect(Buffer.from(key).equals(direct)).toBe(true);
  });

  it('legacy key verifies the MESSAGE-INTEGRITY printed in RFC 5769 section 2.4', () => {
    const key = longTermKey({ username: USERNAME, realm: REALM, password: PASSWORD, legacy: true });
    expect(integrityMatches(RFC5769_LONG_TERM_REQUEST, key, 'sha1', RFC5769_LONG_TERM_REQUEST.length)).toBe(true);
    const wrong = longTermKey({ username: USERNAME, realm: REALM, password: 'TheMatrix', legacy: true });
    expect(integrityMatches(RFC5769_LONG_TERM_REQUEST, wrong, 'sha1', RFC5769_LONG_TERM_REQUEST.length)).toBe(false);
  });

  it('OpaqueString rejects the sample password (SOFT HYPHEN is disallowed by RFC 8264)', () => {
    expect(() => longTermKey({ username: USERNAME, realm: REALM, password: PASSWORD })).toThrow(ParseError);
  });

  it('SHA-256 key of "TheMatrIX" verifies the erratum 6268 MESSAGE-INTEGRITY-SHA256 of appendix B.1', () => {
    const key = longTermKey({ username: USERNAME, realm: REALM, password: 'TheMatrIX', algorithm: 'SHA-256' });
    expect(key.length).toBe(32);
    expect(longTermKey({ username: USERNAME, realm: REALM, password: 'TheMatrIX', algorithm: 0x0002 })).toEqual(key);
    expect(integrityMatches(RFC8489_B1_CORRECTED, key, 'sha256', RFC8489_B1_CORRECTED.length)).toBe(true);
  });

  it('rejects an algorithm it cannot derive a key for', () => {
    const call = () => longTermKey({ username: 'u', realm: 'r', password: 'p', algorithm: 0x0003 as unknown as PasswordAlgorithm });
    expect(call).toThrow(EncodeError);
    try {
      call();
    } catch (error) {
      expect((error as EncodeError).code).toBe('BAD_VALUE');
    }
  });

  it('gives 16-byte MD5 and 32-byte SHA-256 keys for any OpaqueString-valid credentials', () => {
    const text = fc.string({ minLength: 1, maxLength: 16, unit: 'grapheme-ascii' }).filter((s) => /^[\x20-\x7e]+$/.test(s));
    fc.assert(
      fc.property(text, text, text, (username, realm, password) => {
        const md5 = longTermKey({ username, realm, password });
        const sha = longTermKey({ username, realm, password, algorithm: 'SHA-256' });
        const expected = createHash('md5').update(`${username}:${realm}:${password}`).digest();
        return md5.length === 16 && sha.length === 32 && Buffer.from(md5).equals(expected);
      }),
    );
  });
});

describe('shortTermKey (RFC 8489 section 9.1.1)', () => {
  it('is the UTF-8 of the password and verifies RFC 5769 section 2.1', () => {
    const key = shortTermKey('VOkJxbRl1RmTxUk/WvJxBt');
    expect(Buffer.from(key).toString('utf8')).toBe('VOkJxbRl1RmTxUk/WvJxBt');
    // MESSAGE-INTEGRITY ends 8 bytes before the end, FINGERPRINT follows it.
    const end = RFC5769_SHORT_TERM_REQUEST.length - 8;
    expect(integrityMatches(RFC5769_SHORT_TERM_REQUEST, key, 'sha1', end)).toBe(true);
  });

  it('applies OpaqueString, or SASLprep when legacy', () => {
    expect(hex(shortTermKey('a\u00a0\u00e9'))).toBe(Buffer.from('a \u00e9', 'utf8').toString('hex'));
    expect(hex(shortTermKey('\u00aa\u2168', { legacy: true }))).toBe(Buffer.from('aIX').toString('hex'));
    expect(hex(shortTermKey('\u00aa\u2168'))).toBe(Buffer.from('\u00aa\u2168', 'utf8').toString('hex'));
    expect(() => shortTermKey('')).toThrow(ParseError);
  });
});

describe('selectPasswordAlgorithm (RFC 8489 sections 9.2.4 and 9.2.5)', () => {
  it('takes the first algorithm of the server list that the client supports', () => {
    expect(selectPasswordAlgorithm([0x0002, 0x0001])).toBe(PasswordAlgorithm.SHA256);
    expect(selectPasswordAlgorithm([0x0001, 0x0002])).toBe(PasswordAlgorithm.MD5);
    expect(selectPasswordAlgorithm([0x7777, 0x0001, 0x0002])).toBe(PasswordAlgorithm.MD5);
    expect(selectPasswordAlgorithm([0x0001, 0x0002], [PasswordAlgorithm.SHA256])).toBe(PasswordAlgorithm.SHA256);
  });

  it('is undefined when nothing in the list is supported: the client must not retry', () => {
    expect(selectPasswordAlgorithm([0x7777])).toBeUndefined();
    expect(selectPasswordAlgorithm([])).toBeUndefined();
    expect(selectPasswordAlgorithm([0x0001], [PasswordAlgorithm.SHA256])).toBeUndefined();
  });

  it('is MD5 when the server sent no PASSWORD-ALGORITHMS', () => {
    expect(selectPasswordAlgorithm(undefined)).toBe(PasswordAlgorithm.MD5);
    expect(selectPasswordAlgorithm(undefined, [PasswordAlgorithm.SHA256])).toBeUndefined();
  });
});

describe('nonce cookie (RFC 8489 section 9.2)', () => {
  const B1_NONCE = 'obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA';

  it('parses the appendix B.1 nonce: username anonymity, as its USERHASH request implies', () => {
    expect(parseNonceCookie(B1_NONCE)).toEqual({
      features: { passwordAlgorithms: false, usernameAnonymity: true },
      bits: SecurityFeatureBit.UsernameAnonymity,
      opaque: 'f//499k954d6OL34oL9FSTvy64sA',
    });
  });

  it('encodes the appendix B.1 nonce byte for byte', () => {
    expect(encodeNonceCookie({ passwordAlgorithms: false, usernameAnonymity: true }, 'f//499k954d6OL34oL9FSTvy64sA')).toBe(B1_NONCE);
  });

  it('puts bit 0 in the least significant bit of the third byte (erratum 6290)', () => {
    const none = encodeNonceCookie({ passwordAlgorithms: false, usernameAnonymity: false }, 'x');
    const algorithms = encodeNonceCookie({ passwordAlgorithms: true, usernameAnonymity: false }, 'x');
    const both = encodeNonceCookie({ passwordAlgorithms: true, usernameAnonymity: true }, 'x');
    expect(none).toBe('obMatJos2AAAAx');
    expect(algorithms).toBe('obMatJos2AAABx');
    expect(both).toBe('obMatJos2AAADx');
    expect(Buffer.from(algorithms.slice(9, 13), 'base64')).toEqual(Buffer.from([0, 0, 1]));
  });

  it('reads the pre-erratum RFC 8656 example as the unassigned bit 23, keeping the raw bits', () => {
    const parsed = parseNonceCookie('obMatJos2gAAAadl7W7PeDU4hKE72jda');
    expect(parsed).toEqual({
      features: { passwordAlgorithms: false, usernameAnonymity: false },
      bits: 0x800000,
      opaque: 'adl7W7PeDU4hKE72jda',
    });
  });

  it('returns undefined for a nonce without a complete cookie', () => {
    expect(parseNonceCookie('f//499k954d6OL34oL9FSTvy64sA')).toBeUndefined();
    expect(parseNonceCookie('obMatJos2')).toBeUndefined();
    expect(parseNonceCookie('obMatJos2AAA')).toBeUndefined();
    expect(parseNonceCookie('obMatJos2AA=Axyz')).toBeUndefined();
    expect(parseNonceCookie('obmatjos2AAAAxyz')).toBeUndefined();
    expect(parseNonceCookie('')).toBeUndefined();
  });

  it('accepts an empty opaque part and rejects a nonce of 128 characters', () => {
    expect(parseNonceCookie('obMatJos2AAAA')).toEqual({
      features: { passwordAlgorithms: false, usernameAnonymity: false },
      bits: 0,
      opaque: '',
    });
    expect(encodeNonceCookie({ passwordAlgorithms: true, usernameAnonymity: true }, 'n'.repeat(114))).toHaveLength(127);
    expect(() => encodeNonceCookie({ passwordAlgorithms: true, usernameAnonymity: true }, 'n'.repeat(115))).toThrow(EncodeError);
  });

  it('round-trips features and opaque text', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.string({ maxLength: 100 }), (passwordAlgorithms, usernameAnonymity, opaque) => {
        const nonce = encodeNonceCookie({ passwordAlgorithms, usernameAnonymity }, opaque);
        expect(nonce.startsWith(NONCE_COOKIE_PREFIX)).toBe(true);
        expect(parseNonceCookie(nonce)).toEqual({
          features: { passwordAlgorithms, usernameAnonymity },
          bits: (passwordAlgorithms ? 1 : 0) | (usernameAnonymity ? 2 : 0),
          opaque,
        });
      }),
    );
  });
});
