/**
 * The generic fuzz harness: a target is a parser the network feeds, a committed corpus of seed
 * inputs (fuzz/corpus/<name>.json) and a check of what it may throw. Two properties per target:
 * arbitrary bytes, and corpus seeds mutated (bit flips, byte sets, truncation, insertion, 16/32-bit
 * length-field edits, splices of other seeds, dictionary tokens). For every input the parser must
 * only fail with the layer's typed error, finish within a time bound, and (for one-shot decoders)
 * read nothing outside its input. The client's fuzz targets use this harness too.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';

/** One parser under fuzz. */
export interface FuzzTarget {
  readonly name: string;
  /** Valid seed inputs (text targets: their UTF-8), then inputs that once found a defect. */
  readonly corpus: Corpus;
  /** Tokens the mutator may insert (keywords, tags): helps text formats get past their first check. */
  readonly dictionary?: readonly string[];
  /**
   * Feeds `input` to the parser (stateful readers: in chunks of the sizes in `cuts`, cycled) and
   * returns a summary of what came out. Throws only errors `typed` accepts; any other throw is a
   * defect. May throw a plain Error itself to report a broken invariant (over-buffering, ...).
   */
  run(input: Uint8Array, cuts: readonly number[]): unknown;
  /** True for the layer's typed decode error. */
  readonly typed: (error: unknown) => boolean;
  /** One-shot decoders: the same bytes inside a larger buffer must give the same result. */
  readonly isolated?: boolean;
  /** Checks that a seed round-trips (decode, encode, decode); throws when it does not. */
  readonly roundTrip?: (seed: Uint8Array) => void;
  /** Extra generated inputs (structured, e.g. JSON objects with random fields). */
  readonly generated?: fc.Arbitrary<Uint8Array>;
}

/** The most one case may take, ms: generous for a busy machine, far below any hang. */
export const CASE_TIME_LIMIT_MS = Number(process.env.FUZZ_CASE_MS ?? 2000);

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
/** An input for an error message: its hex, cut after 2,000 digits. */
const shown = (b: Uint8Array): string => (b.length > 1000 ? `${hex(b.subarray(0, 1000))}... (${b.length} bytes)` : hex(b));

/** A target's committed corpus. */
export interface Corpus {
  /** Valid encodings: each parses without error. */
  readonly valid: readonly Uint8Array[];
  /** Inputs that found a defect once (regressions): each may fail, but only with the typed error. */
  readonly crashers: readonly Uint8Array[];
  /** Both, the mutator's seeds. */
  readonly all: readonly Uint8Array[];
}

const fromHex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

/**
 * Reads fuzz/corpus/<name>.json: `hex` (binary seeds) or `text` (text seeds) for valid inputs,
 * `crashers` (hex) for inputs that found a defect.
 */
export function loadCorpus(dir: URL, name: string): Corpus {
  const file = JSON.parse(readFileSync(new URL(`${name}.json`, dir), 'utf8')) as { hex?: string[]; text?: string[]; crashers?: string[] };
  const valid = [...(file.hex ?? []).map(fromHex), ...(file.text ?? []).map((t) => new TextEncoder().encode(t))];
  const crashers = (file.crashers ?? []).map(fromHex);
  return { valid, crashers, all: [...valid, ...crashers] };
}

/** A JSON rendering of a parse result, byte arrays as hex, for comparing two runs. */
export function summarize(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return `hex:${hex(v)}`;
    if (typeof v === 'bigint') return `bigint:${v}`;
    if (v instanceof Map) return [...(v as Map<unknown, unknown>).entries()];
    return v;
  });
}

function outcome(target: FuzzTarget, input: Uint8Array, cuts: readonly number[]): string {
  const started = performance.now();
  let result: string;
  try {
    result = `ok ${summarize(target.run(input, cuts))}`;
  } catch (error) {
    if (!target.typed(error)) {
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      throw new Error(`${target.name}: untyped failure on input ${shown(input)} (cuts ${cuts.join(',')}): ${detail}`);
    }
    const e = error as { name?: string; code?: string; message?: string };
    result = `error ${e.name} ${e.code} ${e.message}`;
  }
  const took = performance.now() - started;
  if (took > CASE_TIME_LIMIT_MS) throw new Error(`${target.name}: ${took.toFixed(0)} ms on input ${shown(input)}`);
  return result;
}

/** Runs one case: typed failures only, within the time bound, and for one-shot decoders nothing read outside the input. */
export function checkCase(target: FuzzTarget, input: Uint8Array, cuts: readonly number[], filler: number): void {
  const alone = outcome(target, input, cuts);
  if (target.isolated !== true) return;
  const big = new Uint8Array(input.length + 64).fill(filler);
  big.set(input, 32);
  const inside = outcome(target, big.subarray(32, 32 + input.length), cuts);
  if (alone !== inside) throw new Error(`${target.name}: result depends on bytes outside the input ${shown(input)}:\n${alone}\n${inside}`);
}

