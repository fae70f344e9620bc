/**
 * The published packages, as someone who consumes one of them gets them: each package is packed
 * with `pnpm pack` (how the packages are published), and the tarballs must carry the LICENSE,
 * no `workspace:` range, and source maps whose sources are in the tarball. Then plain npm
 * installs the tarballs in an empty temporary folder (the only network use of this file: the
 * package registry, for the third-party dependencies), `tsc --strict` with no `lib` setting
 * type-checks tests/packaging/consumer.ts against the installed types, and node runs it: a STUN
 * server on 127.0.0.1 port 0 from @nat/server, a binding from @nat/client, mapped address
 * checked. The two binaries of the app tarballs must start. `npm pack` must be refused with a
 * message that names `pnpm pack`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGES = ['packages/protocol', 'packages/client', 'packages/server', 'packages/redis', 'apps/cli', 'apps/server'] as const;
const INSTALL_TIMEOUT_MS = 300_000;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The environment of a user's shell: without the npm_* variables that `pnpm test` puts in this
 * process (npm would take npm_config_user_agent and the rest as its own settings).
 */
function shellEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, npm_config_update_notifier: 'false' };
}

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((done) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20, env: shellEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The pnpm that runs this test (`pnpm test` sets npm_execpath), else the one on PATH. */
function pnpm(args: readonly string[], cwd: string): Promise<Run> {
  const execPath = process.env.npm_execpath ?? '';
  if (/pnpm[^/]*$/.test(execPath)) {
    return /\.[cm]?js$/.test(execPath) ? run(process.execPath, [execPath, ...args], cwd) : run(execPath, args, cwd);
  }
  return run('pnpm', args, cwd);
}

let work: string;
const tarballs = new Map<string, string>();
const unpacked = new Map<string, string>();
let consumer: string;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nat-pack-'));
  for (const pkg of PACKAGES) {
    const dest = join(work, 'tarballs', pkg.replace('/', '-'));
    await mkdir(dest, { recursive: true });
    const r = await pnpm(['pack', '--pack-destination', dest], join(repo, pkg));
    expect(r.code, `pnpm pack in ${pkg}: ${r.stderr}${r.stdout}`).toBe(0);
    const [file] = (await readdir(dest)).filter((f) => f.endsWith('.tgz'));
    expect(file, `no tarball from pnpm pack in ${pkg}`).toBeDefined();
    tarballs.set(pkg, join(dest, file!));
    const out = join(work, 'unpacked', pkg.replace('/', '-'));
    await mkdir(out, { recursive: true });
    const x = await run('tar', ['-xzf', join(dest, file!), '-C', out], work);
    expect(x.code, x.stderr).toBe(0);
    unpacked.set(pkg, join(out, 'package'));
  }
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('packed tarballs', () => {
  it.each(PACKAGES)('%s ships the LICENSE of the repository', async (pkg) => {
    const license = await readFile(join(repo, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License/);
    expect(await readFile(join(unpacked.get(pkg)!, 'LICENSE'), 'utf8')).toBe(license);
  });

  it.each(PACKAGES)('%s has no workspace: range left in its package.json', async (pkg) => {
    const manifest = JSON.parse(await readFile(join(unpacked.get(pkg)!, 'package.json'), 'utf8')) as Record<string, unknown>;
    const ranges: string[] = [];
    for (const key of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      for (const [name, range] of Object.entries((manifest[key] ?? {}) as Record<string, string>)) ranges.push(`${name}@${range}`);
    }
    expect(ranges.filter((r) => r.includes('workspace:'))).toEqual([]);
    if (pkg !== 'packages/protocol') expect(ranges.some((r) => r.startsWith('@nat/protocol@^'))).toBe(true);
  });

  it.each(PACKAGES)('%s: every source map points at sources that are in the tarball', async (pkg) => {
    const root = unpacked.get(pkg)!;
    const maps = (await listFiles(root)).filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(await readFile(map, 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const source of sources) {
        const file = resolve(dirname(map), sourceRoot ?? '', source);
        if (!file.startsWith(root + sep) || !existsSync(file)) missing.push(`${relative(root, map)} -> ${source}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('installed with plain npm in an empty folder', () => {
  beforeAll(async () => {
    consumer = join(work, 'consumer');
    await mkdir(consumer, { recursive: true });
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
    // The packages' public types use Buffer, node:net, node:tls and EventEmitter: a TypeScript
    // consumer needs @types/node (the range the repository itself builds with).
    const root = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const typesNode = `@types/node@${root.devDependencies['@types/node']}`;
    const files = PACKAGES.map((p) => tarballs.get(p)!);
    const r = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...files, typesNode],
      consumer,
      INSTALL_TIMEOUT_MS,
    );
    expect(r.code, `npm install of the tarballs failed:\n${r.stderr}${r.stdout}`).toBe(0);
    await copyFile(join(repo, 'tests/packaging/consumer.ts'), join(consumer, 'consumer.ts'));
    // strict, ESM resolution as Node does it, and no `lib`: the default library of the target.
    const tsconfig = { compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', outDir: 'out' }, files: ['consumer.ts'] };
    await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  }, INSTALL_TIMEOUT_MS + 30_000);

  it('tsc --strict type-checks the consumer script against the installed types', async () => {
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], consumer);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(existsSync(join(consumer, 'out/consumer.js'))).toBe(true);
  }, 120_000);

  it('node runs it: a STUN binding from @nat/client to a @nat/server on 127.0.0.1 port 0', async () => {
    const r = await run(process.execPath, ['out/consumer.js'], consumer, 60_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { server: number; mapped: string; local: string };
    expect(out.server).toBeGreaterThan(0);
    expect(out.mapped).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(out.mapped).toBe(out.local);
  }, 60_000);

  it.each([
    ['nat', /^Usage: nat /],
    ['nat-server', /^Usage: nat-server /],
  ])(
    'the %s binary of the installed app starts',
    async (bin, usage) => {
      const r = await run(join(consumer, 'node_modules/.bin', bin), ['--help'], consumer, 60_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(usage);
    },
    60_000,
  );
});

describe('packing with npm', () => {
  it('is refused, with a message that says to use pnpm pack', async () => {
    const r = await run('npm', ['pack', '--dry-run', '--loglevel=error'], join(repo, 'packages/client'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('@nat/client: refusing to pack with npm/');
    expect(r.stderr).toContain('`pnpm pack`');
  }, 120_000);
});
