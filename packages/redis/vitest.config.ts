import { defineProject } from 'vitest/config';

// The package's tests run against a real redis-server and live in tests/cluster.
export default defineProject({
  test: {
    name: '@nat/redis',
    include: ['test/**/*.test.ts'],
    passWithNoTests: true,
    testTimeout: 20_000,
  },
});
