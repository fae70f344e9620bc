import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@nat/server-app',
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
