/**
 * The side-by-side table of `pnpm bench:connect --baseline DIR`: per pair, the p95 of the time to
 * a working path (connectMs: first selected pair, relay first) and of the time to a direct path
 * (directMs, birthday-punched or not), and the final path, for this build and for the baseline
 * checkout's, with the issue's targets.
 */

/** What the table needs of a pair's summary (run.ts's Summary). */
export interface ComparedSummary {
  readonly a: string;
  readonly b: string;
  readonly ok: number;
  readonly total: number;
  readonly connect: { readonly p50: number; readonly p95: number } | null;
  readonly direct: { readonly p50: number; readonly p95: number; readonly n: number } | null;
  readonly punched: number;
  readonly error?: string;
}

/** The targets the table checks, ms. */
export interface CompareTargets {
  readonly connect: number;
  readonly direct: number;
  readonly punched: number;
}

const cellMs = (x: number | undefined): string => (x === undefined ? '-' : `${Math.round(x)}`);

function pathOf(x: ComparedSummary | undefined): string {
  if (x === undefined) return '-';
  if (x.connect === null) return x.error?.startsWith('n/a') === true ? 'n/a' : 'FAIL';
  if (x.direct === null) return 'relay';
  return `direct ${x.direct.n}/${x.total}${x.punched > 0 ? ` (punched ${x.punched})` : ''}`;
}

/** Whether this build's figures meet the targets: working path p95, and direct p95 where it went direct. */
function meets(x: ComparedSummary, t: CompareTargets): string {
  if (x.connect === null) return x.error?.startsWith('n/a') === true ? '-' : 'MISSED';
  const connectOk = x.connect.p95 < t.connect;
  const directOk = x.direct === null || x.direct.p95 < (x.punched > 0 ? t.punched : t.direct);
  return connectOk && directOk ? 'met' : `MISSED${connectOk ? '' : ' (working path)'}${directOk ? '' : ' (direct)'}`;
}

/** Prints the comparison of `now` (this build) with `before` (the baseline), pair by pair. */
export function printComparison(now: readonly ComparedSummary[], before: readonly ComparedSummary[], baseline: string, t: CompareTargets): void {
  const head = ['A -> B', 'working p95 now/before', 'direct p95 now/before', 'path now', 'path before', 'targets (now)'];
  const rows = now.map((x) => {
    const y = before.find((o) => o.a === x.a && o.b === x.b);
    return [
      `${x.a} -> ${x.b}`,
      `${cellMs(x.connect?.p95)} / ${cellMs(y?.connect?.p95)}`,
      `${cellMs(x.direct?.p95)} / ${cellMs(y?.direct?.p95)}`,
      pathOf(x),
      pathOf(y),
      meets(x, t),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(`\nthis build against ${baseline} (ms, p95 nearest-rank; working = first selected pair, relay first; direct = first direct pair)`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  const p95 = (xs: readonly ComparedSummary[], k: 'connect' | 'direct'): string => {
    const v = xs.map((x) => x[k]?.p95).filter((n): n is number => n !== undefined);
    return v.length === 0 ? '-' : `${Math.round(Math.max(...v))}`;
  };
  console.log(
    `worst pair: working p95 ${p95(now, 'connect')} now, ${p95(before, 'connect')} before; direct p95 ${p95(now, 'direct')} now, ${p95(before, 'direct')} before; ` +
      `direct pairs ${now.filter((x) => x.direct !== null).length} now, ${before.filter((x) => x.direct !== null).length} before, of ${now.length}`,
  );
  console.log(`targets: working path p95 < ${t.connect} ms on every pair; direct p95 < ${t.direct} ms (punched: < ${t.punched} ms)`);
}
