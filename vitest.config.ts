import { defineConfig } from 'vitest/config';

// One vitest run covers every package: `pnpm test` builds first (the apps' tests start the
// built binaries), then runs these projects.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tests'],
  },
});
