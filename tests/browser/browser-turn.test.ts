/**
 * A real browser through nat-server's TURN relay: Debian's chromium, driven headless by
 * playwright-core, makes two RTCPeerConnections in one page with our server as their only ICE
 * server and `iceTransportPolicy: 'relay'`, opens a data channel and exchanges messages both
 * ways. Three runs, each against a fresh server: TURN over UDP, TURN over TCP, and TURN over UDP
 * with TURN REST API time-limited credentials.
 *
 * Chromium and the server both run inside a private network namespace with only loopback
 * (run-in-netns.ts under `unshare --net --pid --fork --kill-child`): otherwise Chromium binds the
 * machine's real interface. The namespace's process tree dies with it: when the runner (PID 1 of
 * the new PID namespace) exits or unshare is killed, the kernel kills Chromium too.
 *
 * Skipped, with the reason printed, when /usr/bin/chromium (scripts/install-test-deps.sh installs
 * it), root or unshare is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult, RunSpec, RunnerInput, RunnerOutput } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
/** The runner is TypeScript: the workspace's tsx loads it. */
const TSX = ((): string | undefined => {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  } catch {
    return undefined;
  }
})();

/** Hard bound on the whole browser run, and the runner's own (earlier) deadline. */
const HARD_TIMEOUT_MS = 55_000;
const RUNNER_DEADLINE_MS = 45_000;

const RUNS: readonly RunSpec[] = [
  { name: 'TURN over UDP, static user', transport: 'udp', auth: 'static' },
  { name: 'TURN over TCP, static user', transport: 'tcp', auth: 'static' },
  { name: 'TURN over UDP, REST API credentials', transport: 'udp', auth: 'rest-api' },
];

