/**
 * String preparation for STUN credentials.
 *
 * - {@link opaqueString}: the PRECIS OpaqueString profile (RFC 8265 section 4.2) of the
 *   FreeformClass (RFC 8264), which RFC 8489 applies to usernames, realms and passwords.
 * - {@link saslPrep}: the older SASLprep stringprep profile (RFC 4013 over RFC 3454), which RFC 5389
 *   peers apply instead; kept for interoperability.
 *
 * Both are pure: no tables are loaded at run time, the Unicode data comes from the JavaScript
 * engine (`String.prototype.normalize` and `\p{...}` property escapes), so the repertoire follows
 * the runtime's Unicode version. RFC 8264 is version-agile by design; stringprep is pinned to
 * Unicode 3.2, which is one of the approximations listed on {@link saslPrep}.
 *
 * Errors never echo the input (it is usually a password): they name the offending code point.
 */
import { ParseError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// PRECIS OpaqueString (RFC 8265 section 4.2) over the FreeformClass (RFC 8264 section 4.3)
// ---------------------------------------------------------------------------------------------

/** Any Unicode "Zs" code point except SPACE itself (RFC 8265 section 4.2.2, rule 2). */
const NON_ASCII_SPACE = /(?!\u0020)\p{Zs}/gu;
/** Printable ASCII plus SPACE: always FreeformClass-valid and unchanged by the profile. */
const PRINTABLE_ASCII = /^[\u0020-\u007e]+$/;

const UNASSIGNED = /^\p{Cn}$/u;
const PRECIS_IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u;
const CONTROL = /^\p{Cc}$/u;
/**
 * LetterDigits (A: Ll Lu Lo Nd Lm Mn Mc), OtherLetterDigits (R: Lt Nl No Me), Spaces (N: Zs),
 * Symbols (O: Sm Sc Sk So) and Punctuation (P: all P*): in the FreeformClass every one of them
 * is PVALID or FREE_PVAL, so together they are exactly L, M, N, Zs, S and P.
 */
const FREEFORM_CATEGORY = /^[\p{L}\p{M}\p{N}\p{Zs}\p{S}\p{P}]$/u;

const ZERO_WIDTH_NON_JOINER = 0x200c;
const ZERO_WIDTH_JOINER = 0x200d;

type Exception = 'PVALID' | 'CONTEXTO' | 'DISALLOWED';

/** The Exceptions (F) table of RFC 5892 section 2.6, which RFC 8264 section 9.6 reuses. */
function exception(cp: number): Exception | undefined {
  switch (cp) {
    case 0x00df: // LATIN SMALL LETTER SHARP S
    case 0x03c2: // GREEK SMALL LETTER FINAL SIGMA
    case 0x06fd: // ARABIC SIGN SINDHI AMPERSAND
    case 0x06fe: // ARABIC SIGN SINDHI POSTPOSITION MEN
    case 0x0f0b: // TIBETAN MARK INTERSYLLABIC TSHEG
    case 0x3007: // IDEOGRAPHIC NUMBER ZERO
      return 'PVALID';
    case 0x00b7: // MIDDLE DOT
    case 0x0375: // GREEK LOWER NUMERAL SIGN (KERAIA)
    case 0x05f3: // HEBREW PUNCTUATION GERESH
    case 0x05f4: // HEBREW PUNCTUATION GERSHAYIM
    case 0x30fb: // KATAKANA MIDDLE DOT
      return 'CONTEXTO';
    case 0x0640: // ARABIC TATWEEL
    case 0x07fa: // NKO LAJANYALAN
    case 0x302e: // HANGUL SINGLE DOT TONE MARK
    case 0x302f: // HANGUL DOUBLE DOT TONE MARK
    case 0x3031: // VERTICAL KANA REPEAT MARK ... U+3035
    case 0x3032:
    case 0x3033:
    case 0x3034:
    case 0x3035:
    case 0x303b: // VERTICAL IDEOGRAPHIC ITERATION MARK
      return 'DISALLOWED';
    default:
      if (cp >= 0x0660 && cp <= 0x0669) return 'CONTEXTO'; // ARABIC-INDIC DIGITS
      if (cp >= 0x06f0 && cp <= 0x06f9) return 'CONTEXTO'; // EXTENDED ARABIC-INDIC DIGITS
      return undefined;
  }
}

/**
 * OldHangulJamo (I): Hangul_Syllable_Type L, V or T (RFC 5892 section 2.9). JavaScript has no
 * property escape for Hangul_Syllable_Type; these ranges have been stable since Unicode 5.2.
 * NFC (applied before this check) composes complete L V (T) sequences into precomposed
 * syllables, so only stray conjoining jamo reach it.
 */
function isOldHangulJamo(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97c) || (cp >= 0xd7b0 && cp <= 0xd7c6) || (cp >= 0xd7cb && cp <= 0xd7fb);
}

