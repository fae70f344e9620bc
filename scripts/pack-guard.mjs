#!/usr/bin/env node
// `prepack` of every published package. Packing is done with `pnpm pack` (or `pnpm publish`):
// pnpm rewrites the `workspace:^` ranges of the @nat/* dependencies into real version ranges.
// `npm pack` leaves `workspace:^` in the tarball's package.json, and such a tarball does not
// install with npm, so this refuses it. It also refuses to pack a package that was not built.
import { existsSync } from 'node:fs';

const agent = process.env.npm_config_user_agent ?? '';
const name = process.env.npm_package_name ?? 'this package';
if (!agent.startsWith('pnpm/')) {
  const tool = agent.split(' ')[0] || 'an unknown tool';
  console.error(
    `${name}: refusing to pack with ${tool}: it would leave "workspace:^" in the dependencies ` +
      'and the tarball would not install. Pack with `pnpm pack` (or publish with `pnpm publish`).',
  );
  process.exit(1);
}
if (!existsSync('dist/index.js')) {
  console.error(`${name}: dist/index.js is missing in ${process.cwd()}: run \`pnpm build\` at the repository root first.`);
  process.exit(1);
}
