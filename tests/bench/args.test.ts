/**
 * Every benchmark entry point parses its flags after the `--` that pnpm passes on
 * (`pnpm bench:tunnel -- --mb 100` runs `tsx bench/tunnel/run.ts -- --mb 100`): each runner and
 * each child script that takes flags is started here as pnpm starts it, with `-- ... --help`, so
 * its parser runs and no benchmark does. Also every `pnpm bench:NAME -- FLAGS` line of the bench
 * READMEs, with --help appended: the documented flags must parse.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { commandLines, shBlocks, shellWords } from '../readme/markdown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX_CLI = createRequire(import.meta.url).resolve('tsx/cli');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runTsx(script: string, args: readonly string[]): Promise<Result> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [TSX_CLI, script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', rej);
    child.once('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

/** The runners behind `pnpm bench:NAME` (package.json), each with the flags its help must list. */
const RUNNERS: Record<string, string[]> = {
  stun: [
    '--duration',
    '--warmup',
    '--sockets',
    '--window',
    '--timeout',
    '--runs',
    '--targets',
    '--server-cpu',
    '--client-cpu',
    '--profile',
    '--bare-sync-lookup',
    '--json',
  ],
  turn: [
    '--duration',
    '--warmup',
    '--window',
    '--pairs',
    '--size',
    '--timeout',
    '--runs',
    '--targets',
    '--phases',
    '--allocations',
    '--latency-duration',
    '--node-turn-dir',
    '--server-cpu',
    '--client-cpu',
    '--profile',
    '--bare-dns-lookup',
    '--quiet-wait',
    '--json',
  ],
  tunnel: ['--mb', '--runs', '--targets', '--profile', '--json'],
  connect: ['--runs', '--warmup', '--pairs', '--no-punch', '--direct-wait', '--punch-wait', '--time-limit', '--two-address', '--baseline', '--trace', '--json'],
  expose: ['--mb', '--conns', '--conc', '--rounds', '--json'],
  workers: ['--workers', '--phases', '--duration', '--warmup', '--json'],
  cluster: ['--peers', '--rate', '--duration', '--nodes', '--modes', '--allocations', '--generators', '--per-source', '--json'],
};

/** Child scripts the runners start that take flags. */
const CHILDREN: Record<string, string[]> = {
  'bench/connect/peer.ts': [
    '--rendezvous',
    '--peer',
    '--runs',
    '--warmup',
    '--no-punch',
    '--direct-wait',
    '--punch-wait',
    '--failure-timeout',
    '--pause',
    '--trace',
  ],
  'bench/tunnel/udx-on-ice-socket.ts': ['--mb', '--plain'],
  'bench/cluster/peers.ts': ['--per-source'],
};

const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** `pnpm bench:NAME` -> the script the package.json entry runs after its build step. */
function runnerOf(name: string): string {
  const command = scripts[`bench:${name}`];
  if (command === undefined) throw new Error(`package.json has no bench:${name} script`);
  const m = /(?:^|&& )tsx (bench\/\S+\.ts)$/.exec(command);
  if (!m) throw new Error(`bench:${name} is ${JSON.stringify(command)}, not "... && tsx bench/....ts"`);
  return m[1]!;
}

describe.concurrent("bench runners take their flags after pnpm's `--`", () => {
  test('every bench:* script of package.json is covered here', () => {
    const names = Object.keys(scripts)
      .filter((s) => s.startsWith('bench:'))
      .map((s) => s.slice('bench:'.length));
    expect(names.sort()).toEqual(Object.keys(RUNNERS).sort());
  });

  test.each(Object.entries(RUNNERS))(
    'bench:%s -- --help prints its flags and exits 0',
    async (name, flags) => {
      const r = await runTsx(runnerOf(name), ['--', '--help']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      for (const f of [...flags, '--help']) expect(r.stdout).toContain(f);
    },
    40_000,
  );

  test.each(Object.entries(CHILDREN))(
    '%s -- --help prints its flags and exits 0',
    async (script, flags) => {
      const r = await runTsx(script, ['--', '--help']);
      expect(r.code).toBe(0);
      for (const f of [...flags, '--help']) expect(r.stdout).toContain(f);
    },
    40_000,
  );

  test.each(Object.keys(RUNNERS))(
    'bench:%s -- --bogus is a usage error (exit 2) naming the flag',
    async (name) => {
      const r = await runTsx(runnerOf(name), ['--', '--bogus']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`bench:${name}: Unknown option '--bogus'`);
    },
    40_000,
  );

  const readmes = [
    'bench/README.md',
    'bench/stun/README.md',
    'bench/turn/README.md',
    'bench/tunnel/README.md',
    'bench/connect/README.md',
    'bench/expose/README.md',
    'bench/cluster/README.md',
    'README.md',
  ];
  const documented = readmes.flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(join(ROOT, file), 'utf8');
    } catch {
      return [];
    }
    return shBlocks(text)
      .flatMap((b) => commandLines(b.text))
      .filter((l) => /^pnpm bench:\w+/.test(l))
      .map((l) => [file, l] as const);
  });

  test('the bench READMEs document some runs', () => {
    expect(documented.length).toBeGreaterThanOrEqual(15);
  });

  test.each(documented)(
    '%s: `%s` parses (run with --help appended)',
    async (_file, line) => {
      const [, script, ...args] = shellWords(line);
      const r = await runTsx(runnerOf(script!.slice('bench:'.length)), [...args, ...(args[0] === '--' ? [] : ['--']), '--help']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    },
    40_000,
  );
});
