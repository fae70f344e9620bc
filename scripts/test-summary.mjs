#!/usr/bin/env node
// Prints vitest's JSON report as one closing line, "tests: N passed, N failed, N skipped", and
// the names of failed tests, so CI logs end with a count any reader can parse.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.vitest-report.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`no test report at ${file}: ${e.message}`);
  process.exit(1);
}
const failed = [];
for (const suite of report.testResults ?? []) {
  for (const t of suite.assertionResults ?? []) {
    if (t.status === 'failed') failed.push(`${suite.name.replace(process.cwd() + '/', '')} > ${t.fullName}`);
  }
}
for (const f of failed) console.log(`FAILED: ${f}`);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
