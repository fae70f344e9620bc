import fc from 'fast-check';
import { describe, it } from 'vitest';
import { mutatedMessageProperty, randomAttributesProperty, randomBytesProperty, seedCorpus } from '../fuzz/stun-properties.js';

// `pnpm fuzz` runs the same properties with 100,000+ cases; CI runs a few thousand per property.
const runs = Number(process.env.FUZZ_RUNS ?? 3000);

describe('STUN decoder under hostile input', () => {
  it('random bytes decode or fail with DecodeError, reading nothing outside the input', () => {
    fc.assert(randomBytesProperty, { numRuns: runs });
  });
  it('mutated valid messages decode or fail with DecodeError', () => {
    fc.assert(mutatedMessageProperty(seedCorpus()), { numRuns: runs });
  });
  it('random values of every registered attribute decode or fail with DecodeError', () => {
    fc.assert(randomAttributesProperty, { numRuns: runs });
  });
});
