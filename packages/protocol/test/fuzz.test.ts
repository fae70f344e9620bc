import fc from 'fast-check';
import { describe, it } from 'vitest';
import { checkCorpus, mutatedInputProperty, randomInputProperty } from '../fuzz/harness.js';
import { TARGETS } from '../fuzz/targets.js';

// Every parser the network feeds, under arbitrary and mutated input (`pnpm fuzz` runs the same
// properties with 100,000+ cases). FUZZ_RUNS=N for more cases here, FUZZ_SEED=N for another seed.
const numRuns = Number(process.env.FUZZ_RUNS ?? 3000);
const seed = Number(process.env.FUZZ_SEED ?? 0x5eed14);

describe('parsers under hostile input', () => {
  for (const target of TARGETS) {
    describe(target.name, () => {
      it('the committed corpus parses (valid seeds round-trip, past crashers fail typed)', () => {
        checkCorpus(target);
      });
      it('arbitrary input fails only with the typed error, in bounded time and memory', () => {
        fc.assert(randomInputProperty(target), { numRuns, seed });
      }, 60_000);
      it('mutated corpus seeds fail only with the typed error, in bounded time and memory', () => {
        fc.assert(mutatedInputProperty(target), { numRuns, seed });
      }, 60_000);
    });
  }
});
