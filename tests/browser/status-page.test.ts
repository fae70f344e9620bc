/**
 * The status page in a real browser (issue 17): Debian's chromium, driven by playwright-core in a
 * loopback-only namespace (status-run-in-netns.ts), loads nat-server's /status with the admin
 * token as its Basic password, after the runner made 2 allocations of alice, a wrong password
 * and a rendezvous peer; the numbers on the page must match. The screenshot is kept as a test
 * artifact (test-artifacts/status-page.png).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { NetnsRunner, runnerChecks, skipReason } from './netns-runner.js';
import type { StatusRunResult, StatusRunSpec } from './status-run-in-netns.js';

const HARD_TIMEOUT_MS = 55_000;
const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'status-page.png');
const RUNS: readonly StatusRunSpec[] = [{ name: 'status page', screenshot: SCREENSHOT }];

const SKIP = skipReason();
if (SKIP) console.warn(`[status-page] test skipped: ${SKIP}`);

type Output = { browserVersion: string | null; runs: StatusRunResult[]; totalMs: number; error?: string };
const runner = new NetnsRunner<{ runs: readonly StatusRunSpec[]; deadlineMs: number }, Output>('status-run-in-netns.ts', HARD_TIMEOUT_MS);

describe.skipIf(SKIP !== undefined)('the status page in Chromium', () => {
  let output: Output;
  let wallMs: number;
  let stderr: string;
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ({ output, wallMs, stderr } = await runner.run({ runs: RUNS, deadlineMs: 45_000 }));
    console.log(`[status-page] chromium ${output.browserVersion}; ${JSON.stringify(output.runs[0])}; wall ${wallMs} ms`);
  }, HARD_TIMEOUT_MS + 5_000);

  const runAt = runnerChecks(
    runner,
    RUNS.map((r) => r.name),
    () => ({ output, wallMs, stderr }),
  );

  it('answers 401 without the token, then shows the allocations, the refusal and the peer the runner made', () => {
    const r = runAt(0);
    expect(r.unauthorizedStatus).toBe(401);
    expect(r.counts?.['turn-allocations']).toBe('2');
    expect(r.counts?.['rendezvous-peers-online']).toBe('1');
    expect(r.allocationRows).toEqual([['alice', '2', 'operator']]);
    expect(r.refusals?.some((row) => row[1] === 'turn' && row[2] === 'auth: bad-integrity' && row[4] === 'alice')).toBe(true);
    expect(r.peers).toBe(1);
    expect(r.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('kept a screenshot of the page', () => {
    runAt(0);
    expect(existsSync(SCREENSHOT)).toBe(true);
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
  });
});
