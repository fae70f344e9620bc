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
import { spawnSync } from 'node:child_process';
import type { Browser } from 'playwright-core';
import { runBounded, runnerLog } from './chromium.js';
import { PAGE_HTML, type PageConfig } from './page.js';
import type { PageResult, RunResult, RunSpec, ServerCounters } from './types.js';

const REALM = 'browser.test';
const STATIC_USER = { name: 'browser', password: 'browser-pw' };
const REST_SECRET = 'secret';

const log = runnerLog('browser-runner');

/** The address of the redirect run's servers, added to lo of the runner's own network namespace (it dies with it). */
const REDIRECT_IP = '10.99.0.1';
/**
 * One nonce key for both servers, as nat-server --workers gives all its workers: libwebrtc keeps
 * the first server's NONCE for the Allocate at the alternate and fails on a 438 there (it retries
 * a stale nonce on Refresh, not on Allocate).
 */
const NONCE_KEY = crypto.getRandomValues(new Uint8Array(32));

function addRedirectInterface(): void {
  if (spawnSync('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).stdout.includes(REDIRECT_IP)) return;
  const r = spawnSync('ip', ['addr', 'add', `${REDIRECT_IP}/32`, 'dev', 'lo'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip addr add ${REDIRECT_IP}/32 dev lo failed: ${r.stderr}`);
}

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
  // libwebrtc ignores a redirect to a loopback address (TurnPort::SetAlternateServer, "Blocking
  // attempted redirect to loopback address"): the redirect run serves on another address, added
  // to the loopback interface of this private namespace.
  if (spec.redirect) addRedirectInterface();
  const server = await startStunServer({
    listen: [spec.redirect ? REDIRECT_IP : '127.0.0.1'],
    port: 0,
    altPort: null,
    turn: { realm: REALM, auth, peers: { allow: ['127.0.0.0/8', `${REDIRECT_IP}/32`] }, nonceSecret: NONCE_KEY },
  });
  servers.add(server);
  const listenerOf = (s: StunServer) => {
    const l = s.listeners.find((x) => x.transport === spec.transport && x.role === 'PP');
    if (!l) throw new Error(`the server has no ${spec.transport} listener: ${JSON.stringify(s.listeners)}`);
    return l;
  };
  // With `redirect`, the browser is sent to a first server that answers 300 toward `server`.
  const first = spec.redirect
    ? await startStunServer({
        listen: [REDIRECT_IP],
        port: 0,
        altPort: null,
        turn: {
          realm: REALM,
          auth,
          peers: { allow: ['127.0.0.0/8', `${REDIRECT_IP}/32`] },
          alternateServer: listenerOf(server).address,
          nonceSecret: NONCE_KEY,
        },
      })
    : server;
  servers.add(first);
  const turnUrl = `turn:${listenerOf(first).address.address}:${listenerOf(first).address.port}?transport=${spec.transport}`;
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
  servers.delete(first);
  await server.close();
  await first.close();
  return { spec, turnUrl, username, page, server: srv, elapsedMs: Date.now() - t0, ...(error === undefined ? {} : { error }) };
}

runBounded<RunSpec, RunResult>({ log, maxRunMs: 20_000, runOne, cleanup: closeServers });
