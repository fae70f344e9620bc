/**
 * The measuring side of `pnpm bench:connect`: runs inside client A's network namespace (started
 * by run.ts with `ip netns exec`), registers once with the rendezvous service, learns its NAT
 * mapping once (what a long-running peer would cache), then connects to the listener `--runs`
 * times in a row with `connectPeer`, one fresh ICE session (new sockets, new TURN allocation)
 * each time. Prints one JSON line per event:
 *
 * - `{"type":"probe", probeMs, mapping, ports}`: the one NAT mapping probe (not in connectMs);
 * - `{"type":"run", i, warmup, connectMs, directMs, firstPath, path, ...}` per run (the first
 *   `--warmup` ones, default 1, are the process's first connections: cold code); connectMs is from the
 *   `connectPeer` call to the first selected pair (relay first), directMs to the first direct
 *   pair (null when none came within the wait), both from the connection's own clocks;
 * - `{"type":"done"}` at the end.
 *
 * With `--trace`, each run line also has `trace`: the signalling messages sent and received and
 * the path changes, each with its time since the `connectPeer` call (where the time goes).
 *
 * Usage: peer.ts --rendezvous URL --peer ID [--runs 5] [--warmup 1] [--no-punch] [--direct-wait 3000]
 *        [--punch-wait 8000] [--failure-timeout 10000] [--trace]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type IceConnection,
  type LearnedPunchOptions,
  RendezvousClient,
  connectPeer,
  generateIdentity,
  learnPunchOptions,
} from '../../packages/client/dist/index.js';
import { parseBenchArgs } from '../harness.js';

const USAGE = `usage: tsx bench/connect/peer.ts --rendezvous URL --peer ID [options]   (started by bench/connect/run.ts)
  --rendezvous URL        the rendezvous service
  --peer ID               the listener's peer id
  --runs N                measured connections (default 5)
  --warmup N              connections before those (default 1)
  --no-punch              no NAT mapping probe, no birthday punching
  --direct-wait MS        after connecting, wait this long for a direct pair (default 3000)
  --punch-wait MS         the same while birthday punching runs (default 8000)
  --failure-timeout MS    a connection not ready by then fails (default 10000)
  --pause MS              between runs (default 200)
  --trace                 add each run's timeline to its line
  -h, --help`;

const values = parseBenchArgs('connect/peer', USAGE, {
  rendezvous: { type: 'string' },
  peer: { type: 'string' },
  runs: { type: 'string', default: '5' },
  warmup: { type: 'string', default: '1' },
  'no-punch': { type: 'boolean', default: false },
  'direct-wait': { type: 'string', default: '3000' },
  'punch-wait': { type: 'string', default: '8000' },
  'failure-timeout': { type: 'string', default: '10000' },
  pause: { type: 'string', default: '200' },
  trace: { type: 'boolean', default: false },
});

const out = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const round = (ms: number): number => Math.round(ms * 10) / 10;

/** The candidate type of a candidate line (`... typ relay ...`). */
const typeOf = (line: string): string => / typ (\S+)/.exec(line)?.[1] ?? '?';

/** A timeline of one run: signalling in and out, and path changes. */
class Tracer {
  events: string[] = [];
  t0 = 0;
  constructor(private readonly on: boolean) {}
  start(): void {
    this.events = [];
    this.t0 = performance.now();
  }
  note(what: string): void {
    if (this.on) this.events.push(`${round(performance.now() - this.t0)} ${what}`);
  }
  describe(m: { type: string; candidates?: readonly string[]; candidate?: string }): string {
    if (m.candidates !== undefined) return `${m.type} [${m.candidates.map(typeOf).join(',')}]`;
    if (m.candidate !== undefined) return `${m.type} ${typeOf(m.candidate)}`;
    return m.type;
  }
}

/**
 * Waits while a direct path may still come: until the path is direct; while birthday punching
 * runs (hard or easy role, no outcome yet, or a hit less than 2 s old) up to `punchWait`;
 * otherwise up to `directWait` after the start.
 */