function skipReason(): string | undefined {
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

const SKIP = skipReason();
if (SKIP) console.warn(`[browser] test skipped: ${SKIP}`);

let child: ChildProcess | undefined;

/** Starts the runner in a fresh loopback-only namespace; resolves to its JSON line. */
function runInNamespace(input: RunnerInput): Promise<{ output: RunnerOutput; wallMs: number; stderr: string }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const runner = join(here, 'run-in-netns.ts');
    const script = `${IP} link set lo up && exec "$0" "$@"`;
    const args = ['--net', '--pid', '--fork', '--kill-child', '--', 'sh', '-c', script, process.execPath, '--import', TSX!, runner, JSON.stringify(input)];
    const proc = spawn(UNSHARE!, args, { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Killing unshare makes it SIGKILL the namespace's PID 1, and with it everything inside.
    const timer = setTimeout(() => proc.kill('SIGKILL'), HARD_TIMEOUT_MS);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      child = undefined;
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (!line) return reject(new Error(`runner printed no result (exit ${code ?? signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      resolve({ output: JSON.parse(line) as RunnerOutput, wallMs: Date.now() - t0, stderr });
    });
  });
}

describe.skipIf(SKIP !== undefined)('Chromium with nat-server as its only ICE server (relay only)', () => {
  let output: RunnerOutput;
  let wallMs: number;
  let stderr: string;

  beforeAll(async () => {
    ({ output, wallMs, stderr } = await runInNamespace({ runs: RUNS, deadlineMs: RUNNER_DEADLINE_MS }));
    for (const r of output.runs) {
      const p = r.page;
      console.log(
        `[browser] ${r.spec.name}: ${r.error ? `FAILED ${r.error}` : 'ok'}; ` +
          (p
            ? `selected ${p.selected.a?.local.candidateType}/${p.selected.a?.remote.candidateType} (relay over ${p.selected.a?.local.relayProtocol}), ` +
              `relay candidate ${p.timings.firstRelayCandidate} ms, ICE connected ${p.timings.iceConnected} ms, channel open ${p.timings.channelOpen} ms, ` +
              `messages done ${p.timings.messagesDone} ms, RTT median ${p.rttMedianMs} ms; `
            : '') +
          `server ${JSON.stringify(r.server)}; ${r.elapsedMs} ms`,
      );
    }
    console.log(`[browser] chromium ${output.browserVersion}; runner ${output.totalMs} ms, wall ${wallMs} ms`);
  }, HARD_TIMEOUT_MS + 5_000);

  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('the runner finished every run within its deadline', () => {
    expect(output.error, stderr).toBeUndefined();
    expect(output.runs.map((r) => r.spec.name)).toEqual(RUNS.map((r) => r.name));
    expect(wallMs).toBeLessThan(60_000);
  });

  describe.each(RUNS.map((spec, i) => [spec.name, i] as const))('%s', (_name, i) => {
    const run = (): RunResult => {
      const r = output.runs[i];
      if (!r) throw new Error(`run ${i} missing: ${output.error ?? ''}\n${stderr}`);
      expect(r.error, stderr).toBeUndefined();
      expect(r.page).not.toBeNull();
      return r;
    };

    it('gathers only relay candidates, from our server, with no ICE error', () => {
      const r = run();
      const page = r.page!;
      expect(r.turnUrl).toMatch(new RegExp(`^turn:127\\.0\\.0\\.1:\\d+\\?transport=${r.spec.transport}$`));
      for (const side of [page.gathered.a, page.gathered.b]) {
        expect(side.length).toBeGreaterThanOrEqual(1);
        for (const c of side) {
          expect(c.candidateType).toBe('relay');
          expect(c.protocol).toBe('udp'); // the relayed transport address is UDP (RFC 8656)
          expect(c.address).toBe('127.0.0.1');
          expect(c.url).toBe(r.turnUrl);
        }
      }
      expect(page.iceErrors).toEqual([]);
      if (r.spec.auth === 'rest-api') expect(r.username).toMatch(/^\d{10}:browser$/);
    });

    it('delivers every message both ways, in order, including a 64 KiB one', () => {
      const page = run().page!;
      const n = page.receivedByB.length;
      expect(n).toBe(20);
      expect(page.receivedByB).toEqual(Array.from({ length: n }, (_, k) => `a->b #${k}`));
      expect(page.receivedByA).toEqual(Array.from({ length: n }, (_, k) => `b->a #${k}`));
      expect(page.largeLength).toBe(64 * 1024);
      expect(page.largeOkAtB).toBe(true);
      expect(page.largeOkAtA).toBe(true);
      expect(page.rttRounds).toBe(20);
      expect(page.iceState).toEqual({ a: 'connected', b: 'connected' });
    });

    it('selects a relay/relay candidate pair on both sides', () => {
      const r = run();
      const page = r.page!;
      const { a, b } = page.selected;
      for (const pair of [a, b]) {
        expect(pair).not.toBeNull();
        expect(pair!.state).toBe('succeeded');
        expect(pair!.nominated).toBe(true);
        expect(pair!.local.candidateType).toBe('relay');
        expect(pair!.remote.candidateType).toBe('relay');
        // The browser reaches the server over the transport the turn: URI asked for.
        expect(pair!.local.relayProtocol).toBe(r.spec.transport);
        expect(pair!.bytesSent).toBeGreaterThan(64 * 1024);
        expect(pair!.bytesReceived).toBeGreaterThan(64 * 1024);
      }
      // Each side's remote candidate is the other side's relayed address.
      expect(a!.remote.port).toBe(b!.local.port);
      expect(b!.remote.port).toBe(a!.local.port);
    });

    it('made the allocations on our server, relayed both ways, and saw them released', () => {
      const s = run().server!;
      expect(s.allocationsCreated).toBeGreaterThanOrEqual(2);
      expect(s.relayedToPeer).toBeGreaterThan(100);
      expect(s.relayedToClient).toBeGreaterThan(100);
      expect(s.forbidden).toBe(0);
      // Closing the connections makes Chromium deallocate (Refresh with LIFETIME 0).
      expect(s.allocations).toBe(0);
    });
  });
});
