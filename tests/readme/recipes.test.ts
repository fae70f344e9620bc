/**
 * Every command of every README, run as written on one machine (issue 13: "every README path
 * works as written"). Each ```sh line of the root README, the apps' READMEs, SECURITY.md (its
 * recommended configurations) and the packages' READMEs is either run here (tests/readme/runner.ts: addresses mapped to loopback aliases of
 * this run, long-running commands in the background, output checked against what the README
 * says) or listed in EXCLUDED with the reason; a line that is neither fails, and so does an
 * exclusion that no README has any more. Blocks run in order, as a reader would: servers keep
 * running until a later server takes their address, other background commands stop at the end
 * of their block. Spawned processes get a fresh HOME and XDG folders, so the user's own
 * identity and port-mapping state are never read or written, and run in a private network
 * namespace with only loopback when the test runs as root (tests/readme/net.ts), so the peer
 * commands, which gather candidates on every interface, reach nothing but loopback.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { commandLines, shBlocks } from './markdown.js';
import { openNet } from './net.js';
import { killAllProcs } from './processes.js';
import { type Context, NAT_COMMANDS, endBlock, endFile, mapAddresses, resolveCommand, runLine } from './runner.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** README command lines (comments removed; `&&` lists split) this test does not run, and why. */
const EXCLUDED: Record<string, string> = {
  'npx -y pnpm@12.4.2 install': 'installs from the registry; CI runs it, and this test runs on the installed tree',
  'npx -y pnpm@12.4.2 test': 'runs every test, this one included',
  'pnpm test': 'runs every test, this one included',
  'pnpm build': 'this test runs on the built tree (`pnpm test` builds first)',
  'pnpm bench': 'a benchmark (minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm bench:stun': 'a benchmark (minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm bench:turn': 'a benchmark (minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm bench:tunnel': 'a benchmark (minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm bench:expose': 'a benchmark (minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm bench:connect': 'a benchmark on the kernel-NAT lab (root, minutes); its flags are checked by tests/bench/args.test.ts',
  'pnpm fuzz': "100,000+ inputs per decoder property (minutes); the fuzz properties run in the protocol package's tests",
  'pnpm changeset': 'interactive',
  'python3 zeronet.py --fileserver_port 15441': 'needs ZeroNet; the exposure it relies on is run by the next line and by tests/expose/lab.test.ts',
  'python3 zeronet.py --fileserver_port 15441 --fileserver_ip_type ipv4 --ip_external 203.0.113.1':
    'needs ZeroNet; public port 15441 to a plain client is run by the line before and by tests/expose/lab.test.ts',
  'pnpm nat listen --rendezvous ws://203.0.113.1:8080/ --port-map':
    'asks the default gateway (a real router) for mappings; tests/portmap/ice-mapped.test.ts runs it against miniupnpd in a network namespace',
  'pnpm nat map add 15441 --protocol tcp': 'needs a router that maps (PCP, NAT-PMP, UPnP); tests/portmap runs nat map against miniupnpd in a network namespace',
  'pnpm nat map add 7000 --external 17000 --lifetime 600 --json': 'needs a router that maps; tests/portmap runs it against miniupnpd',
  'pnpm nat map list': 'asks the default gateway (a real router); tests/portmap runs it against miniupnpd',
  'pnpm nat map remove 15441': 'removes what `nat map add` mapped on a router; tests/portmap runs it against miniupnpd',
  'nat map add 15441 --protocol tcp': 'needs a router that maps (PCP, NAT-PMP, UPnP); tests/portmap runs nat map against miniupnpd in a network namespace',
  'nat map list': 'asks the default gateway (a real router); tests/portmap runs it against miniupnpd',
  'nat map remove 15441': 'removes what `nat map add` mapped on a router; tests/portmap runs it against miniupnpd',
  'sudo npm install --global @nat/server-app':
    'installs from the registry as root; tests/packaging/pack.test.ts installs the packed packages and runs their nat-server --help',
  'sudo install -D -m 0644 apps/server/systemd/nat-server.service /etc/systemd/system/nat-server.service':
    'installs a system service; apps/server/test/systemd.test.ts checks the unit with systemd-analyze verify and security',
  'sudo install -D -m 0640 nat-server.yaml /etc/nat-server/config.yaml':
    "writes the machine's /etc; the unit's --check-config of a config is run by apps/server/test/systemd.test.ts",
  'sudo systemctl daemon-reload': "changes the machine's services (this test starts none)",
  'sudo systemctl enable --now nat-server': 'starts a system service; apps/server/test/systemd.test.ts checks the unit and runs its ExecStartPre',
  'journalctl -u nat-server -o cat': 'reads the journal of a system service this test does not start',
  'nat-server --listen 203.0.113.1 --alternate 203.0.113.2 --tls-port 5349 --tls-cert cert.pem --tls-key key.pem':
    "needs the operator's certificate files; STUN over TLS with a certificate is run by apps/server/test",
  'nat-server --listen 203.0.113.1 --tls-port 443 --tls-cert cert.pem --tls-key key.pem --rendezvous-port 8080 --realm example.org --auth-secret S3CRET':
    "needs the operator's certificate files and port 443; tests/lab/only-443.test.ts runs this setup (a generated certificate) and tests/oneport the routing",
  'nat ping PEER_ID --rendezvous wss://203.0.113.1:443/':
    'needs the TLS server of the line before and a peer listening; tests/lab/only-443.test.ts runs nat listen and this nat ping from a network that passes only TCP 443',
};

/** Documentation (and fixed loopback) addresses of the READMEs, in alias order. */
const DOC_ADDRESSES = ['127.0.0.1', '127.0.0.2', '203.0.113.1', '203.0.113.2', '198.51.100.7', '10.0.0.5'];

