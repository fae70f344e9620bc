/**
 * Interop of our sans-I/O ICE agent with an independent one: Chromium's. The browser (Debian's
 * chromium, driven headless by playwright-core) makes an RTCPeerConnection offer with a data
 * channel and no ICE servers; our IceAgent (@nat/client) answers as the controlled agent from a
 * node:dgram socket on 127.0.0.1, with an answer SDP that carries its credentials and host
 * candidate (ice-driver.ts). The browser's iceConnectionState must reach `connected`; DTLS is
 * never completed (random fingerprint, no DTLS sent) and is not under test.
 *
 * Two runs in one browser:
 * - the browser's candidates are signalled to the agent (from the offer and trickled). In a
 *   loopback-only namespace Chromium signals none, even with mDNS masking off, so the agent still
 *   learns the browser's address from its checks; this run also holds the connection for 6 s
 *   so that the agent's RFC 7675 consent checks run against the browser;
 * - no candidate reaches the agent at all: it must learn the browser as peer-reflexive.
 *
 * Both run inside a private network namespace with only loopback (ice-run-in-netns.ts under
 * `unshare --net --pid --fork --kill-child`, as browser-turn.test.ts does): the namespace's
 * process tree, Chromium included, dies with it. Skipped, with the reason printed, when
 * /usr/bin/chromium, root, unshare or ip is missing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { NetnsRunner, runnerChecks, skipReason } from './netns-runner.js';
import type { IceRunResult, IceRunSpec, IceRunnerInput, IceRunnerOutput } from './ice-types.js';

/** Hard bound on the whole browser run, and the runner's own (earlier) deadline. */
const HARD_TIMEOUT_MS = 50_000;
const RUNNER_DEADLINE_MS = 40_000;
const HOLD_MS = 6_000;

const RUNS: readonly IceRunSpec[] = [
  { name: 'browser candidates signalled, held 6 s', signalCandidates: true, holdMs: HOLD_MS },
  { name: 'no browser candidate signalled (peer-reflexive only)', signalCandidates: false, holdMs: 0 },
];

const SKIP = skipReason();
if (SKIP) console.warn(`[browser-ice] test skipped: ${SKIP}`);

const runner = new NetnsRunner<IceRunnerInput, IceRunnerOutput>('ice-run-in-netns.ts', HARD_TIMEOUT_MS);

