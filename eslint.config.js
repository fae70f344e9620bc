// ESLint flat config (`pnpm lint`). Formatting is Prettier's job (`pnpm format`), the arrows
// between packages and the sans-I/O cores are dependency-cruiser's (`pnpm deps:check`): this
// file holds the rules that catch defects. See CONTRIBUTING.md.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The TypeScript projects that hold every linted .ts file but the root bench/ (which has none):
// each package's test project covers its src/, test/ and bench/ (protocol: fuzz/ too).
const projects = ['packages/*/tsconfig.test.json', 'apps/*/tsconfig.test.json', 'tests/tsconfig.json'];

// Files over the size limit of the code rules (400 lines, 500 in packages/client) before the
// limit was checked: a warning until they are split. Every other file is held to the limit.
const oversized = [
  'apps/cli/src/commands/ping.ts', // 416 lines once Prettier has wrapped the issue-13 version
  'apps/cli/src/commands/tunnel.ts',
  'packages/client/src/link/link.ts',
  'packages/client/src/turn/core.ts',
  'packages/server/src/expose/service.ts',
  'packages/server/src/rendezvous/service.ts',
  'packages/server/src/stun/server.ts',
  'packages/server/src/turn/core.ts',
];
// Functions over "about 80 lines" (90, blank and comment lines not counted) before the limit was
// checked: a warning until they are split.
const longFunctions = [
  'apps/cli/src/cli.ts',
  'apps/cli/src/commands/tunnel.ts',
  // 81-91 lines today, over 90 once Prettier has wrapped their long lines
  'apps/cli/src/commands/expose-public.ts',
  'apps/cli/src/commands/listen.ts',
  'apps/cli/src/commands/ping.ts',
  'apps/server/src/cli.ts',
  'packages/client/src/discovery/detect.ts',
  'packages/client/src/discovery/lifetime.ts',
  'packages/client/src/link/link.ts',
  'packages/client/src/link/open.ts', // openLink, moved out of link.ts as it was
  'packages/server/src/stun/server.ts',
];
// The sans-I/O cores, as in .dependency-cruiser.cjs (which keeps node: modules out of them):
// here, no timers and no clock either; time and wake-ups come from their driver.
const cores = [
  'packages/client/src/transaction/**/*.ts',
  'packages/client/src/ice/**/*.ts',
  'packages/client/src/turn/{core,credentials,data-path,events,exchange,options,peer-outcomes,peers,requests}.ts',
  'packages/client/src/link/{records,seal,errors}.ts',
  'packages/server/src/turn/{core,allocation,peer-policy,answers,authenticate,lifecycle,options,peer-check,state,handlers/*}.ts',
  'packages/server/src/stun/{responder,endpoints,rate-limiter}.ts',
  'packages/server/src/rendezvous/token-bucket.ts',
];
const coreMessage = 'a sans-I/O core is fed the time and asked when to wake up: its driver keeps the timers and the clock';
const maxLines = (max) => ['error', { max, skipBlankLines: false, skipComments: false }];

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', '**/.turbo/**', 'coverage/**', 'prof/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: {
        // Node's globals; TypeScript checks the names in .ts files, this is for the .js/.mjs ones.
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        performance: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // A `let` that a closure reads before its one assignment (a callback that may run first).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'max-lines': maxLines(400),
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', __dirname: 'readonly' } },
  },
  {
    // Type-aware rules: promises that nobody awaits or that go where a callback's result is
    // ignored, awaits of non-promises, throwing things that are not errors.
    files: ['packages/**/*.ts', 'apps/**/*.ts', 'tests/**/*.ts'],
    ignores: ['**/vitest.config.ts'],
    languageOptions: { parserOptions: { project: projects, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // The TURN core's Reject is thrown on the hot path on purpose: no stack to capture.
      '@typescript-eslint/only-throw-error': ['error', { allow: [{ from: 'file', name: 'Reject' }] }],
      // Passing on a caught value (`catch (e) { reject(e) }`) is fine; rejecting with a string is not.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/no-for-in-array': 'error',
      '@typescript-eslint/no-base-to-string': 'error',
      '@typescript-eslint/restrict-plus-operands': 'error',
      // "[object Object]" in a message, numbers sorted as strings, a union member with no case.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/require-array-sort-compare': ['error', { ignoreStringArrays: true }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    // Library and app code: no `any`, no stray output from the libraries.
    files: ['packages/*/src/**/*.ts', 'apps/*/src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['packages/*/src/**/*.ts', 'apps/*/src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 90, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: longFunctions,
    rules: { 'max-lines-per-function': ['warn', { max: 90, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['packages/*/src/**/*.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    files: cores,
    rules: {
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'performance', 'process'].map((name) => ({
          name,
          message: coreMessage,
        })),
      ],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: coreMessage }],
    },
  },
  {
    files: ['packages/client/src/**/*.ts'],
    rules: { 'max-lines': maxLines(500) },
  },
  {
    files: oversized,
    rules: { 'max-lines': ['warn', { max: 400 }] },
  },
  {
    files: oversized.filter((f) => f.startsWith('packages/client/')),
    rules: { 'max-lines': ['warn', { max: 500 }] },
  },
  {
    // Tests, benchmarks and fuzzers: casts and `any` at the edges of a test are fine.
    files: ['**/test/**/*.ts', 'tests/**/*.ts', 'bench/**/*.ts', 'packages/*/bench/**/*.ts', 'packages/*/fuzz/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'max-lines': 'off',
    },
  },
);
