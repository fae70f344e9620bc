/**
 * `pnpm fuzz` (client part): the UPnP XML targets at full strength (100,000 cases per property by
 * default; FUZZ_RUNS=N to change, FUZZ_SEED=N to replay). Exits non-zero on the first failure.
 */
import fc from 'fast-check';
import { checkCorpus, mutatedInputProperty, randomInputProperty } from './harness.js';
import { TARGETS } from './targets.js';

const numRuns = Number(process.env.FUZZ_RUNS ?? 100_000);
const seed = process.env.FUZZ_SEED === undefined ? Date.now() : Number(process.env.FUZZ_SEED);
let failed = false;
console.log(`fuzzing @nat/client's UPnP parsers: ${numRuns} cases per property, seed ${seed}`);
for (const target of TARGETS) {
  checkCorpus(target);
  for (const [kind, property] of [
    ['arbitrary', randomInputProperty(target)],
    ['mutated', mutatedInputProperty(target)],
  ] as const) {
    const started = Date.now();
    const result = fc.check(property as fc.IProperty<unknown>, { numRuns, seed });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.failed) {
      failed = true;
      console.log(`FAIL ${target.name} (${kind}) after ${result.numRuns} cases (${seconds}s)`);
      console.log(fc.defaultReportMessage(result));
    } else console.log(`ok   ${target.name} (${kind}): ${result.numRuns} cases (${seconds}s)`);
  }
}
process.exit(failed ? 1 : 0);