type Verdict = 'PVALID' | 'CONTEXTJ' | 'CONTEXTO' | { disallowed: string };

/**
 * The FreeformClass derived property of one code point, following the order of RFC 8264
 * section 8 exactly (the order matters: U+200C is both JoinControl and Default_Ignorable).
 */
function freeformProperty(ch: string, cp: number): Verdict {
  const ex = exception(cp); // (F)
  if (ex === 'DISALLOWED') return { disallowed: 'an Exceptions code point (RFC 5892 section 2.6)' };
  if (ex !== undefined) return ex;
  // (G) BackwardCompatible is empty.
  if (UNASSIGNED.test(ch) && !PRECIS_IGNORABLE.test(ch)) {
    return { disallowed: 'unassigned in this runtime’s Unicode version (RFC 8264 section 9.10)' };
  }
  if (cp >= 0x21 && cp <= 0x7e) return 'PVALID'; // (K) ASCII7
  if (cp === ZERO_WIDTH_NON_JOINER || cp === ZERO_WIDTH_JOINER) return 'CONTEXTJ'; // (H)
  if (isOldHangulJamo(cp)) return { disallowed: 'an old Hangul jamo (RFC 8264 section 9.9)' }; // (I)
  if (PRECIS_IGNORABLE.test(ch)) {
    return { disallowed: 'default-ignorable or a noncharacter (RFC 8264 section 9.13)' }; // (M)
  }
  if (CONTROL.test(ch)) return { disallowed: 'a control character (RFC 8264 section 9.12)' }; // (L)
  if (ch.normalize('NFKC') !== ch) return 'PVALID'; // (Q) HasCompat: FREE_PVAL
  if (FREEFORM_CATEGORY.test(ch)) return 'PVALID'; // (A), (R), (N), (O), (P)
  // Everything else: Cf that is not default-ignorable, Zl, Zp, Co (private use), Cs (surrogates).
  return { disallowed: 'outside the FreeformClass (RFC 8264 section 8)' };
}

const NUKTA = '\u093c'; // canonical combining class 7
const SHEVA = '\u05b0'; // canonical combining class 10

/**
 * Canonical_Combining_Class(ch) = Virama (9), needed by the CONTEXTJ rules of RFC 5892
 * appendix A.1 and A.2. JavaScript exposes no combining classes, so this reads the class off
 * canonical reordering: NFD puts ch after a class-7 mark only if its class is above 7, and before
 * a class-10 mark only if its class is below 10. Class 8 holds only the two kana voicing marks.
 */
function isVirama(ch: string): boolean {
  if (ch === NUKTA || ch === SHEVA || ch === '\u3099' || ch === '\u309a') return false;
  return (ch + NUKTA).normalize('NFD') === NUKTA + ch && (SHEVA + ch).normalize('NFD') === ch + SHEVA;
}

/** Joining_Type T (transparent), approximated as non-spacing/enclosing marks and formats. */
const JOINING_TRANSPARENT = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
/**
 * Joining_Type L, R or D (a letter of a cursive-joining script). JavaScript has no
 * Joining_Type property; this approximation does not tell left- from right-joining letters.
 */
const JOINING_LETTER =
  /^(?=\p{L})[\p{Script_Extensions=Arabic}\p{Script_Extensions=Syriac}\p{Script_Extensions=Nko}\p{Script_Extensions=Mongolian}\p{Script_Extensions=Mandaic}\p{Script_Extensions=Manichaean}\p{Script_Extensions=Psalter_Pahlavi}\p{Script_Extensions=Phags_Pa}\p{Script_Extensions=Adlam}\p{Script_Extensions=Hanifi_Rohingya}\p{Script_Extensions=Sogdian}\p{Script_Extensions=Old_Uyghur}\p{Script_Extensions=Chorasmian}]$/u;

