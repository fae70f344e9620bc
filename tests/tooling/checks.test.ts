/**
 * The static checks of `pnpm check` do what CONTRIBUTING.md says they do. The architecture
 * check (dependency-cruiser with .dependency-cruiser.cjs) runs on a small tree made here, with
 * one file per forbidden arrow and the allowed ones beside them, and must name exactly the
 * forbidden ones; on the repository it must find nothing. The linter (eslint.config.js) must
 * flag the defects it was set up for in library code.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const depcruise = join(repo, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  readonly rule: { readonly name: string };
  readonly from: string;
  readonly to: string;
}

function cruise(cwd: string, dirs: readonly string[]): Promise<Violation[]> {
  const args = [depcruise, ...dirs, '--config', join(repo, '.dependency-cruiser.cjs'), '--output-type', 'json'];
  return new Promise((done, fail) => {
    execFile(process.execPath, args, { cwd, maxBuffer: 64 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      // exit code = number of errors; the JSON report is on stdout either way
      if (err && typeof err.code !== 'number') return fail(new Error(`depcruise did not run: ${err.message}\n${stderr}`));
      try {
        done((JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations);
      } catch {
        fail(new Error(`depcruise printed no JSON report:\n${stderr}${stdout.slice(0, 2000)}`));
      }
    });
  });
}

// path -> source: the forbidden arrows, each in its own file, and allowed ones.
const TREE: Record<string, string> = {
  // allowed: apps -> client/protocol, nat-server -> server; protocol -> node:crypto; a core -> protocol
  'apps/cli/src/main.ts': "import { c } from '@nat/client';\nimport { p } from '@nat/protocol';\nexport const all = [c, p];\n",
  'apps/server/src/main.ts': "import { s } from '@nat/server';\nimport { p } from '@nat/protocol';\nexport const all = [s, p];\n",
  // the CLI's tests may start a server in-process (only shipped code is checked)
  'apps/cli/test/server.test.ts': "import { s } from '@nat/server';\nexport const x = s;\n",
  'packages/protocol/src/hash.ts': "import { createHash } from 'node:crypto';\nexport const p = createHash;\n",
  'packages/client/src/ice/checklist.ts': "import { p } from '@nat/protocol';\nexport const ok = p;\n",
  // forbidden
  'packages/protocol/src/up.ts': "import { c } from '@nat/client';\nexport const x = c;\n",
  'packages/protocol/src/socket.ts': "import { createSocket } from 'node:dgram';\nexport const x = createSocket;\n",
  'packages/client/src/sibling.ts': "import { s } from '@nat/server';\nexport const x = s;\n",
  'packages/server/src/sibling.ts': "import type { C } from '@nat/client';\nexport type X = C;\n",
  'packages/server/src/app.ts': "import { a } from '@nat/cli';\nexport const x = a;\n",
  'packages/server/src/relative.ts': "import { p } from '../../protocol/src/hash.js';\nexport const x = p;\n",
  'apps/server/src/other-app.ts': "import { all } from '../../cli/src/main.js';\nexport const x = all;\n",
  'packages/client/src/ice/timer.ts': "import { setTimeout } from 'node:timers';\nexport const x = setTimeout;\n",
  'packages/server/src/turn/core.ts': "import { bindRelay } from './relay-socket.js';\nexport const x = bindRelay;\n",
  'packages/server/src/turn/relay-socket.ts': "import { createSocket } from 'node:dgram';\nexport const bindRelay = createSocket;\n",
  'packages/client/src/uses-test.ts': "import { h } from '../test/helper.js';\nexport const x = h;\n",
  'packages/client/test/helper.ts': 'export const h = 1;\n',
  'apps/cli/src/demo.ts': "import { startStunServer } from '@nat/server';\nexport const x = startStunServer;\n",
};

describe('pnpm deps:check (dependency-cruiser)', () => {
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(tmpdir(), 'nat-deps-'));
    for (const [path, source] of Object.entries(TREE)) {
      await mkdir(dirname(join(tree, path)), { recursive: true });
      await writeFile(join(tree, path), source);
    }
    await copyFile(join(repo, 'tsconfig.base.json'), join(tree, 'tsconfig.base.json'));
  });
  afterAll(async () => {
    if (tree) await rm(tree, { recursive: true, force: true });
  });

  it('names every forbidden arrow of a tree and nothing else', async () => {
    const found = (await cruise(tree, ['packages', 'apps'])).map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
    expect(found).toEqual(
      [
        'protocol-imports-no-other-package: packages/protocol/src/up.ts -> @nat/client',
        'protocol-does-no-io: packages/protocol/src/socket.ts -> dgram',
        'client-does-not-import-server: packages/client/src/sibling.ts -> @nat/server',
        'server-does-not-import-client: packages/server/src/sibling.ts -> @nat/client',
        'packages-do-not-import-apps: packages/server/src/app.ts -> @nat/cli',
        'no-relative-import-across-packages: packages/server/src/relative.ts -> packages/protocol/src/hash.ts',
        'apps-do-not-import-each-other: apps/server/src/other-app.ts -> apps/cli/src/main.ts',
        'no-relative-import-across-packages: apps/server/src/other-app.ts -> apps/cli/src/main.ts',
        'cores-import-no-node-module: packages/client/src/ice/timer.ts -> timers',
        'cores-reach-no-io: packages/client/src/ice/timer.ts -> timers',
        'cores-reach-no-io: packages/server/src/turn/core.ts -> dgram',
        'src-does-not-import-tests: packages/client/src/uses-test.ts -> packages/client/test/helper.ts',
        'cli-does-not-import-server: apps/cli/src/demo.ts -> @nat/server',
      ].sort(),
    );
  }, 120_000);

  it('the nat CLI ships without @nat/server: neither its package.json dependencies nor its source name it', async () => {
    const pkg = JSON.parse(await readFile(join(repo, 'apps/cli/package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    expect(Object.keys(pkg.dependencies ?? {})).not.toContain('@nat/server');
    const violations = await cruise(repo, ['apps/cli/src']);
    expect(violations.filter((v) => v.rule.name === 'cli-does-not-import-server')).toEqual([]);
  }, 120_000);

  it('finds nothing in the repository', async () => {
    const dirs = ['packages/protocol/src', 'packages/client/src', 'packages/server/src', 'apps/cli/src', 'apps/server/src'];
    expect(await cruise(repo, dirs)).toEqual([]);
  }, 120_000);
});

describe('pnpm lint (eslint.config.js)', () => {
  // With CI=true typescript-eslint infers a single run and type-checks the files as they are on
  // disk, ignoring the text handed to lintText; these probes are text under real file names.
  const probeOptions = { cwd: repo, overrideConfig: { languageOptions: { parserOptions: { disallowAutomaticSingleRunInference: true } } } };
  const probe = [
    'export async function fetchIt(): Promise<number> { return 1; }',
    'export function forget(): void { fetchIt(); }', // line 2: floating promise
    'export function listen(on: (cb: () => void) => void): void { on(async () => { await fetchIt(); }); }', // line 3: async where void is expected
    'export function loose(x: any): number { return x; }', // line 4: any
    "export function fail(): never { throw 'no'; }", // line 5: not an Error
    'export async function noAwait(): Promise<void> { await 5; }', // line 6: await of a non-promise
  ].join('\n');

  async function lint(filePath: string): Promise<string[]> {
    const eslint = new ESLint(probeOptions);
    const [result] = await eslint.lintText(probe, { filePath: join(repo, filePath) });
    return (result?.messages ?? []).map((m) => `${m.line} ${m.ruleId ?? m.message}`).sort();
  }

  it('flags unawaited and misused promises, any, thrown non-errors and awaited non-promises in library code', async () => {
    // the probe's text, linted as if it were this (real, type-checked) file of @nat/protocol
    expect(await lint('packages/protocol/src/errors.ts')).toEqual([
      '2 @typescript-eslint/no-floating-promises',
      '3 @typescript-eslint/no-misused-promises',
      '4 @typescript-eslint/no-explicit-any',
      '5 @typescript-eslint/only-throw-error',
      '6 @typescript-eslint/await-thenable',
    ]);
  }, 120_000);

  it('keeps timers and the clock out of the sans-I/O cores', async () => {
    const eslint = new ESLint(probeOptions);
    const code = 'export const wake = (): void => {\n  setTimeout(() => undefined, Date.now());\n};\n';
    const messages = async (filePath: string): Promise<string[]> => {
      const [result] = await eslint.lintText(code, { filePath: join(repo, filePath) });
      return (result?.messages ?? []).map((m) => `${m.line} ${m.ruleId ?? m.message}`).sort();
    };
    // the STUN transaction core: flagged; the driver that runs it: not
    expect(await messages('packages/client/src/transaction/transaction.ts')).toEqual(['2 no-restricted-globals', '2 no-restricted-properties']);
    expect(await messages('packages/client/src/driver/runner.ts')).toEqual([]);
  }, 120_000);

  it('allows any in tests, and still flags their promise defects', async () => {
    expect(await lint('tests/tooling/checks.test.ts')).toEqual([
      '2 @typescript-eslint/no-floating-promises',
      '3 @typescript-eslint/no-misused-promises',
      '5 @typescript-eslint/only-throw-error',
      '6 @typescript-eslint/await-thenable',
    ]);
  }, 120_000);
});
