import fc from 'fast-check';
import { describe, it } from 'vitest';
import { checkCorpus, mutatedInputProperty, randomInputProperty } from '../fuzz/harness.js';
import { TARGETS } from '../fuzz/targets.js';

// UPnP's XML under arbitrary and mutated input (`pnpm fuzz` runs the same properties with
// 100,000+ cases). FUZZ_RUNS=N for more cases here, FUZZ_SEED=N for another seed.
const numRuns = Number(process.env.FUZZ_RUNS ?? 3000);
const seed = Number(process.env.FUZZ_SEED ?? 0x5eed14);

describe('UPnP parsers under hostile input', () => {
  for (const target of TARGETS) {
    describe(target.name, () => {
      it('the committed corpus parses (valid seeds round-trip, past crashers fail typed)', () => {
        checkCorpus(target);
      });
      it('arbitrary input fails only with PortMapError, in bounded time', () => {
        fc.assert(randomInputProperty(target), { numRuns, seed });
      }, 60_000);
      it('mutated corpus seeds fail only with PortMapError, in bounded time', () => {
        fc.assert(mutatedInputProperty(target), { numRuns, seed });
      }, 60_000);
    });
  }
});