describe.skipIf(SKIP !== undefined)('Chromium offers, our IceAgent answers (controlled)', () => {
  let output: IceRunnerOutput;
  let wallMs: number;
  let stderr: string;

  beforeAll(async () => {
    ({ output, wallMs, stderr } = await runner.run({ runs: RUNS, deadlineMs: RUNNER_DEADLINE_MS }));
    for (const r of output.runs) {
      const b = r.browser;
      const a = r.agent;
      const connectedAt = b?.iceStates.find((s) => s.state === 'connected' || s.state === 'completed')?.at;
      console.log(
        `[browser-ice] ${r.spec.name}: ${r.error ? `FAILED ${r.error}` : 'ok'}; ` +
          `browser ${b?.finalIceState ?? '?'} at ${connectedAt ?? '?'} ms after the answer` +
          (r.browserStateAfterHold === null ? '' : `, ${r.browserStateAfterHold} after the hold`) +
          `; agent ${a?.states.map((s) => `${s.state}@${s.at}`).join(' ') ?? '?'}, selected ` +
          (a?.selected
            ? `${a.selected.localType} ${a.selected.localAddress} -> ${a.selected.remoteType} ${a.selected.remoteAddress}:${a.selected.remotePort}`
            : 'none') +
          `; browser candidates ${a?.browserCandidates.length ?? '?'}; in ${JSON.stringify(a?.requestsIn)} ${JSON.stringify(a?.responsesIn)}; ` +
          `out ${JSON.stringify(a?.sent)}; ${r.elapsedMs} ms`,
      );
    }
    console.log(`[browser-ice] chromium ${output.browserVersion}; runner ${output.totalMs} ms, wall ${wallMs} ms`);
  }, HARD_TIMEOUT_MS + 5_000);

  const runAt = runnerChecks(
    runner,
    RUNS.map((r) => r.name),
    () => ({ output, wallMs, stderr }),
  );

  describe.each(RUNS.map((spec, i) => [spec.name, i] as const))('%s', (_name, i) => {
    const run = (): IceRunResult => {
      const r = runAt(i);
      expect(r.browser).not.toBeNull();
      expect(r.agent).not.toBeNull();
      return r;
    };

    it('answers with an SDP Chromium accepts: our credentials, host candidate, setup:active, the offer mid', () => {
      const r = run();
      const a = r.agent!;
      const ufrag = /a=ice-ufrag:(\S+)/.exec(r.answer)?.[1] ?? '';
      const pwd = /a=ice-pwd:(\S+)/.exec(r.answer)?.[1] ?? '';
      expect(ufrag.length).toBeGreaterThanOrEqual(4);
      expect(pwd.length).toBeGreaterThanOrEqual(22);
      expect(r.answer).toMatch(/\r\na=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\r\n/);
      expect(r.answer).toContain('\r\na=setup:active\r\n');
      expect(r.answer).toContain(`\r\na=mid:${/a=mid:(\S+)/.exec(r.offer)?.[1]}\r\n`);
      expect(r.answer).toContain(' UDP/DTLS/SCTP webrtc-datachannel\r\n');
      expect(r.answer).toContain(`127.0.0.1 ${a.local.port} typ host`);
      expect(a.local.address).toBe('127.0.0.1');
    });

    it("the browser's iceConnectionState reaches connected, on a pair whose remote is our socket", () => {
      const b = run().browser!;
      const a = run().agent!;
      expect(b.iceStates.map((s) => s.state)).toContain('connected');
      expect(b.iceStates.map((s) => s.state)).not.toContain('failed');
      expect(['connected', 'completed']).toContain(b.finalIceState);
      expect(b.selected).not.toBeNull();
      // 'in-progress' while a consent check on the selected pair is outstanding at stats time
      expect(['succeeded', 'in-progress']).toContain(b.selected!.state);
      expect(b.selected!.remote).toMatchObject({ address: '127.0.0.1', port: a.local.port, protocol: 'udp' });
      // The browser got answers to its checks from our agent.
      expect(b.selected!.responsesReceived).toBeGreaterThanOrEqual(1);
    });

    it("our agent reaches completed with a selected, nominated pair to the browser's address", () => {
      const r = run();
      const a = r.agent!;
      const b = r.browser!;
      expect(a.states.some((s) => s.state === 'failed')).toBe(false);
      expect(['connected', 'completed']).toContain(a.finalState);
      expect(a.selected).not.toBeNull();
      const sel = a.selected!;
      expect(sel).toMatchObject({ localType: 'host', localAddress: `127.0.0.1:${a.local.port}`, state: 'succeeded', nominated: true, path: 'direct' });
      // The browser's local candidate on its selected pair is where the agent sends.
      expect(b.selected!.local).toMatchObject({ address: sel.remoteAddress, port: sel.remotePort });
      expect(sel.remoteAddress).toBe('127.0.0.1');
      if (a.candidatesGivenToAgent === 0) {
        // RFC 8445 section 7.3.1.3: learned from the browser's check.
        expect(sel.remoteType).toBe('prflx');
        expect(a.remoteCandidates).toEqual([{ type: 'prflx', address: '127.0.0.1', port: sel.remotePort }]);
      }
    });

    it('checks succeeded both ways, each with a MESSAGE-INTEGRITY under the right password', () => {
      const a = run().agent!;
      // Requests from the browser (controlling, as the offerer), all valid under our pwd.
      expect(a.requestsIn.total).toBeGreaterThanOrEqual(1);
      expect(a.requestsIn.validUnderOurPwd).toBe(a.requestsIn.total);
      expect(a.requestsIn.controlling).toBe(a.requestsIn.total);
      expect(a.requestsIn.useCandidate).toBeGreaterThanOrEqual(1);
      // The agent answered every one with success (no 400, 401 or 487).
      expect(a.sent.errorResponses).toEqual([]);
      expect(a.sent.successResponses).toBe(a.requestsIn.total);
      // Our checks (triggered, then consent) got success responses valid under the browser's pwd.
      expect(a.sent.requests).toBeGreaterThanOrEqual(1);
      expect(a.responsesIn.success).toBeGreaterThanOrEqual(1);
      expect(a.responsesIn.validUnderBrowserPwd).toBe(a.responsesIn.total);
      expect(a.responsesIn.matchingOurRequests).toBe(a.responsesIn.total);
    });
  });

  it('held for 6 s, the agent keeps consent: its consent checks are answered and both stay connected', () => {
    const r = output.runs[0];
    if (!r) throw new Error(`run 0 missing: ${output.error ?? ''}\n${stderr}`);
    const a = r.agent!;
    expect(r.browserStateAfterHold).toBe('connected');
    expect(a.finalState).toBe('completed');
    // One triggered check, then at least one consent check (every 2.4 to 3.6 s, ice-driver.ts) within 6 s.
    expect(a.sent.requests).toBeGreaterThanOrEqual(2);
    expect(a.responsesIn.success).toBe(a.sent.requests);
    // Chromium keeps pinging the selected pair as well, and the agent answers each.
    expect(a.requestsIn.total).toBeGreaterThan(3);
    expect(a.sent.successResponses).toBe(a.requestsIn.total);
  });
});
