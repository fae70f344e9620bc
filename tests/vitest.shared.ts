/**
 * What the two vitest projects of tests/ share: vitest.config.ts (@nat/tests, whose files run
 * beside other files, several at a time) and vitest.solo.config.ts (@nat/tests-solo, whose files
 * run alone, one at a time, after every other file of the run has finished).
 */

/**
 * Files that cannot share the machine with other test files, and why. Everything else in tests/
 * runs in parallel with other files, so a test file must not hold a fixed resource of the host:
 * a fixed port on a loopback address outside its own network namespace, a fixed namespace name,
 * a fixed path under /tmp, a global sysctl, or a check that sees other files' labs.
 */
export const SOLO_FILES: readonly string[] = [
  // It SIGKILLs a lab's owner and then checks that the owner's namespaces are still there, until
  // its own sweepStaleLabs() removes them; any other file that builds a lab meanwhile sweeps them
  // first (createLab sweeps the namespaces of dead owners).
  'lab/netns.test.ts',
];

/** Per-test timeout of both projects, ms. */
export const TEST_TIMEOUT_MS = 20_000;
