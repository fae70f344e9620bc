import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@nat/tests',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 20_000,
  },
});