const lengthValue = fc.oneof(fc.constantFrom(0, 1, 3, 4, 12, 0x7fff, 0xffff, 0x10000, 0x10004, 0x7fffffff, 0xffffffff), fc.nat());
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant('length16' as const), at: fc.nat(), value: lengthValue }),
  fc.record({ kind: fc.constant('length32' as const), at: fc.nat(), value: lengthValue }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat(), start: fc.nat(), size: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('token' as const), at: fc.nat(), which: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), size: fc.integer({ min: 1, max: 16 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function insertAt(b: Uint8Array, at: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + bytes.length);
  out.set(b.subarray(0, at));
  out.set(bytes, at);
  out.set(b.subarray(at), at + bytes.length);
  return out;
}

function writeUint(b: Uint8Array, at: number, size: 2 | 4, value: number): void {
  const where = at & ~(size - 1);
  if (where + size > b.length) return;
  for (let i = 0; i < size; i++) b[where + i] = (value >>> (8 * (size - 1 - i))) & 0xff;
}

/** Applies `mutations` to a copy of `seed`; splices take bytes from other seeds of `corpus`. */
export function mutate(seed: Uint8Array, mutations: readonly Mutation[], corpus: readonly Uint8Array[], dictionary: readonly string[] = []): Uint8Array {
  let b: Uint8Array = Uint8Array.from(seed);
  for (const mu of mutations) {
    const at = b.length === 0 ? 0 : mu.at % (b.length + 1);
    const i = Math.min(at, b.length - 1);
    switch (mu.kind) {
      case 'flip':
        if (b.length > 0) b[i] = b[i]! ^ (1 << mu.bit);
        break;
      case 'set':
        if (b.length > 0) b[i] = mu.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + mu.size)]);
        break;
      case 'insert':
        b = insertAt(b, at, mu.bytes);
        break;
      case 'length16':
        writeUint(b, at, 2, mu.value & 0xffff);
        break;
      case 'length32':
        writeUint(b, at, 4, mu.value);
        break;
      case 'splice': {
        const other = corpus[mu.from % corpus.length]!;
        const start = other.length === 0 ? 0 : mu.start % other.length;
        b = insertAt(b, at, other.subarray(start, start + mu.size));
        break;
      }
      case 'token':
        if (dictionary.length > 0) b = insertAt(b, at, new TextEncoder().encode(dictionary[mu.which % dictionary.length]));
        break;
    }
  }
  return b;
}

const cutsArbitrary = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 });
const filler = fc.integer({ min: 0, max: 255 });

/** Arbitrary bytes (and the target's own generated inputs) parse or fail with the typed error. */
export function randomInputProperty(target: FuzzTarget): fc.IPropertyWithHooks<[Uint8Array, number[], number]> {
  const bytes = fc.uint8Array({ maxLength: 1500 });
  const input = target.generated === undefined ? bytes : fc.oneof(bytes, target.generated);
  return fc.property(input, cutsArbitrary, filler, (b, cuts, fill) => checkCase(target, b, cuts, fill));
}

/** Mutated seeds of the corpus parse or fail with the typed error. */
export function mutatedInputProperty(target: FuzzTarget): fc.IPropertyWithHooks<[Uint8Array, Mutation[], number[], number]> {
  return fc.property(
    fc.constantFrom(...target.corpus.all),
    fc.array(mutation, { minLength: 1, maxLength: 6 }),
    cutsArbitrary,
    filler,
    (seed, mutations, cuts, fill) => checkCase(target, mutate(seed, mutations, target.corpus.all, target.dictionary), cuts, fill),
  );
}

/** Every valid seed parses without any error and round-trips; every crasher fails with the typed error at most. */
export function checkCorpus(target: FuzzTarget): void {
  if (target.corpus.valid.length === 0) throw new Error(`${target.name}: empty corpus`);
  for (const seed of target.corpus.valid) {
    target.run(seed, [seed.length || 1]);
    target.roundTrip?.(seed);
  }
  for (const crasher of target.corpus.crashers) checkCase(target, crasher, [1, 7, 300], 0xa5);
}

/** Feeds `input` to `push` in chunks of the sizes in `cuts`, cycled. */
export function inChunks(input: Uint8Array, cuts: readonly number[], push: (chunk: Uint8Array) => void): void {
  let k = 0;
  for (let off = 0; off < input.length; k++) {
    const size = Math.max(1, cuts[k % cuts.length] ?? 1);
    push(input.subarray(off, off + size));
    off += size;
  }
}
