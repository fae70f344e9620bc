import { defineProject } from 'vitest/config';
import { SOLO_FILES, TEST_TIMEOUT_MS } from './vitest.shared.js';

// The files of tests/ that run beside other files; SOLO_FILES (vitest.shared.ts) run alone, in
// the @nat/tests-solo project (vitest.solo.config.ts).
export default defineProject({
  test: {
    name: '@nat/tests',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', ...SOLO_FILES],
    testTimeout: TEST_TIMEOUT_MS,
  },
});