function isTransparent(ch: string): boolean {
  const cp = ch.codePointAt(0);
  return cp !== ZERO_WIDTH_NON_JOINER && cp !== ZERO_WIDTH_JOINER && JOINING_TRANSPARENT.test(ch);
}

/** RFC 5892 appendix A.1 (ZERO WIDTH NON-JOINER) and A.2 (ZERO WIDTH JOINER). */
function contextJAllowed(cps: readonly string[], i: number, cp: number): boolean {
  const before = cps[i - 1];
  if (before !== undefined && isVirama(before)) return true;
  if (cp === ZERO_WIDTH_JOINER) return false;
  // (Joining_Type:{L,D})(Joining_Type:T)*\u200C(Joining_Type:T)*(Joining_Type:{R,D})
  let j = i - 1;
  while (j >= 0 && isTransparent(cps[j] ?? '')) j--;
  let k = i + 1;
  while (k < cps.length && isTransparent(cps[k] ?? '')) k++;
  return JOINING_LETTER.test(cps[j] ?? '') && JOINING_LETTER.test(cps[k] ?? '');
}

const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const HIRAGANA_KATAKANA_HAN = /^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u;

/** Whole-string facts the CONTEXTO rules need, computed once (keeps enforcement linear). */
interface StringFacts {
  readonly hasArabicIndicDigit: boolean;
  readonly hasExtendedArabicIndicDigit: boolean;
  readonly hasHiraganaKatakanaHan: boolean;
}

function stringFacts(cps: readonly string[]): StringFacts {
  let hasArabicIndicDigit = false;
  let hasExtendedArabicIndicDigit = false;
  let hasHiraganaKatakanaHan = false;
  for (const c of cps) {
    const cp = c.codePointAt(0) ?? 0;
    if (cp >= 0x0660 && cp <= 0x0669) hasArabicIndicDigit = true;
    else if (cp >= 0x06f0 && cp <= 0x06f9) hasExtendedArabicIndicDigit = true;
    else if (cp !== 0x30fb && HIRAGANA_KATAKANA_HAN.test(c)) hasHiraganaKatakanaHan = true;
  }
  return { hasArabicIndicDigit, hasExtendedArabicIndicDigit, hasHiraganaKatakanaHan };
}

/** RFC 5892 appendix A.3 to A.9, evaluated over the whole string. */
function contextOAllowed(cps: readonly string[], i: number, cp: number, facts: StringFacts): boolean {
  switch (cp) {
    case 0x00b7: // MIDDLE DOT only between two 'l' (Catalan "l·l")
      return cps[i - 1] === 'l' && cps[i + 1] === 'l';
    case 0x0375: // KERAIA only before a Greek character
      return GREEK.test(cps[i + 1] ?? '');
    case 0x05f3:
    case 0x05f4: // GERESH, GERSHAYIM only after a Hebrew character
      return HEBREW.test(cps[i - 1] ?? '');
    case 0x30fb: // KATAKANA MIDDLE DOT needs some Hiragana, Katakana or Han in the string
      return facts.hasHiraganaKatakanaHan;
    default:
      // ARABIC-INDIC and EXTENDED ARABIC-INDIC digits must not be mixed.
      return !(facts.hasArabicIndicDigit && facts.hasExtendedArabicIndicDigit);
  }
}

function codePointName(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function rejectFreeform(s: string): void {
  const cps = Array.from(s);
  let facts: StringFacts | undefined;
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i] ?? '';
    const cp = ch.codePointAt(0) ?? 0;
    const verdict = freeformProperty(ch, cp);
    if (verdict === 'PVALID') continue;
    if (verdict === 'CONTEXTJ') {
      if (contextJAllowed(cps, i, cp)) continue;
      throw new ParseError('BAD_STRING', `OpaqueString: ${codePointName(cp)} is not allowed in this context (RFC 5892 appendix A)`);
    }
    if (verdict === 'CONTEXTO') {
      facts ??= stringFacts(cps);
      if (contextOAllowed(cps, i, cp, facts)) continue;
      throw new ParseError('BAD_STRING', `OpaqueString: ${codePointName(cp)} is not allowed in this context (RFC 5892 appendix A)`);
    }
    throw new ParseError('BAD_STRING', `OpaqueString: ${codePointName(cp)} is ${verdict.disallowed}`);
  }
}

