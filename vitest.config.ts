import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// One vitest run covers every package: `pnpm test` builds first (the apps' tests start the
// built binaries), then runs these projects. NAT_TEST_REPORT=FILE adds a JSON report (CI reads
// it to print its closing "tests: N passed, N failed" line).
const report = process.env.NAT_TEST_REPORT;

/**
 * Test files that run at once (NAT_TEST_WORKERS overrides it). Vitest's default on this 2-core
 * machine would be one: the suite's lab and interop files spend most of their time waiting (rate-
 * limited transfers, timers, daemons starting in namespaces), so several at once keep both cores
 * busy. Files that cannot share the machine are listed in tests/vitest.shared.ts and run alone
 * after the rest.
 */
const workers = Number(process.env.NAT_TEST_WORKERS ?? 3);

/**
 * Seconds each of the slowest files took, one file at a time on a 2-core machine: a hint for the
 * order when vitest has no timing of its own (a fresh clone, as in CI). Only the order depends on
 * it: a file missing here or renamed just starts later.
 */
const KNOWN_SECONDS: Readonly<Record<string, number>> = {
  'tests/lab/moving.test.ts': 172,
  'tests/lab/ice-matrix.test.ts': 98,
  'tests/portmap/miniupnpd.test.ts': 43,
  'tests/tunnel/netns.test.ts': 42,
  'tests/zeronet/zeronet.test.ts': 80,
  'tests/cluster/three-nodes.test.ts': 20,
  'tests/peers/failover.test.ts': 15,
  'tests/cluster/turn-quota.test.ts': 15,
  'tests/bench/cluster.test.ts': 15,
  'tests/cluster/expose-cluster.test.ts': 10,
  'tests/readme/recipes.test.ts': 38,
  'tests/tooling/checks.test.ts': 35,
  'tests/bench/args.test.ts': 30,
  'tests/lab/ipv6.test.ts': 30,
  'tests/turn/interop-uclient.test.ts': 28,
  'tests/lab/one-address.test.ts': 25,
  'tests/lab/only-443.test.ts': 18,
  'tests/packaging/pack.test.ts': 30,
};

/**
 * Longest first, so that the long files do not start last and leave the other workers idle at the
 * end: by the duration vitest recorded in its cache when it has one, else by KNOWN_SECONDS, else
 * in vitest's own order (which runs the projects one after the other, by name).
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification): number => {
      const file = relative(root, spec.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`);
      return cached ? cached.duration / 1000 : (KNOWN_SECONDS[file] ?? 0);
    };
    return base
      .map((spec, i) => ({ spec, i, s: seconds(spec), group: spec.project.config.sequence.groupOrder }))
      .sort((a, b) => a.group - b.group || b.s - a.s || a.i - b.i)
      .map((x) => x.spec);
  }
}

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tests/vitest.config.ts', 'tests/vitest.solo.config.ts'],
    maxWorkers: workers,
    sequence: { sequencer: LongestFirst },
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
