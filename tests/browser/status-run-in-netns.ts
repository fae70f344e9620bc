/**
 * The status page's runner (inside a loopback-only namespace, see netns-runner.ts): starts the
 * built nat-server with TURN, a rendezvous and the admin listener (token from a file), makes
 * what the page must then show (2 allocations of alice, a wrong password, a peer online), then
 * loads /status in Debian's chromium with the token as the Basic password, reads the numbers
 * from the page's data attributes and saves a screenshot. Prints one JSON line (chromium.ts).
 *
 * Usage: node --import tsx status-run-in-netns.ts '<StatusRunnerInput JSON>'
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RendezvousClient, TurnClient, generateIdentity } from '@nat/client';
import type { Browser } from 'playwright-core';
import { runBounded, runnerLog } from './chromium.js';

export interface StatusRunSpec {
  readonly name: string;
  /** Where the screenshot goes. */
  readonly screenshot: string;
}

export interface StatusRunResult {
  readonly spec: StatusRunSpec;
  readonly error?: string;
  readonly unauthorizedStatus?: number;
  readonly counts?: Record<string, string>;
  readonly allocationRows?: string[][];
  readonly refusals?: string[][];
  readonly peers?: number;
  readonly version?: string;
  readonly elapsedMs: number;
}

const log = runnerLog('status');
const ROOT = join(import.meta.dirname, '../..');
const TOKEN = 'status-page-browser-token-0123';
const children: ChildProcess[] = [];
const clients: { close(): unknown }[] = [];

async function startServer(): Promise<{ admin: string; turn: string; rendezvous: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nat-status-'));
  writeFileSync(join(dir, 'token'), TOKEN);
  const args = [
    '--listen',
    '127.0.0.1',
    '--port',
    '0',
    '--no-alt-port',
    '--realm',
    'status.test',
    '--user',
    'alice:alice-pw',
    '--auth-secret',
    'status-secret',
  ];
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'apps/server/dist/main.js'),
      ...args,
      '--allow-peer',
      '127.0.0.0/8',
      '--rendezvous-port',
      '0',
      '--admin-port',
      '0',
      '--admin-token-file',
      join(dir, 'token'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const admin = /admin (http:\/\/\S+)\/metrics/.exec(err)?.[1];
    const turn = /listening udp (\S+) \(PP\)/.exec(err)?.[1];
    const rendezvous = /rendezvous (ws:\S+)/.exec(err)?.[1];
    if (admin && turn && rendezvous) return { admin, turn, rendezvous };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nat-server did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runOne(spec: StatusRunSpec, browser: Browser): Promise<StatusRunResult> {
  const t0 = Date.now();
  const server = await startServer();
  const allocate = (password: string) =>
    TurnClient.connect({ server: server.turn, username: 'alice', password, transport: 'udp', signal: AbortSignal.timeout(10_000) });
  for (let i = 0; i < 2; i++) clients.push(await allocate('alice-pw'));
  const wrong = await allocate('wrong-pw').catch((e: unknown) => e);
  if (!(wrong instanceof Error)) throw new Error('a wrong password was accepted');
  const peer = await RendezvousClient.connect({ url: server.rendezvous, identity: generateIdentity(), signal: AbortSignal.timeout(10_000) });
  clients.push(peer);
  log(`server ${JSON.stringify(server)}; 2 allocations, 1 wrong password, 1 peer`);

  // A browser without the password gets the prompt (401 with a Basic challenge): asked without a browser.
  const unauthorizedStatus = (await fetch(`${server.admin}/status`)).status;
  const context = await browser.newContext({ httpCredentials: { username: 'admin', password: TOKEN }, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const response = await page.goto(`${server.admin}/status`);
  if (response?.status() !== 200) throw new Error(`/status answered ${response?.status()}`);
  const counts = await page.$$eval('[data-count]', (els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-count')!, e.textContent!])));
  const rows = (table: string) =>
    page.$$eval(`[data-table="${table}"] tbody tr`, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  const allocationRows = await rows('allocations');
  const refusals = await rows('refusals');
  const peers = Number(await page.getAttribute('[data-table="peers"]', 'data-rows'));
  const version = (await page.textContent('[data-field="version"]')) ?? '';
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  await context.close();
  return { spec, unauthorizedStatus, counts, allocationRows, refusals, peers, version, elapsedMs: Date.now() - t0 };
}

runBounded<StatusRunSpec, StatusRunResult>({
  log,
  maxRunMs: 40_000,
  runOne: async (spec, browser) => {
    const t0 = Date.now();
    try {
      return await runOne(spec, browser);
    } catch (e) {
      return { spec, error: e instanceof Error ? (e.stack ?? e.message) : String(e), elapsedMs: Date.now() - t0 };
    }
  },
  cleanup: async () => {
    await Promise.allSettled(clients.map(async (c) => c.close()));
    for (const c of children) c.kill('SIGKILL');
  },
});