/**
 * Enforces the PRECIS OpaqueString profile (RFC 8265 section 4.2.2) and returns the enforced
 * string: non-ASCII spaces (general category Zs) become U+0020, the result is NFC-normalized,
 * then every code point is checked against the FreeformClass (RFC 8264). No width mapping, no
 * case mapping, no directionality rule. Throws {@link ParseError} `BAD_STRING` for a disallowed
 * code point or an empty result (RFC 8265 section 4.1).
 *
 * Approximations (JavaScript exposes no Joining_Type or Canonical_Combining_Class data):
 * ZERO WIDTH JOINER / NON-JOINER are accepted after a virama (found through canonical
 * reordering, which is exact), and ZWNJ between two letters of a cursive-joining script, without
 * telling left- from right-joining letters. "Unassigned" means unassigned in the runtime's
 * Unicode version.
 */
export function opaqueString(s: string): string {
  if (PRINTABLE_ASCII.test(s)) return s;
  const enforced = s.replace(NON_ASCII_SPACE, ' ').normalize('NFC');
  rejectFreeform(enforced);
  // RFC 8265 section 4.1: checked after mapping and normalization.
  if (enforced.length === 0) throw new ParseError('BAD_STRING', 'OpaqueString: the string is empty');
  return enforced;
}

// ---------------------------------------------------------------------------------------------
// SASLprep (RFC 4013), the stringprep profile RFC 5389 used
// ---------------------------------------------------------------------------------------------

/** RFC 3454 table B.1, "commonly mapped to nothing" (RFC 4013 section 2.1). */
// eslint-disable-next-line no-misleading-character-class -- a table of single code points: combining marks and joiners stand alone on purpose
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200b-\u200d\u2060\ufe00-\ufe0f\ufeff]/gu;
/** RFC 3454 table C.1.2, non-ASCII spaces, mapped to SPACE (RFC 4013 section 2.1). */
const C12_NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/gu;

/** The prohibited output of RFC 4013 section 2.3, tables C.1.2 and C.2.1 to C.9 of RFC 3454. */
const SASL_PROHIBITED = new RegExp(
  // eslint-disable-next-line no-misleading-character-class -- as above: a table of single code points
  '[' +
    '\\u00a0\\u1680\\u2000-\\u200b\\u202f\\u205f\\u3000' + // C.1.2 non-ASCII space
    '\\u0000-\\u001f\\u007f' + // C.2.1 ASCII control
    '\\u0080-\\u009f\\u06dd\\u070f\\u180e\\u200c\\u200d\\u2028\\u2029\\u2060-\\u2063' +
    '\\u206a-\\u206f\\ufeff\\ufff9-\\ufffc\\u{1d173}-\\u{1d17a}' + // C.2.2 non-ASCII control
    '\\ue000-\\uf8ff\\u{f0000}-\\u{ffffd}\\u{100000}-\\u{10fffd}' + // C.3 private use
    '\\p{Noncharacter_Code_Point}' + // C.4 non-character code points (exactly the 66)
    '\\p{Cs}' + // C.5 surrogate codes
    '\\ufff9-\\ufffd' + // C.6 inappropriate for plain text
    '\\u2ff0-\\u2ffb' + // C.7 inappropriate for canonical representation
    '\\u0340\\u0341\\u200e\\u200f\\u202a-\\u202e' + // C.8 change display properties
    '\\u{e0001}\\u{e0020}-\\u{e007f}' + // C.9 tagging characters
    ']',
  'u',
);
const SASL_UNASSIGNED = /\p{Cn}/u;

