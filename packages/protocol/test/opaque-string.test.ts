import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../src/errors.js';
import { opaqueString, saslPrep } from '../src/credentials/opaque-string.js';

/** Runs `f` and returns what it threw. */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('expected an exception');
}

function expectBadString(f: () => unknown, mentions?: string): void {
  const error = thrown(f);
  expect(error).toBeInstanceOf(ParseError);
  expect((error as ParseError).code).toBe('BAD_STRING');
  if (mentions !== undefined) expect((error as ParseError).message).toContain(mentions);
}

/** RFC 8489 appendix B.1 / RFC 5769 section 2.4 sample credentials. */
const MATRIX_USERNAME = '\u30de\u30c8\u30ea\u30c3\u30af\u30b9';
const MATRIX_PASSWORD = 'The\u00adM\u00aatr\u2168';

/** Any code point, lone surrogates included, with the interesting ones over-represented. */
const anyCodePoint = fc.oneof(
  fc.integer({ min: 0, max: 0x10ffff }).map((cp) => String.fromCodePoint(cp)),
  fc.integer({ min: 0x20, max: 0x7e }).map((cp) => String.fromCodePoint(cp)),
  fc.constantFrom(
    '\u0000',
    '\u00a0',
    '\u00ad',
    '\u00b7',
    '\u0301',
    '\u0375',
    '\u05f3',
    '\u0640',
    '\u0661',
    '\u06f1',
    '\u094d',
    '\u1100',
    '\u1161',
    '\u200b',
    '\u200c',
    '\u200d',
    '\u2028',
    '\u2168',
    '\u3000',
    '\u30fb',
    '\ud800',
    '\udc00',
    '\ue000',
    '\ufeff',
    '\uffff',
    'l',
    'e',
    '\u0627',
  ),
);
const unicodeStrings = fc.string({ unit: anyCodePoint, maxLength: 24 });

