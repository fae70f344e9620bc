import { defineConfig } from 'vitest/config';

// One vitest run covers every package: `pnpm test` builds first (the apps' tests start the
// built binaries), then runs these projects. NAT_TEST_REPORT=FILE adds a JSON report (CI reads
// it to print its closing "tests: N passed, N failed" line).
const report = process.env.NAT_TEST_REPORT;

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tests'],
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
