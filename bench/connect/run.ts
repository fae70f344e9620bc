/**
 * `pnpm bench:connect`: time to connect per NAT pair on the real-kernel NAT lab.
 *
 * For each pair of NAT behaviours (A, B) it builds a two-LAN lab (tests/lab/pair.ts), starts
 * `nat-server` (STUN, TURN, rendezvous) on the internet side and `nat listen` behind NAT B, and
 * runs bench/connect/peer.ts behind NAT A, which connects to the listener `--runs` times with
 * `connectPeer` in one process (see peer.ts for why and what it measures). It prints, per pair,
 * the median and 95th percentile of connectMs (first selected pair, relay first) and directMs
 * (first direct pair), and the paths taken, then the same as an A x B matrix.
 *
 * The server has one address (`nat-server --listen` only: no RFC 5780 OTHER-ADDRESS), as most
 * servers on the internet have; `--two-address` adds `--alternate`. With `--baseline DIR` (or
 * BENCH_CONNECT_BASELINE=DIR), a built checkout of another version (say a worktree of main), every
 * pair runs a second time with that checkout's nat-server, nat listen and peer.ts, and a table
 * prints both side by side.
 *
 * Every namespace is removed at the end, also on an error or Ctrl-C (SIGINT/SIGTERM); labs left
 * by a killed earlier run are swept at the start. All traffic stays inside the lab's namespaces.
 * Needs root, `ip`, `nft` and a build (`pnpm bench:connect` builds first).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { BEHAVIOURS, type Behaviour } from '../../tests/lab/recipes.js';
import { destroyAllLabsSync, labAvailable, listLabNamespaces, sweepStaleLabs } from '../../tests/lab/netns.js';
import { createPairLab, type PairLab } from '../../tests/lab/pair.js';
import { RENDEZVOUS, startIceServices } from '../../tests/lab/ice-lab.js';
import { parseBenchArgs, usageError } from '../harness.js';
import { printComparison } from './compare.js';

const PEER = fileURLToPath(new URL('peer.ts', import.meta.url));
const TSX_CLI = createRequire(import.meta.url).resolve('tsx/cli');

const HELP = `pnpm bench:connect [-- options]

Time to connect between two peers behind two real kernel NATs (network namespaces; needs root).

Options:
  --runs N            measured connections per pair (default 5)
  --warmup N          connections before those, not in the statistics (default 1); the first
                      one's connectMs is shown as 'cold' (what a fresh \`nat ping\` process pays)
  --pairs LIST        'representative' (default: every kind against port-restricted-cone and
                      against symmetric), 'all', or a comma list of A:B with * for any kind,
                      e.g. 'full-cone:symmetric,*:open'. Kinds: ${BEHAVIOURS.join(', ')}
  --no-punch          no NAT mapping probe and no birthday punching (both sides)
  --direct-wait MS    after connecting, how long to wait for a direct upgrade (default 3000)
  --punch-wait MS     the same while birthday punching runs (default 8000)
  --time-limit S      stop starting new pairs after this long (default 900)
  --two-address       nat-server with --alternate (RFC 5780) instead of one address
  --baseline DIR      also run every pair with the built checkout DIR (e.g. a worktree of main)
                      and print both side by side (default: BENCH_CONNECT_BASELINE, else none)
  --trace             print each run's timeline (signalling in/out, path changes) to stderr
  --json              one JSON object instead of the tables
  -h, --help`;

const OPTIONS = {
  runs: { type: 'string', default: '5' },
  warmup: { type: 'string', default: '1' },
  pairs: { type: 'string', default: 'representative' },
  'no-punch': { type: 'boolean', default: false },
  'direct-wait': { type: 'string', default: '3000' },
  'punch-wait': { type: 'string', default: '8000' },
  'time-limit': { type: 'string', default: '900' },
  'two-address': { type: 'boolean', default: false },
  baseline: { type: 'string' },
  json: { type: 'boolean', default: false },
  trace: { type: 'boolean', default: false },
} as const;

/** Targets of the issue (ms): a working path (relay first) within 300 ms, direct within 2 s, punched or not. */
const TARGET = { connect: 300, direct: 2000, punched: 2000 } as const;
const FAILURE_TIMEOUT_MS = 10_000;