describe('opaqueString (RFC 8265 section 4.2)', () => {
  it('leaves printable ASCII unchanged, case and all', () => {
    expect(opaqueString('VOkJxbRl1RmTxUk/WvJxBt')).toBe('VOkJxbRl1RmTxUk/WvJxBt');
    expect(opaqueString('user:realm pass ~!')).toBe('user:realm pass ~!');
    expect(opaqueString('   ')).toBe('   ');
  });

  it('applies NFC: e + COMBINING ACUTE ACCENT becomes U+00E9', () => {
    expect(opaqueString('caf\u0065\u0301')).toBe('caf\u00e9');
    expect(opaqueString('\u212b')).toBe('\u00c5'); // ANGSTROM SIGN, a canonical singleton
  });

  it('maps non-ASCII spaces (Zs) to U+0020', () => {
    expect(opaqueString('a\u00a0b')).toBe('a b');
    expect(opaqueString('a\u3000b')).toBe('a b');
    expect(opaqueString('\u2003x\u202f')).toBe(' x ');
  });

  it('has no width, case or compatibility mapping', () => {
    expect(opaqueString('\uff21\uff42')).toBe('\uff21\uff42'); // fullwidth stays fullwidth
    expect(opaqueString('M\u00aatr\u2168')).toBe('M\u00aatr\u2168'); // no NFKC
    expect(opaqueString('\u03a3\u03c2')).toBe('\u03a3\u03c2');
  });

  it('leaves the RFC 8489 appendix B.1 username unchanged', () => {
    expect(opaqueString(MATRIX_USERNAME)).toBe(MATRIX_USERNAME);
  });

  it('rejects the appendix B.1 password: SOFT HYPHEN is default-ignorable (RFC 8264 section 9.13)', () => {
    // RFC 8489 appendix B.1 claims OpaqueString gives "TheMatrIX"; that is SASLprep's output.
    expectBadString(() => opaqueString(MATRIX_PASSWORD), 'U+00AD');
  });

  it('rejects control characters', () => {
    for (const s of ['\u0000', 'a\tb', 'line\n', '\u007f', 'x\u0085y', '\u009f']) {
      expectBadString(() => opaqueString(s), 'control');
    }
  });

  it('rejects the empty string, also when it only becomes empty after mapping', () => {
    expectBadString(() => opaqueString(''), 'empty');
  });

  it('rejects code points outside the FreeformClass', () => {
    expectBadString(() => opaqueString('a\ue000'), 'U+E000'); // private use
    expectBadString(() => opaqueString('\ud800x'), 'U+D800'); // lone surrogate
    expectBadString(() => opaqueString('a\u2028b'), 'U+2028'); // LINE SEPARATOR (Zl)
    expectBadString(() => opaqueString('\ufeffabc'), 'U+FEFF'); // BOM, default-ignorable
    expectBadString(() => opaqueString('\uffff'), 'U+FFFF'); // noncharacter
    expectBadString(() => opaqueString('\u0378'), 'unassigned');
    expectBadString(() => opaqueString('\u0600'), 'U+0600'); // a Cf that is not ignorable
  });

  it('rejects stray old Hangul jamo but accepts the syllable NFC composes from them', () => {
    expectBadString(() => opaqueString('\u1100'), 'Hangul');
    expect(opaqueString('\u1100\u1161')).toBe('\uac00');
  });

  it('applies the Exceptions table of RFC 5892 section 2.6', () => {
    expect(opaqueString('stra\u00dfe')).toBe('stra\u00dfe');
    expectBadString(() => opaqueString('\u0628\u0640\u0628'), 'U+0640'); // ARABIC TATWEEL
    expectBadString(() => opaqueString('\u3031'), 'U+3031');
  });

  it('applies the CONTEXTO rules of RFC 5892 appendix A', () => {
    expect(opaqueString('col\u00b7lecci\u00f3')).toBe('col\u00b7lecci\u00f3');
    expectBadString(() => opaqueString('a\u00b7b'), 'U+00B7');
    expect(opaqueString('\u0375\u03b1')).toBe('\u0375\u03b1');
    expectBadString(() => opaqueString('\u0375a'), 'U+0375');
    expect(opaqueString('\u05d0\u05f3')).toBe('\u05d0\u05f3');
    expectBadString(() => opaqueString('a\u05f4'), 'U+05F4');
    expect(opaqueString('\u30ab\u30fb\u30ca')).toBe('\u30ab\u30fb\u30ca');
    expectBadString(() => opaqueString('a\u30fbb'), 'U+30FB');
    expect(opaqueString('\u0661\u0662')).toBe('\u0661\u0662');
    expectBadString(() => opaqueString('\u0661\u06f2'), 'U+0661');
  });

  it('applies the CONTEXTJ rules: joiners after a virama, ZWNJ inside cursive text', () => {
    expect(opaqueString('\u0915\u094d\u200d\u0937')).toBe('\u0915\u094d\u200d\u0937');
    expect(opaqueString('\u0915\u094d\u200c\u0937')).toBe('\u0915\u094d\u200c\u0937');
    expect(opaqueString('\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645')).toBe('\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645');
    expectBadString(() => opaqueString('a\u200db'), 'U+200D');
    expectBadString(() => opaqueString('a\u200cb'), 'U+200C');
    expectBadString(() => opaqueString('\u0628\u200d\u0628'), 'U+200D');
  });

  it('never echoes the input in its error', () => {
    const error = thrown(() => opaqueString('hunter2\u0000'));
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('never throws anything but ParseError BAD_STRING on arbitrary code points', () => {
    fc.assert(
      fc.property(unicodeStrings, (s) => {
        try {
          opaqueString(s);
        } catch (error) {
          return error instanceof ParseError && error.code === 'BAD_STRING';
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it('is idempotent and its output is NFC without non-ASCII spaces', () => {
    fc.assert(
      fc.property(unicodeStrings, (s) => {
        let out: string;
        try {
          out = opaqueString(s);
        } catch {
          return true;
        }
        return opaqueString(out) === out && out.normalize('NFC') === out && !/(?!\u0020)\p{Zs}/u.test(out);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('saslPrep (RFC 4013)', () => {
  it('reproduces the examples of RFC 4013 section 3', () => {
    expect(saslPrep('I\u00adX')).toBe('IX'); // SOFT HYPHEN mapped to nothing
    expect(saslPrep('user')).toBe('user');
    expect(saslPrep('USER')).toBe('USER'); // case preserved
    expect(saslPrep('\u00aa')).toBe('a'); // NFKC
    expect(saslPrep('\u2168')).toBe('IX'); // NFKC
    expectBadString(() => saslPrep('\u0007'), 'U+0007'); // prohibited
    expectBadString(() => saslPrep('\u0627\u0031'), 'bidirectional'); // RandALCat must end it
  });

  it('maps the RFC 5769 section 2.4 password to "TheMatrIX"', () => {
    expect(saslPrep(MATRIX_PASSWORD)).toBe('TheMatrIX');
    expect(saslPrep(MATRIX_USERNAME)).toBe(MATRIX_USERNAME);
  });

  it('maps non-ASCII spaces to SPACE and zero-width characters to nothing', () => {
    expect(saslPrep('a\u00a0b\u3000c')).toBe('a b c');
    expect(saslPrep('a\u200bb\ufeffc\u200dd')).toBe('abcd'); // U+200B: table B.1 wins over C.1.2
  });

  it('rejects the prohibited output of RFC 4013 section 2.3', () => {
    expectBadString(() => saslPrep('a\ue000'), 'U+E000'); // C.3
    expectBadString(() => saslPrep('\ufffe'), 'U+FFFE'); // C.4
    expectBadString(() => saslPrep('\udc00'), 'U+DC00'); // C.5
    expectBadString(() => saslPrep('\ufffd'), 'U+FFFD'); // C.6
    expectBadString(() => saslPrep('\u2ff0'), 'U+2FF0'); // C.7
    expectBadString(() => saslPrep('a\u202eb'), 'U+202E'); // C.8
    expectBadString(() => saslPrep('\u{e0041}'), 'U+E0041'); // C.9
    expectBadString(() => saslPrep('\u{1d175}'), 'U+1D175'); // C.2.2
  });

  it('rejects unassigned code points unless asked not to (stored strings vs queries)', () => {
    expectBadString(() => saslPrep('a\u0378'), 'unassigned');
    expect(saslPrep('a\u0378', { allowUnassigned: true })).toBe('a\u0378');
  });

  it('checks the bidirectional rule of RFC 3454 section 6', () => {
    expect(saslPrep('\u05d0\u05d1')).toBe('\u05d0\u05d1');
    expect(saslPrep('\u0627 1 \u0628')).toBe('\u0627 1 \u0628');
    expectBadString(() => saslPrep('a\u05d0'), 'bidirectional');
    expectBadString(() => saslPrep('\u05d0a\u05d1'), 'bidirectional');
  });

  it('returns the empty string for an empty input (RFC 4013 does not prohibit it)', () => {
    expect(saslPrep('')).toBe('');
    expect(saslPrep('\u00ad')).toBe('');
  });

  it('never throws anything but ParseError BAD_STRING on arbitrary code points', () => {
    fc.assert(
      fc.property(unicodeStrings, fc.boolean(), (s, allowUnassigned) => {
        try {
          saslPrep(s, { allowUnassigned });
        } catch (error) {
          return error instanceof ParseError && error.code === 'BAD_STRING';
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
