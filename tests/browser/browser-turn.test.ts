/**
 * A real browser through nat-server's TURN relay: Debian's chromium, driven headless by
 * playwright-core, makes two RTCPeerConnections in one page with our server as their only ICE
 * server and `iceTransportPolicy: 'relay'`, opens a data channel and exchanges messages both
 * ways. Four runs, each against a fresh server: TURN over UDP, TURN over TCP, TURN over UDP
 * with TURN REST API time-limited credentials, and TURN over UDP where the server named in the
 * turn: URI redirects the Allocate (300 Try Alternate) to a second server that relays.
 *
 * Chromium and the server both run inside a private network namespace with only loopback
 * (run-in-netns.ts under `unshare --net --pid --fork --kill-child`): otherwise Chromium binds the
 * machine's real interface. The namespace's process tree dies with it: when the runner (PID 1 of
 * the new PID namespace) exits or unshare is killed, the kernel kills Chromium too.
 *
 * Skipped, with the reason printed, when /usr/bin/chromium (scripts/install-test-deps.sh installs
 * it), root or unshare is missing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { NetnsRunner, runnerChecks, skipReason } from './netns-runner.js';
import type { RunResult, RunSpec, RunnerInput, RunnerOutput } from './types.js';

/** Hard bound on the whole browser run, and the runner's own (earlier) deadline. */
const HARD_TIMEOUT_MS = 55_000;
const RUNNER_DEADLINE_MS = 45_000;

const RUNS: readonly RunSpec[] = [
  { name: 'TURN over UDP, static user', transport: 'udp', auth: 'static' },
  { name: 'TURN over TCP, static user', transport: 'tcp', auth: 'static' },
  { name: 'TURN over UDP, REST API credentials', transport: 'udp', auth: 'rest-api' },
  { name: 'TURN over UDP, 300 Try Alternate to a second server', transport: 'udp', auth: 'static', redirect: true },
];

const SKIP = skipReason();
if (SKIP) console.warn(`[browser] test skipped: ${SKIP}`);

const runner = new NetnsRunner<RunnerInput, RunnerOutput>('run-in-netns.ts', HARD_TIMEOUT_MS);

describe.skipIf(SKIP !== undefined)('Chromium with nat-server as its only ICE server (relay only)', () => {
  let output: RunnerOutput;
  let wallMs: number;
  let stderr: string;

  beforeAll(async () => {
    ({ output, wallMs, stderr } = await runner.run({ runs: RUNS, deadlineMs: RUNNER_DEADLINE_MS }));
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

  const runAt = runnerChecks(
    runner,
    RUNS.map((r) => r.name),
    () => ({ output, wallMs, stderr }),
  );

  describe.each(RUNS.map((spec, i) => [spec.name, i] as const))('%s', (_name, i) => {
    const run = (): RunResult => {
      const r = runAt(i);
      expect(r.page).not.toBeNull();
      return r;
    };

    it('gathers only relay candidates, from our server, with no ICE error', () => {
      const r = run();
      const page = r.page!;
      const ip = r.spec.redirect ? '10.99.0.1' : '127.0.0.1';
      expect(r.turnUrl).toMatch(new RegExp(`^turn:${ip.replaceAll('.', '\\.')}:\\d+\\?transport=${r.spec.transport}$`));
      for (const side of [page.gathered.a, page.gathered.b]) {
        expect(side.length).toBeGreaterThanOrEqual(1);
        for (const c of side) {
          expect(c.candidateType).toBe('relay');
          expect(c.protocol).toBe('udp'); // the relayed transport address is UDP (RFC 8656)
          expect(c.address).toBe(ip);
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
        // libwebrtc sets a pair 'in-progress' each time it sends a check on it (Connection::Ping)
        // and 'succeeded' when the response comes, so a snapshot taken while a keepalive check
        // is outstanding reads 'in-progress' (seen twice under load in CI). A received check
        // response is what proves the pair succeeded.
        expect(['succeeded', 'in-progress']).toContain(pair!.state);
        expect(pair!.responsesReceived).toBeGreaterThanOrEqual(1);
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