interface RunLine {
  type: 'run';
  i: number;
  warmup: boolean;
  error?: string;
  connectMs?: number;
  directMs?: number | null;
  firstPath?: 'direct' | 'relay';
  firstLocal?: string;
  firstRemote?: string;
  path?: 'direct' | 'relay';
  local?: string;
  remote?: string;
  punched?: boolean;
  rttMs?: number | null;
  directRttMs?: number | null;
  punch?: { role: string | null; outcome: string | null; probesSent: number; socketsOpened: number };
  trace?: string[];
}

interface PairResult {
  a: Behaviour;
  b: Behaviour;
  runs: RunLine[];
  probe?: { probeMs: number; mapping: string | null; ports: string | null };
  error?: string;
  wallMs: number;
}

function usage(msg: string): never {
  return usageError('connect', HELP, msg);
}

const values = parseBenchArgs('connect', HELP, OPTIONS);

function parsePairs(spec: string): [Behaviour, Behaviour][] {
  const kinds = BEHAVIOURS;
  if (spec === 'all') return kinds.flatMap((a) => kinds.map((b) => [a, b] as [Behaviour, Behaviour]));
  if (spec === 'representative') spec = '*:port-restricted-cone,*:symmetric';
  const out: [Behaviour, Behaviour][] = [];
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [x, y, ...rest] = item.split(':');
    if (x === undefined || y === undefined || rest.length > 0) usage(`--pairs: ${JSON.stringify(item)} is not A:B`);
    const side = (s: string): Behaviour[] => {
      if (s === '*') return [...kinds];
      if (!(kinds as readonly string[]).includes(s)) usage(`--pairs: unknown kind ${JSON.stringify(s)}`);
      return [s as Behaviour];
    };
    for (const a of side(x)) for (const b of side(y)) if (!out.some(([p, q]) => p === a && q === b)) out.push([a, b]);
  }
  if (out.length === 0) usage('--pairs selects no pair');
  return out;
}

function int(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}`);
  return n;
}

interface Settings {
  runs: number;
  warmup: number;
  punch: boolean;
  directWait: number;
  punchWait: number;
  trace: boolean;
  twoAddress: boolean;
  /** A built checkout to compare with. */
  baseline: string | undefined;
}

/** One pair with this checkout's build, or with the checkout `root`'s. */
async function runPair(a: Behaviour, b: Behaviour, s: Settings, root?: string): Promise<PairResult> {
  const t = Date.now();
  let lab: PairLab | undefined;
  try {
    lab = await createPairLab({ a, b });
    const { id } = await startIceServices(lab, {
      listenArgs: s.punch ? [] : ['--no-punch'],
      server: { addresses: s.twoAddress ? 2 : 1 },
      ...(root === undefined ? {} : { root }),
    });
    // Bounded: every run ends within failureTimeout + the longest wait + two 2 s pings + a pause.
    const perRun = FAILURE_TIMEOUT_MS + Math.max(s.directWait, s.punchWait) + 4_000 + 500;
    const r = await lab.exec(
      'clientA',
      [
        process.execPath,
        TSX_CLI,
        root === undefined ? PEER : join(root, 'bench/connect/peer.ts'),
        '--rendezvous',
        RENDEZVOUS,
        '--peer',
        id,
        '--runs',
        String(s.runs),
        '--warmup',
        String(s.warmup),
        '--direct-wait',
        String(s.directWait),
        '--punch-wait',
        String(s.punchWait),
        '--failure-timeout',
        String(FAILURE_TIMEOUT_MS),
        ...(s.punch ? [] : ['--no-punch']),
        ...(s.trace ? ['--trace'] : []),
      ],
      { timeoutMs: 15_000 + (s.warmup + s.runs) * perRun },
    );
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string });
    const runs = lines.filter((l): l is RunLine => l.type === 'run');
    const probe = lines.find((l) => l.type === 'probe') as PairResult['probe'] | undefined;
    const done = lines.some((l) => l.type === 'done');
    const error = done ? undefined : `peer exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    return { a, b, runs, ...(probe === undefined ? {} : { probe }), ...(error === undefined ? {} : { error }), wallMs: Date.now() - t };
  } catch (e) {
    return { a, b, runs: [], error: (e as Error).message, wallMs: Date.now() - t };
  } finally {
    await lab?.destroy();
  }
}

/** Nearest-rank percentile of a non-empty list. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

interface Summary {
  a: Behaviour;
  b: Behaviour;
  ok: number;
  total: number;
  /** connectMs of the process's first connection (a warm-up run), or null. */
  coldMs: number | null;
  connect: { p50: number; p95: number } | null;
  direct: { p50: number; p95: number; n: number } | null;
  firstPath: string;
  finalPath: string;
  punched: number;
  probeMs: number | null;
  meetsTargets: boolean | null;
  error?: string;
}

