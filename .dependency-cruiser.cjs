// The architecture's arrows, checked by `pnpm deps:check` (dependency-cruiser) on every source
// file of the packages and apps. See DESIGN.md ("Dependencies point one way") and
// CONTRIBUTING.md ("Code rules").
//
//   apps/*  ->  packages/client, packages/server  ->  packages/protocol
//   apps/server  ->  packages/redis  ->  packages/server (Redis implements what the server injects)
//   (apps/cli, the client side, uses packages/client and packages/protocol only)
//
// Imports of another package go through its name (@nat/...), which resolves to its built
// dist/ (or stays unresolved before a build): the rules match both forms.
const pkg = (name) => `^(packages/${name}/|@nat/${name}$)`;
const app = '^(apps/|@nat/(cli|server-app)$)';

// The sans-I/O cores (DESIGN.md, "Layers" 2): state machines fed bytes and time from outside.
// eslint.config.js holds the same list as globs (no timer or clock globals in them): keep both.
// Exactly the files that are pure today; their neighbours that import a node: module are
// drivers (or, for the TURN server's auth.ts and nonce.ts, node:crypto users) and not listed.
const cores = [
  'packages/client/src/transaction/',
  'packages/client/src/ice/',
  'packages/client/src/turn/(core|credentials|data-path|events|exchange|options|peer-outcomes|peers|requests)\\.ts$',
  'packages/client/src/link/(records|seal|errors)\\.ts$',
  'packages/server/src/turn/(core|allocation|peer-policy|answers|authenticate|lifecycle|options|peer-check|state|handlers/[^/]+)\\.ts$',
  'packages/server/src/stun/(responder|endpoints|rate-limiter)\\.ts$',
  'packages/server/src/rendezvous/token-bucket\\.ts$',
];
const core = `^(${cores.join('|')})`;

// Node modules that do I/O or read the clock: no core reaches one, even through other files.
const io =
  '^(node:)?(dgram|net|tls|http|https|http2|fs|fs/promises|dns|dns/promises|child_process|cluster|worker_threads|os|timers|timers/promises|readline|perf_hooks|inspector|stream|events)$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'protocol-imports-no-other-package',
      comment: '@nat/protocol is the bottom layer: it imports neither the client, the server nor an app.',
      severity: 'error',
      from: { path: '^packages/protocol/' },
      to: { path: `${pkg('client')}|${pkg('server')}|${pkg('redis')}|${app}` },
    },
    {
      name: 'client-does-not-import-server',
      comment: '@nat/client and @nat/server are siblings: what both need lives in @nat/protocol.',
      severity: 'error',
      from: { path: '^packages/client/' },
      to: { path: pkg('server') },
    },
    {
      name: 'server-does-not-import-client',
      comment: '@nat/server and @nat/client are siblings: what both need lives in @nat/protocol.',
      severity: 'error',
      from: { path: '^packages/server/' },
      to: { path: pkg('client') },
    },
    {
      name: 'server-does-not-import-redis',
      comment: '@nat/server defines the stores it needs as interfaces with in-memory defaults; @nat/redis implements them and the app wires them in.',
      severity: 'error',
      from: { path: '^packages/(server|client)/' },
      to: { path: pkg('redis') },
    },
    {
      name: 'cli-does-not-import-server',
      comment:
        'The nat CLI is a client: what it shares with the server (REST API credentials, peer address ranges) lives in @nat/protocol, and `pnpm demo` runs the nat-server binary instead of importing the server.',
      severity: 'error',
      from: { path: '^apps/cli/src/' },
      to: { path: pkg('server') },
    },
    {
      name: 'packages-do-not-import-apps',
      comment: 'The arrows point down: apps -> client/server -> protocol, never back up.',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: app },
    },
    {
      name: 'apps-do-not-import-each-other',
      comment: 'nat and nat-server share code through the packages, not through each other.',
      severity: 'error',
      from: { path: '^apps/([^/]+)/' },
      to: { path: '^apps/', pathNot: '^apps/$1/' },
    },
    {
      name: 'no-relative-import-across-packages',
      comment: 'Another package is imported by its name (@nat/...), never by a relative path into its files.',
      severity: 'error',
      from: { path: '^(packages|apps)/([^/]+)/' },
      to: { path: '^(packages|apps)/', pathNot: '^$1/$2/', dependencyTypes: ['local'] },
    },
    {
      name: 'protocol-does-no-io',
      comment: "@nat/protocol opens no socket, reads no file and no clock: of node's modules it may use the pure ones (crypto, zlib, buffer).",
      severity: 'error',
      // Known debt: the expose mux (expose/session.ts, expose/splice.ts) wraps node:stream
      // Duplexes inside the protocol package; it belongs in the client/server drivers.
      from: { path: '^packages/protocol/src/', pathNot: '^packages/protocol/src/expose/(session|splice)\\.ts$' },
      to: {
        dependencyTypes: ['core'],
        pathNot: '^(node:)?(crypto|zlib|buffer)$',
      },
    },
    {
      name: 'cores-import-no-node-module',
      comment: 'A sans-I/O core imports no node: module: sockets, timers and the clock are fed in by its driver.',
      severity: 'error',
      from: { path: core },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'cores-reach-no-io',
      comment: 'A sans-I/O core does not reach a socket, file or timer module through other files either (it imported a driver).',
      severity: 'error',
      from: { path: core },
      to: { path: io, reachable: true },
    },
    {
      name: 'src-does-not-import-tests',
      comment: 'Shipped code does not depend on test helpers.',
      severity: 'error',
      from: { path: '^(packages|apps)/[^/]+/src/' },
      to: { path: '^(packages|apps)/[^/]+/(test|bench|fuzz)/|^tests/' },
    },
    {
      name: 'src-uses-declared-dependencies',
      comment:
        'Shipped code imports only its package.json dependencies (a devDependency or an undeclared package is missing for whoever installs the tarball).',
      severity: 'error',
      from: { path: '^(packages|apps)/[^/]+/src/' },
      to: { dependencyTypes: ['npm-dev', 'npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'no-unresolvable-import',
      comment: 'An import that resolves to nothing (a typo, or a file that was moved).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, pathNot: '^@nat/' },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules', '/dist/'] },
    exclude: { path: ['/dist/', 'node_modules'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'types', 'node', 'default'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
  },
};
