import { defineProject } from 'vitest/config';
import { SOLO_FILES, TEST_TIMEOUT_MS } from './vitest.shared.js';

// The files of tests/ that cannot share the machine (the reasons are in vitest.shared.ts): one
// worker, so vitest runs them one at a time after every other file of the run has finished.
export default defineProject({
  test: {
    name: '@nat/tests-solo',
    include: [...SOLO_FILES],
    testTimeout: TEST_TIMEOUT_MS,
    maxWorkers: 1,
  },
});