const mostCommon = (xs: readonly string[]): string => {
  const counts = new Map<string, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  const sorted = [...counts].sort((p, q) => q[1] - p[1]);
  return sorted.map(([k, n]) => (sorted.length > 1 ? `${k} x${n}` : k)).join(', ') || '-';
};

function summarize(r: PairResult): Summary {
  const cold = r.runs.find((x) => x.i === 0 && x.warmup);
  const measured = r.runs.filter((x) => !x.warmup);
  const ok = measured.filter((x) => x.connectMs !== undefined);
  const connects = ok.map((x) => x.connectMs!);
  const directs = ok.map((x) => x.directMs).filter((x): x is number => typeof x === 'number');
  const punched = ok.filter((x) => x.punched === true).length;
  const connect = connects.length > 0 ? { p50: percentile(connects, 50), p95: percentile(connects, 95) } : null;
  const direct = directs.length > 0 ? { p50: percentile(directs, 50), p95: percentile(directs, 95), n: directs.length } : null;
  const directTarget = punched > 0 ? TARGET.punched : TARGET.direct;
  const meets = connect === null ? null : ok.length === measured.length && connect.p95 < TARGET.connect && (direct === null || direct.p95 < directTarget);
  return {
    a: r.a,
    b: r.b,
    ok: ok.length,
    total: measured.length,
    coldMs: cold?.connectMs ?? null,
    connect,
    direct,
    firstPath: mostCommon(ok.map((x) => `${x.firstPath} ${x.firstLocal}->${x.firstRemote}`)),
    finalPath: mostCommon(ok.map((x) => `${x.path} ${x.local}->${x.remote}${x.punched ? ' punched' : ''}`)),
    punched,
    probeMs: r.probe?.probeMs ?? null,
    meetsTargets: meets,
    ...(r.error === undefined ? {} : { error: r.error }),
  };
}

const ms = (x: number): string => `${Math.round(x)}`;
const oneLine = (x: Summary, wallMs: number): string =>
  `${x.connect ? `connect ${ms(x.connect.p50)}/${ms(x.connect.p95)} ms` : 'no connection'}` +
  `${x.direct ? `, direct ${ms(x.direct.p50)}/${ms(x.direct.p95)} ms (${x.direct.n}/${x.total})` : ''} ${x.error ?? ''} [${wallMs} ms]`;
/** The first line of an error, at most 60 characters, for a table cell (the whole one is printed below). */
const shortError = (e: string): string => {
  const first = e.split('\n')[0] ?? '';
  return e.startsWith('n/a') ? 'n/a (needs TURN over TCP)' : `FAILED: ${first.length > 52 ? `${first.slice(0, 51)}...` : first}`;
};