const readmes = [
  'README.md',
  'apps/cli/README.md',
  'apps/server/README.md',
  'SECURITY.md',
  ...readdirSync(join(ROOT, 'packages')).map((p) => `packages/${p}/README.md`),
].filter((f) => {
  try {
    readFileSync(join(ROOT, f));
    return true;
  } catch {
    return false;
  }
});
const text = (f: string): string => readFileSync(join(ROOT, f), 'utf8');
const scripts = (JSON.parse(text('package.json')) as { scripts: Record<string, string> }).scripts;

/** The keys of the root README's `nat detect --json` table. */
function detectKeys(): string[] {
  const section = /### `nat detect --json`([\s\S]*?)\n(?:#|Exit codes)/.exec(text('README.md'))?.[1] ?? '';
  return [...section.matchAll(/^\| ((?:`\w+`(?:, )?)+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`(\w+)`/g)].map((k) => k[1]!));
}

/** Files the READMEs show as code blocks right after naming them (`nat-server.yaml`, ...). */
function shownFiles(markdown: string): Array<{ name: string; body: string }> {
  return [...markdown.matchAll(/`([\w.-]+\.(?:yaml|yml|json))`[^\n]*\n\n```(?:yaml|yml|json)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1]!, body: m[2]! }));
}

/** A README's command lines by block; a block that is not valid sh gives one line with its error. */
const lines = (f: string): Array<{ block: number; line: number; part: string; error?: string }> =>
  shBlocks(text(f)).flatMap((b, block) => {
    try {
      return commandLines(b.text).flatMap((l) => l.split(' && ').map((part) => ({ block, line: b.line, part: part.trim() })));
    } catch (e) {
      return [{ block, line: b.line, part: '(the whole block)', error: `not valid sh: ${(e as Error).message}` }];
    }
  });

let run = 0;
async function newContext(): Promise<Context> {
  const base = `127.${100 + Math.floor(Math.random() * 100)}.${1 + ((run++ * 37 + Math.floor(Math.random() * 200)) % 250)}`;
  const cwd = mkdtempSync(join(tmpdir(), 'nat-readme-'));
  const home = join(cwd, 'home');
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_STATE_HOME: join(home, '.state'),
    XDG_CACHE_HOME: join(home, '.cache'),
  };
  delete env.NAT_EXPOSE_USER;
  return {
    root: ROOT,
    cwd,
    env,
    scripts,
    addresses: new Map(DOC_ADDRESSES.map((a, i) => [a, `${base}.${i + 1}`])),
    values: new Map(),
    net: await openNet(),
    servers: new Map(),
    background: [],
    detectKeys: detectKeys(),
  };
}

describe('README commands: each one is run here or excluded with a reason', () => {
  test('the root README documents the nat detect --json keys', () => {
    expect(detectKeys()).toEqual(expect.arrayContaining(['classic', 'classicLetter', 'mapping', 'filtering', 'publicAddress', 'reachability', 'portMapping']));
  });

  test('no README line is neither run nor excluded, and every exclusion is still in a README', () => {
    const all = readmes.flatMap((f) => lines(f).map((l) => ({ ...l, file: f })));
    const runnable = (part: string): boolean => {
      const r = resolveCommand({ root: ROOT, scripts }, part);
      return r !== undefined && (r.tool !== 'nat' || NAT_COMMANDS[r.argv[2] ?? ''] !== undefined);
    };
    const unknown = all
      .filter((l) => EXCLUDED[l.part] === undefined && (l.error !== undefined || !runnable(l.part)))
      .map((l) => `${l.file}:${l.line}: ${l.error ?? l.part}`);
    expect(unknown, 'teach tests/readme/runner.ts to run these, or add them to EXCLUDED with the reason').toEqual([]);
    const stale = Object.keys(EXCLUDED).filter((k) => !all.some((l) => l.part === k));
    expect(stale, 'EXCLUDED names lines no README has any more').toEqual([]);
  });
});

for (const file of readmes) {
  const fileLines = lines(file);
  if (fileLines.length === 0) continue;
  describe(file, () => {
    let ctx: Context;
    beforeAll(async () => {
      ctx = await newContext();
      if (ctx.net.note !== undefined) process.stderr.write(`${file}: ${ctx.net.note}\n`);
      for (const f of shownFiles(text(file))) writeFileSync(join(ctx.cwd, f.name), mapAddresses(ctx, f.body));
    });
    afterAll(async () => {
      await endFile(ctx).catch(() => undefined);
      killAllProcs();
      await ctx.net.close().catch(() => undefined);
      rmSync(ctx.cwd, { recursive: true, force: true });
    }, 30_000);

    const blocks = [...new Set(fileLines.map((l) => l.block))];
    for (const block of blocks) {
      const inBlock = fileLines.filter((l) => l.block === block);
      for (const l of inBlock) {
        if (EXCLUDED[l.part] !== undefined) continue;
        test(`${file}:${l.line}: ${l.part}`, () => (l.error === undefined ? runLine(ctx, l.part) : Promise.reject(new Error(l.error))), 60_000);
      }
      if (inBlock.some((l) => EXCLUDED[l.part] === undefined)) {
        test(`${file}:${inBlock[0]!.line}: end of the block: its background commands stop`, () => endBlock(ctx), 20_000);
      }
    }
    test(`${file}: every nat-server stops on SIGTERM with exit 0`, async () => {
      const codes = await endFile(ctx);
      for (const c of codes) expect(c.code, `${c.line}\n${c.stderr}`).toBe(0);
    }, 30_000);
  });
}
