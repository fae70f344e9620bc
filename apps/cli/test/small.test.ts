/** `nat --version`, `nat` alone, unknown options before missing ones, `nat id`, `nat map add` without a router. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOrCreateIdentity } from '@nat/client';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Runs the built `nat` (optionally under `prefix`, e.g. unshare) and resolves to its exit code and output. */
function nat(args: string[], prefix: string[] = [], timeout = 20_000): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  const started = Date.now();
  const [cmd, ...rest] = [...prefix, process.execPath, main, ...args];
  return new Promise((resolve) => {
    execFile(cmd!, rest, { timeout, killSignal: 'SIGKILL' }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, out, err, ms: Date.now() - started });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'nat-small-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('nat itself', () => {
  it('--version prints the version of package.json', async () => {
    const c = capture();
    expect(await runCli(['--version'], c.io)).toBe(0);
    expect(c.out()).toBe(`${pkg.version}\n`);
    const r = await nat(['--version']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${pkg.version}\n`);
  });

  it('with no arguments prints the help on stderr and exits 2', async () => {
    const c = capture();
    expect(await runCli([], c.io)).toBe(2);
    expect(c.err()).toMatch(/^Usage: nat /);
    expect(c.err()).toMatch(/Commands:/);
    expect(c.out()).toBe('');
  });

  it('reports an unknown option before a missing required one', async () => {
    const c = capture();
    expect(await runCli(['detect', '--bogus'], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown option '--bogus'/);
    expect(c.err()).not.toMatch(/--server/);
    // the required option is still required
    const d = capture();
    expect(await runCli(['detect', '--json'], d.io)).toBe(2);
    expect(d.err()).toMatch(/required option '-s, --server <host\[:port\]>' not specified/);
    const e = capture();
    expect(await runCli(['turn', 'credentials', '--user', 'alice'], e.io)).toBe(2);
    expect(e.err()).toMatch(/--secret/);
  });
});

describe('nat id', () => {
  it('prints the peer id of --identity FILE (creating it), the same id the identity has', async () => {
    const file = join(dir, 'sub', 'id.pem');
    const c = capture();
    expect(await runCli(['id', '--identity', file], c.io)).toBe(0);
    const id = (await loadOrCreateIdentity(file)).id;
    expect(c.out()).toBe(`${id}\n`);
    expect(c.err()).toContain(`${file} (created now)`);
    const j = capture();
    expect(await runCli(['id', '--identity', file, '--json'], j.io)).toBe(0);
    expect(JSON.parse(j.out())).toEqual({ id, identity: file, created: false });
  });

  it('uses the default identity under XDG_CONFIG_HOME', async () => {
    const r = await nat(['id', '--json'], ['env', `XDG_CONFIG_HOME=${join(dir, 'xdg')}`]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { id: string; identity: string };
    expect(j.identity).toBe(join(dir, 'xdg', 'nat', 'identity.pem'));
    expect(j.id).toBe((await loadOrCreateIdentity(j.identity)).id);
  });

  it('fails at once, naming the path, on an identity that cannot be created (/proc) and on a corrupt one', async () => {
    const r = await nat(['id', '--identity', '/proc/nat-test/id.key'], [], 15_000);
    expect(r.code).toBe(1);
    expect(r.err).toContain('/proc/nat-test/id.key');
    expect(r.ms).toBeLessThan(5000);
    const bad = join(dir, 'corrupt.pem');
    writeFileSync(bad, 'not a key\n');
    const c = capture();
    expect(await runCli(['id', '--identity', bad], c.io)).toBe(1);
    expect(c.err()).toContain(bad);
    expect(c.err()).toMatch(/not an Ed25519 private key/);
  });
});

describe('nat map without a router', () => {
  // A private network namespace with only loopback: no default gateway at all.
  it('map add exits 3 like map list, saying there is no gateway', async () => {
    const state = join(dir, 'portmap.json');
    const add = await nat(['map', 'add', '7000', '--state', state], ['unshare', '--net']);
    expect(add.code, add.err).toBe(3);
    expect(add.err).toMatch(/no IPv4 default gateway/);
    const list = await nat(['map', 'list', '--state', state], ['unshare', '--net']);
    expect(list.code).toBe(3);
  });
});

describe('a reader that goes away', () => {
  it('nat --help into a closed pipe (as `nat --help | head -1`) exits 0 without an EPIPE crash', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [main, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect({ code, err }).toEqual({ code: 0, err: '' });
  });
});