function printTables(summaries: readonly Summary[], s: Settings): void {
  const head = ['A (peer.ts) -> B (nat listen)', 'ok', 'connect p50/p95', 'cold', 'first path', 'direct p50/p95 (n)', 'final path', 'probe', 'targets'];
  const rows = summaries.map((x) => [
    `${x.a} -> ${x.b}`,
    x.error !== undefined && x.total === 0 ? '-' : `${x.ok}/${x.total}`,
    x.connect ? `${ms(x.connect.p50)}/${ms(x.connect.p95)}` : '-',
    x.coldMs === null ? '-' : ms(x.coldMs),
    x.error !== undefined && x.total === 0 ? shortError(x.error) : x.firstPath,
    x.direct ? `${ms(x.direct.p50)}/${ms(x.direct.p95)} (${x.direct.n})` : '-',
    x.finalPath,
    x.probeMs === null ? '-' : ms(x.probeMs),
    x.meetsTargets === null ? '-' : x.meetsTargets ? 'met' : 'MISSED',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(
    `connect times, ms, over ${s.runs} runs per pair after ${s.warmup} warm-up run(s) (p95 is nearest-rank: with 5 runs, the slowest); ` +
      "cold = the peer process's first connection; probe = its one NAT mapping probe (not in connect)",
  );
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  for (const x of summaries) {
    if (x.error !== undefined && !x.error.startsWith('n/a')) console.log(`  ${x.a} -> ${x.b}: ${x.error}`);
  }
  // Matrix of medians.
  const as = BEHAVIOURS.filter((k) => summaries.some((x) => x.a === k));
  const bs = BEHAVIOURS.filter((k) => summaries.some((x) => x.b === k));
  const cell = (a: Behaviour, b: Behaviour): string => {
    const x = summaries.find((y) => y.a === a && y.b === b);
    if (x === undefined) return '';
    if (x.connect === null) return x.error?.startsWith('n/a') ? 'n/a' : 'FAIL';
    return `${ms(x.connect.p50)}${x.direct ? ` / d${ms(x.direct.p50)}${x.punched > 0 ? 'p' : ''}` : ' / relay'}`;
  };
  const w = 24;
  console.log('\nmedian connectMs / median directMs (d = direct upgrade, p = birthday-punched; relay = no direct path)');
  console.log(`${'A \\ B'.padEnd(24)}${bs.map((b) => b.padEnd(w)).join('')}`);
  for (const a of as) console.log(`${a.padEnd(24)}${bs.map((b) => cell(a, b).padEnd(w)).join('')}`);
  console.log(`\ntargets: connect p95 < ${TARGET.connect} ms for every pair; direct p95 < ${TARGET.direct} ms (< ${TARGET.punched} ms when birthday-punched)`);
}

async function main(): Promise<void> {
  const settings: Settings = {
    runs: int('runs', values.runs, 1),
    warmup: int('warmup', values.warmup, 0),
    punch: !values['no-punch'],
    directWait: int('direct-wait', values['direct-wait'], 0),
    punchWait: int('punch-wait', values['punch-wait'], 0),
    trace: values.trace === true,
    twoAddress: values['two-address'] === true,
    baseline: values.baseline ?? process.env.BENCH_CONNECT_BASELINE,
  };
  const timeLimitMs = int('time-limit', values['time-limit'], 1) * 1000;
  const pairs = parsePairs(values.pairs ?? 'representative');
  const avail = labAvailable();
  if (!avail.ok) {
    process.stderr.write(`bench:connect: the NAT lab is not available here: ${avail.reason}\n`);
    process.exit(1);
  }
  const swept = sweepStaleLabs();
  if (swept.length > 0) process.stderr.write(`removed ${swept.length} namespaces left by an earlier run\n`);
  // Ctrl-C or a kill: remove every namespace of this run before exiting.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench:connect: ${sig}, removing the labs\n`);
      destroyAllLabsSync();
      process.exit(130);
    });
  }
  const started = Date.now();
  const results: PairResult[] = [];
  const baseline: PairResult[] = [];
  const skipped: string[] = [];
  for (const [a, b] of pairs) {
    if (Date.now() - started > timeLimitMs) {
      skipped.push(`${a}:${b}`);
      continue;
    }
    const r = await runPair(a, b, settings);
    results.push(r);
    if (!values.json) process.stderr.write(`${a} -> ${b}: ${oneLine(summarize(r), r.wallMs)}\n`);
    if (settings.baseline !== undefined) {
      const old = await runPair(a, b, settings, settings.baseline);
      baseline.push(old);
      if (!values.json) process.stderr.write(`  baseline: ${oneLine(summarize(old), old.wallMs)}\n`);
    }
    if (settings.trace) {
      for (const x of r.runs)
        process.stderr.write(`  ${a} -> ${b} run ${x.i}: ${x.error ?? `connect ${x.connectMs} direct ${x.directMs}`}\n    ${(x.trace ?? []).join('\n    ')}\n`);
    }
  }
  const summaries = results.map(summarize);
  const baseSummaries = baseline.map(summarize);
  const leftover = listLabNamespaces().filter((n) => n.startsWith(`natlab-${process.pid}-`));
  if (values.json) {
    console.log(
      JSON.stringify({
        settings,
        targets: TARGET,
        summaries,
        results,
        baseline: baseSummaries,
        skipped,
        leftoverNamespaces: leftover,
        wallMs: Date.now() - started,
      }),
    );
  } else {
    printTables(summaries, settings);
    if (settings.baseline !== undefined) printComparison(summaries, baseSummaries, settings.baseline, TARGET);
    if (skipped.length > 0) console.log(`not run (time limit): ${skipped.join(', ')}`);
    console.log(`wall ${Math.round((Date.now() - started) / 1000)} s; namespaces left: ${leftover.length}`);
  }
  if (leftover.length > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:connect: ${(e as Error).stack ?? String(e)}\n`);
  destroyAllLabsSync();
  process.exit(1);
});