async function waitForDirect(conn: IceConnection, startedAt: number, directWait: number, punchWait: number): Promise<void> {
  let hitAt: number | undefined;
  for (;;) {
    if (conn.closed || conn.path?.path === 'direct') return;
    const elapsed = performance.now() - startedAt;
    const p = conn.punch;
    const punching = p !== undefined && (p.role === 'hard' || p.role === 'easy') && (p.outcome === undefined || p.outcome === 'hit');
    if (p?.outcome === 'hit') hitAt ??= performance.now();
    if (hitAt !== undefined && performance.now() - hitAt > 2000) return;
    if (elapsed > (punching ? punchWait : directWait)) return;
    await sleep(10);
  }
}

async function main(): Promise<void> {
  const url = values.rendezvous;
  const peer = values.peer;
  if (url === undefined || peer === undefined) throw new Error('--rendezvous and --peer are required');
  const warmup = Number(values.warmup);
  const runs = warmup + Number(values.runs);
  const directWait = Number(values['direct-wait']);
  const punchWait = Number(values['punch-wait']);
  const failureTimeout = Number(values['failure-timeout']);
  const pause = Number(values.pause);
  const rv = await RendezvousClient.connect({ url, identity: generateIdentity() });
  const tracer = new Tracer(values.trace);
  if (values.trace) {
    rv.on('message', (m) => tracer.note(`in ${tracer.describe(m)}`));
    const send = rv.send.bind(rv);
    rv.send = (m) => {
      tracer.note(`out ${tracer.describe(m)}`);
      return send(m);
    };
  }
  try {
    let punch: LearnedPunchOptions | undefined;
    if (!values['no-punch']) {
      const t = performance.now();
      punch = await learnPunchOptions(rv.iceServers);
      out({ type: 'probe', probeMs: round(performance.now() - t), mapping: punch.mapping ?? null, ports: punch.probe?.portAllocation ?? null });
    }
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      tracer.start();
      let conn: IceConnection;
      try {
        const connecting = connectPeer(rv, peer, { agent: { failureTimeout }, ...(punch === undefined ? {} : { punch }) });
        conn = await connecting;
        tracer.note(`ready ${conn.path?.path}`);
        conn.on('path', (p) => tracer.note(`path ${p.path} ${p.localCandidate.type}->${p.remoteCandidate.type}`));
      } catch (e) {
        out({ type: 'run', i, warmup: i < warmup, error: (e as Error).message, afterMs: round(performance.now() - started) });
        continue;
      }
      try {
        const first = conn.path!;
        const connectMs = round((conn.connectedAt ?? performance.now()) - conn.startedAt);
        // A working path: the listener answers a ping on it.
        const rttMs = await conn.ping({ timeoutMs: 2000 }).then(round, () => null);
        await waitForDirect(conn, conn.startedAt, directWait, punchWait);
        const path = conn.path ?? first;
        const directRtt = path.path === 'direct' ? await conn.ping({ timeoutMs: 2000 }).then(round, () => null) : null;
        const p = conn.punch;
        out({
          type: 'run',
          i,
          warmup: i < warmup,
          connectMs,
          directMs: conn.directAt === undefined ? null : round(conn.directAt - conn.startedAt),
          firstPath: first.path,
          firstLocal: first.localCandidate.type,
          firstRemote: first.remoteCandidate.type,
          path: path.path,
          local: path.localCandidate.type,
          remote: path.remoteCandidate.type,
          punched: path.punched,
          rttMs,
          directRttMs: directRtt,
          callMs: round(performance.now() - started),
          ...(p === undefined ? {} : { punch: { role: p.role ?? null, outcome: p.outcome ?? null, probesSent: p.probesSent, socketsOpened: p.socketsOpened } }),
          ...(values.trace ? { trace: tracer.events } : {}),
        });
      } finally {
        await conn.close();
      }
      await sleep(pause);
    }
  } finally {
    await rv.close();
  }
  out({ type: 'done' });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench/connect/peer: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
