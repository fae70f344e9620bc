/**
 * `pnpm fuzz`: the STUN decoder's hostile-input properties and every other target of fuzz/targets.ts
 * at full strength (100,000 cases each by default; FUZZ_RUNS=N to change, FUZZ_SEED=N to replay,
 * FUZZ_TARGET=name for one target). Exits non-zero on any failure and prints the counterexample
 * that fast-check shrank it to.
 */
import fc from 'fast-check';
import { checkCorpus, mutatedInputProperty, randomInputProperty } from './harness.js';
import { mutatedMessageProperty, randomAttributesProperty, randomBytesProperty, seedCorpus } from './stun-properties.js';
import { TARGETS } from './targets.js';

const numRuns = Number(process.env.FUZZ_RUNS ?? 100_000);
const seed = process.env.FUZZ_SEED === undefined ? Date.now() : Number(process.env.FUZZ_SEED);
const only = process.env.FUZZ_TARGET;
const properties: [string, unknown][] = [
  ['stun: random bytes', randomBytesProperty],
  ['stun: mutated valid messages', mutatedMessageProperty(seedCorpus())],
  ['stun: random attribute values', randomAttributesProperty],
];
for (const target of TARGETS) {
  checkCorpus(target);
  properties.push([`${target.name}: arbitrary input`, randomInputProperty(target)], [`${target.name}: mutated corpus`, mutatedInputProperty(target)]);
}
let failed = false;
console.log(`fuzzing @nat/protocol's parsers: ${numRuns} cases per property, seed ${seed}`);
for (const [name, property] of properties) {
  if (only !== undefined && !name.startsWith(`${only}:`)) continue;
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
