/**
 * What the two browser tests (browser-turn.test.ts, ice-agent.test.ts) share: checking that a
 * runner can be started in a private loopback-only network namespace, and starting it there
 * under `unshare --net --pid --fork --kill-child` (after `ip link set lo up`), reading the one
 * JSON line it prints. The namespace's process tree, Chromium included, dies with it: when the
 * runner (PID 1 of the new PID namespace) exits or unshare is killed, the kernel kills the rest.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { CHROMIUM } from './chromium.js';

const here = dirname(fileURLToPath(import.meta.url));
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
/** The runners are TypeScript: the workspace's tsx loads them. */
const TSX = ((): string | undefined => {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  } catch {
    return undefined;
  }
})();

/** Why the browser tests cannot run here (undefined when they can). */
export function skipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (Debian package chromium; scripts/install-test-deps.sh installs it)`;
  if (process.getuid?.() !== 0) return 'needs root for unshare --net';
  if (!UNSHARE) return 'unshare (util-linux) is missing';
  if (!IP) return 'ip (iproute2) is missing';
  if (!TSX) return 'tsx is not resolvable from tests/';
  const probe = spawnSync(UNSHARE, ['--net', '--pid', '--fork', '--kill-child', IP, 'link', 'set', 'lo', 'up'], { timeout: 5_000, encoding: 'utf8' });
  if (probe.status !== 0) return `unshare --net --pid --fork does not work here: ${(probe.stderr || probe.error?.message || `status ${probe.status}`).trim()}`;
  return undefined;
}

/** One runner script (in tests/browser/), started in a fresh loopback-only namespace. */
export class NetnsRunner<I, O> {
  private child: ChildProcess | undefined;

  /** `hardTimeoutMs`: unshare is SIGKILLed after this, whatever the runner's own deadline. */
  constructor(
    private readonly script: string,
    private readonly hardTimeoutMs: number,
  ) {}

  /** Starts the runner with `input` as its JSON argument; resolves to its JSON line. */
  run(input: I): Promise<{ output: O; wallMs: number; stderr: string }> {
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const runner = join(here, this.script);
      const script = `${IP} link set lo up && exec "$0" "$@"`;
      const args = ['--net', '--pid', '--fork', '--kill-child', '--', 'sh', '-c', script, process.execPath, '--import', TSX!, runner, JSON.stringify(input)];
      const proc = spawn(UNSHARE!, args, { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = proc;
      let stdout = '';
      let stderr = '';
      proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      // Killing unshare makes it SIGKILL the namespace's PID 1, and with it everything inside.
      const timer = setTimeout(() => proc.kill('SIGKILL'), this.hardTimeoutMs);
      proc.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      proc.on('close', (code, signal) => {
        clearTimeout(timer);
        this.child = undefined;
        const line = stdout
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .pop();
        if (!line) return reject(new Error(`runner printed no result (exit ${code ?? signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        resolve({ output: JSON.parse(line) as O, wallMs: Date.now() - t0, stderr });
      });
    });
  }

  /** Kills a runner still going (unshare, and with it the namespace). */
  kill(): void {
    this.child?.kill('SIGKILL');
  }
}

/**
 * Inside the test's describe, after its beforeAll: kills the runner after all, checks that it
 * finished every run of `names` within its deadline, and returns a getter for run `i` that
 * throws when the run is missing and expects it to have no error.
 */
export function runnerChecks<R extends { spec: { name: string }; error?: string }>(
  runner: { kill(): void },
  names: readonly string[],
  got: () => { output: { runs: readonly R[]; error?: string }; wallMs: number; stderr: string },
): (i: number) => R {
  afterAll(() => {
    runner.kill();
  });

  it('the runner finished every run within its deadline', () => {
    const { output, wallMs, stderr } = got();
    expect(output.error, stderr).toBeUndefined();
    expect(output.runs.map((r) => r.spec.name)).toEqual(names);
    expect(wallMs).toBeLessThan(60_000);
  });

  return (i) => {
    const { output, stderr } = got();
    const r = output.runs[i];
    if (!r) throw new Error(`run ${i} missing: ${output.error ?? ''}\n${stderr}`);
    expect(r.error, stderr).toBeUndefined();
    return r;
  };
}
