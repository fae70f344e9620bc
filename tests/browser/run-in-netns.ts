/**
 * Runs inside a private network namespace that has only loopback (browser-turn.test.ts starts it
 * under `unshare --net --pid --fork --kill-child`, after `ip link set lo up`), so that neither the
 * TURN server nor Chromium can touch a real interface.
 *
 * For each run it starts a fresh nat-server TURN relay on 127.0.0.1 (port 0, loopback peers
 * allowed, since the browser's relayed addresses are loopback ones), loads the test page in
 * Debian's chromium (playwright-core, never a downloaded browser), runs the WebRTC exchange with
 * that server as the only ICE server, and reads the server's TURN counters. It prints one JSON
 * line (RunnerOutput, types.ts) on stdout; progress goes to stderr.
 *
 * Usage: node --import tsx run-in-netns.ts '<RunnerInput JSON>'
 * Bounded: after `deadlineMs` it closes the browser and servers, prints what it has, exits 1.
 */
import { restApiCredentials, restApiSecrets, startStunServer, staticUsers, type StunServer, type TurnAuthenticator } from '@nat/server';
import type { Browser } from 'playwright-core';
import { runBounded, runnerLog } from './chromium.js';
import { PAGE_HTML, type PageConfig } from './page.js';
import type { PageResult, RunResult, RunSpec, ServerCounters } from './types.js';

const REALM = 'browser.test';
const STATIC_USER = { name: 'browser', password: 'browser-pw' };
const REST_SECRET = 'secret';

const log = runnerLog('browser-runner');

const servers = new Set<StunServer>();

async function closeServers(): Promise<void> {
  await Promise.allSettled([...servers].map((s) => s.close()));
  servers.clear();
}

function counters(server: StunServer): ServerCounters | null {
  const t = server.stats().turn;
  if (!t) return null;
  return {
    allocations: t.allocations,
    allocationsCreated: t.allocationsCreated,
    unauthorized: t.unauthorized,
    forbidden: t.forbidden,
    relayedToPeer: t.relayedToPeer,
    relayedToClient: t.relayedToClient,
    dropped: t.dropped,
  };
}

async function runOne(spec: RunSpec, b: Browser, timeoutMs: number): Promise<RunResult> {
  const t0 = Date.now();
  let auth: TurnAuthenticator;
  let username: string;
  let credential: string;
  if (spec.auth === 'rest-api') {
    auth = restApiSecrets([REST_SECRET]);
    const c = restApiCredentials(REST_SECRET, 'browser', 3600);
    username = c.username;
    credential = c.password;
  } else {
    auth = staticUsers({ [STATIC_USER.name]: STATIC_USER.password });
    username = STATIC_USER.name;
    credential = STATIC_USER.password;
  }
  const server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    turn: { realm: REALM, auth, peers: { allow: ['127.0.0.0/8'] } },
  });
  servers.add(server);
  const listener = server.listeners.find((l) => l.transport === spec.transport && l.role === 'PP');
  if (!listener) throw new Error(`the server has no ${spec.transport} listener: ${JSON.stringify(server.listeners)}`);
  const turnUrl = `turn:127.0.0.1:${listener.address.port}?transport=${spec.transport}`;
  log(`${spec.name}: server on ${turnUrl}, user ${username}`);

  const context = await b.newContext();
  let page: PageResult | null = null;
  let error: string | undefined;
  try {
    const tab = await context.newPage();
    tab.on('console', (m) => log(`${spec.name}: console.${m.type()}: ${m.text()}`));
    tab.on('pageerror', (e) => log(`${spec.name}: page error: ${e.message}`));
    await tab.setContent(PAGE_HTML);
    const cfg: PageConfig = { url: turnUrl, username, credential, messages: 20, largeLength: 64 * 1024, pingRounds: 20, timeoutMs };
    page = (await tab.evaluate(`window.runExchange(${JSON.stringify(cfg)})`)) as PageResult;
    log(`${spec.name}: exchange done in ${Date.now() - t0} ms`);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    log(`${spec.name}: failed: ${error}`);
  } finally {
    await context.close().catch(() => undefined);
  }
  // The page closed both connections: Chromium deallocates (Refresh with LIFETIME 0). Give the
  // server a moment to see that, so that the counters show whether it did.
  for (let i = 0; i < 20 && (server.stats().turn?.allocations ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 50));
  const srv = counters(server);
  servers.delete(server);
  await server.close();
  return { spec, turnUrl, username, page, server: srv, elapsedMs: Date.now() - t0, ...(error === undefined ? {} : { error }) };
}

runBounded<RunSpec, RunResult>({ log, maxRunMs: 20_000, runOne, cleanup: closeServers });