const RTL_SCRIPT =
  /^[\p{Script_Extensions=Hebrew}\p{Script_Extensions=Arabic}\p{Script_Extensions=Syriac}\p{Script_Extensions=Thaana}\p{Script_Extensions=Nko}\p{Script_Extensions=Samaritan}\p{Script_Extensions=Mandaic}\p{Script_Extensions=Adlam}\p{Script_Extensions=Hanifi_Rohingya}]$/u;
const LETTER_OR_SPACING_MARK = /^[\p{L}\p{Mc}]$/u;
/** Right-to-left punctuation and symbols of RFC 3454 table D.1 (the letters are found by script). */
const RTL_PUNCTUATION = /^[\u05be\u05c0\u05c3\u05c6\u05f3\u05f4\u061b\u061f\u066d\u06d4\u06fd\u06fe\u0700-\u070d\ufdfc]$/u;

/** RandALCat (RFC 3454 table D.1), approximated: letters of a right-to-left script. */
function isRandAL(ch: string): boolean {
  return (LETTER_OR_SPACING_MARK.test(ch) && RTL_SCRIPT.test(ch)) || RTL_PUNCTUATION.test(ch);
}

/** LCat (RFC 3454 table D.2), approximated: letters and spacing marks not of such a script. */
function isL(ch: string): boolean {
  return LETTER_OR_SPACING_MARK.test(ch) && !RTL_SCRIPT.test(ch);
}

/** Options of {@link saslPrep}. */
export interface SaslPrepOptions {
  /**
   * Accept unassigned code points (stringprep's "query" mode, RFC 3454 section 7). Default
   * false: passwords and usernames are "stored strings", in which they are prohibited.
   */
  readonly allowUnassigned?: boolean;
}

/**
 * SASLprep (RFC 4013), for interoperability with RFC 5389 peers: "commonly mapped to nothing"
 * code points are removed, non-ASCII spaces become U+0020, the result is NFKC-normalized, the
 * prohibited output of RFC 4013 section 2.3 is rejected and the bidirectional rule of RFC 3454
 * section 6 is checked. Throws {@link ParseError} `BAD_STRING`. An empty result is returned as
 * is: RFC 4013 does not prohibit it.
 *
 * The mapping and prohibition tables are the exact RFC 3454 tables. Approximations:
 * normalization and "unassigned" (table A.1) use the runtime's Unicode version instead of 3.2,
 * so characters added after Unicode 3.2 are accepted; RandALCat and LCat (tables D.1, D.2),
 * which need Bidi_Class data JavaScript does not expose, are approximated by script: letters
 * of Hebrew, Arabic, Syriac, Thaana and the newer right-to-left scripts (plus the right-to-left
 * punctuation of D.1) count as RandALCat, every other letter or spacing mark as LCat.
 * When B.1 and C.1.2 disagree (U+200B is in both), B.1 wins and the code point is removed.
 */
export function saslPrep(s: string, options: SaslPrepOptions = {}): string {
  const mapped = s.replace(MAPPED_TO_NOTHING, '').replace(C12_NON_ASCII_SPACE, ' ');
  const normalized = mapped.normalize('NFKC');
  const prohibited = SASL_PROHIBITED.exec(normalized);
  if (prohibited !== null) {
    const cp = prohibited[0].codePointAt(0) ?? 0;
    throw new ParseError('BAD_STRING', `SASLprep: ${codePointName(cp)} is prohibited (RFC 4013 section 2.3)`);
  }
  if (options.allowUnassigned !== true) {
    const unassigned = SASL_UNASSIGNED.exec(normalized);
    if (unassigned !== null) {
      const cp = unassigned[0].codePointAt(0) ?? 0;
      throw new ParseError('BAD_STRING', `SASLprep: ${codePointName(cp)} is unassigned (RFC 4013 section 2.5)`);
    }
  }
  const cps = Array.from(normalized);
  if (cps.some(isRandAL)) {
    // RFC 3454 section 6: no LCat at all, and RandALCat first and last.
    const first = cps[0] ?? '';
    const last = cps[cps.length - 1] ?? '';
    if (cps.some(isL) || !isRandAL(first) || !isRandAL(last)) {
      throw new ParseError('BAD_STRING', 'SASLprep: the string fails the bidirectional rule (RFC 3454 section 6)');
    }
  }
  return normalized;
}
