/**
 * Runs inside a private network namespace with only loopback (ice-agent.test.ts starts it under
 * `unshare --net --pid --fork --kill-child`, after `ip link set lo up`).
 *
 * For each run: Chromium (Debian's, through playwright-core) makes an offer with a data channel
 * and no ICE servers; our IceAgent, controlled, on a node:dgram socket on 127.0.0.1, answers it
 * (ice-driver.ts writes the SDP); the page applies the answer and waits for iceConnectionState
 * `connected`. DTLS never completes (the answer's fingerprint is random and we send no DTLS):
 * only ICE is under test. Prints one JSON line (IceRunnerOutput, ice-types.ts) on stdout;
 * progress goes to stderr.
 *
 * Usage: node --import tsx ice-run-in-netns.ts '<IceRunnerInput JSON>'
 * Bounded: after `deadlineMs` it closes the browser and sockets, prints what it has, exits 1.
 */
import type { Browser, Page } from 'playwright-core';
import { runBounded, runnerLog } from './chromium.js';
import { IceAgentDriver, buildAnswer, parseOffer } from './ice-driver.js';
import { ICE_PAGE_HTML } from './ice-page.js';
import type { BrowserIceResult, IceRunResult, IceRunSpec } from './ice-types.js';

/**
 * Chromium flags (chromium.ts) plus unmasked host candidates: without
 * --disable-features=WebRtcHideLocalIpsWithMdns Chromium names them `<uuid>.local`, which no
 * one resolves in this namespace.
 */
const EXTRA_CHROMIUM_ARGS = ['--disable-features=WebRtcHideLocalIpsWithMdns'];

const log = runnerLog('ice-runner');

const drivers = new Set<IceAgentDriver>();

function closeDrivers(): void {
  for (const d of drivers) d.close();
  drivers.clear();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Feeds the browser's trickled candidates to the driver until gathering ends or `stop` says so. */
async function trickle(tab: Page, driver: IceAgentDriver, seen: Set<string>, stop: () => boolean): Promise<void> {
  for (;;) {
    const got = (await tab.evaluate('window.iceCandidates()')) as { candidates: string[]; gatheringDone: boolean };
    for (const c of got.candidates) {
      if (seen.has(c)) continue;
      seen.add(c);
      log(`browser candidate ${c}`);
      driver.addRemoteCandidate(c);
    }
    if (got.gatheringDone) {
      driver.endOfRemoteCandidates();
      return;
    }
    if (stop()) return;
    await sleep(100);
  }
}

async function runOne(spec: IceRunSpec, b: Browser, timeoutMs: number): Promise<IceRunResult> {
  const t0 = Date.now();
  const driver = new IceAgentDriver();
  driver.log = (m) => log(`${spec.name}: ${m}`);
  drivers.add(driver);
  const context = await b.newContext();
  let offer = '';
  let answer = '';
  let browserResult: BrowserIceResult | null = null;
  let error: string | undefined;
  let answered = false;
  let afterHold: string | null = null;
  try {
    const tab = await context.newPage();
    tab.on('console', (m) => log(`${spec.name}: console.${m.type()}: ${m.text()}`));
    tab.on('pageerror', (e) => log(`${spec.name}: page error: ${e.message}`));
    await tab.setContent(ICE_PAGE_HTML);
    const host = await driver.start();
    offer = (await tab.evaluate('window.iceOffer()')) as string;
    log(`${spec.name}: offer\n${offer}`);
    const parsed = parseOffer(offer);
    driver.setRemoteCredentials(parsed.ufrag, parsed.pwd);
    const seen = new Set<string>();
    if (spec.signalCandidates) {
      for (const c of parsed.candidates) {
        seen.add(c);
        driver.addRemoteCandidate(c);
      }
    }
    answer = buildAnswer(parsed, driver.ufrag, driver.pwd, host);
    log(`${spec.name}: answer\n${answer}`);
    const trickling = spec.signalCandidates ? trickle(tab, driver, seen, () => answered) : Promise.resolve();
    browserResult = (await tab.evaluate(`window.iceAnswer(${JSON.stringify(answer)}, ${timeoutMs})`)) as BrowserIceResult;
    answered = true;
    await trickling;
    log(`${spec.name}: browser ICE ${browserResult.finalIceState} after ${Date.now() - t0} ms`);
    // Let the agent see the browser's nomination if it arrives just after connected.
    for (let i = 0; i < 20 && driver.agent.selectedPair() === undefined; i++) await sleep(50);
    if (spec.holdMs > 0 && browserResult.finalIceState !== 'failed') {
      await sleep(spec.holdMs);
      afterHold = (await tab.evaluate('window.iceState()')) as string;
      log(`${spec.name}: after ${spec.holdMs} ms the browser is ${afterHold}, the agent ${driver.agent.state}`);
      // A consent check sent just before the hold ended may still be on its way: let it be
      // answered before the browser closes (on a loaded machine its answer can take a while).
      for (let i = 0; i < 40 && !driver.answered(); i++) await sleep(50);
    }
    await tab.evaluate('window.iceClose()').catch(() => undefined);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    log(`${spec.name}: failed: ${error}`);
  } finally {
    answered = true;
    await context.close().catch(() => undefined);
  }
  const agent = driver.result();
  driver.close();
  drivers.delete(driver);
  return {
    spec,
    offer,
    answer,
    browser: browserResult,
    agent,
    browserStateAfterHold: afterHold,
    elapsedMs: Date.now() - t0,
    ...(error === undefined ? {} : { error }),
  };
}

runBounded<IceRunSpec, IceRunResult>({ log, extraArgs: EXTRA_CHROMIUM_ARGS, maxRunMs: 10_000, runOne, cleanup: closeDrivers });
