/**
 * `pnpm fuzz`: the STUN decoder's hostile-input properties at full strength (100,000 cases each by
 * default; FUZZ_RUNS=N to change, FUZZ_SEED=N to replay). Exits non-zero on the first failure and
 * prints the counterexample that fast-check shrank it to.
 */
import fc from 'fast-check';
import { mutatedMessageProperty, randomAttributesProperty, randomBytesProperty, seedCorpus } from './stun-properties.js';

const numRuns = Number(process.env.FUZZ_RUNS ?? 100_000);
const seed = process.env.FUZZ_SEED === undefined ? Date.now() : Number(process.env.FUZZ_SEED);
const properties: [string, unknown][] = [
  ['random bytes', randomBytesProperty],
  ['mutated valid messages', mutatedMessageProperty(seedCorpus())],
  ['random attribute values', randomAttributesProperty],
];
let failed = false;
console.log(`fuzzing the STUN decoder: ${numRuns} cases per property, seed ${seed}`);
for (const [name, property] of properties) {
  const started = Date.now();
  const result = fc.check(property as fc.IProperty<unknown>, { numRuns, seed });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.failed) {
    failed = true;
    console.log(`FAIL ${name} after ${result.numRuns} cases (${seconds}s)`);
    console.log(fc.defaultReportMessage(result));
  } else {
    console.log(`ok   ${name}: ${result.numRuns} cases, no failure (${seconds}s)`);
  }
}
process.exit(failed ? 1 : 0);
