import { type DiscoveryProgress, type NatReport, StunClientError, detectNat } from '@nat/client';
import { ExitCode, UsageError } from '../exit-codes.js';
import { type Io, progressReporter } from '../io.js';

/** Options of `nat detect`. */
export interface DetectCommandOptions {
  readonly server: string;
  readonly local?: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
  readonly lifetime?: boolean;
  readonly classic?: boolean;
  readonly hairpinning?: boolean;
  readonly rto?: number;
  readonly rc?: number;
}

const yesNo = (v: boolean | null, yes = 'yes', no = 'no', unknown = 'not measurable'): string => (v === null ? unknown : v ? yes : no);

/** The report as a person reads it. */
export function renderReport(r: NatReport): string {
  const rows: [string, string][] = [
    ['NAT type', r.classic ? `${r.classicLetter}  ${r.classic}: ${r.classicMeaning}` : 'unknown (this server cannot tell; see notes)'],
    ['Public address', r.publicAddress ?? 'none (no answer)'],
    ['Mapping', r.mapping ?? 'not measurable'],
    ['Filtering', r.filtering ?? 'not measurable'],
    ['Hairpinning', yesNo(r.hairpinning)],
    ['Port preservation', yesNo(r.portPreservation)],
    ['ALG', yesNo(r.alg, 'yes: MAPPED-ADDRESS was rewritten on the way', 'none detected')],
    ['Binding lifetime', r.bindingLifetime === null ? 'not measured (--lifetime measures it; it takes minutes)' : `at least ${r.bindingLifetime} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  lines.push('', `Peer-to-peer: ${r.reachability}`);
  lines.push(`Server ${r.server}${r.otherAddress ? ` (alternate ${r.otherAddress})` : ' (no alternate address)'}, local ${r.localAddress}, ${(r.durationMs / 1000).toFixed(2)} s`);
  if (r.notes.length > 0) lines.push('', 'Notes:', ...r.notes.map((n) => `  - ${n}`));
  return `${lines.join('\n')}\n`;
}

/** The JSON object of `--json`: the report's documented keys (see the README). */
export function reportJson(r: NatReport): Record<string, unknown> {
  return {
    classic: r.classic ?? null,
    classicLetter: r.classicLetter ?? null,
    classicMeaning: r.classicMeaning ?? null,
    mapping: r.mapping,
    filtering: r.filtering,
    behindNat: r.behindNat,
    publicAddress: r.publicAddress,
    hairpinning: r.hairpinning,
    portPreservation: r.portPreservation,
    alg: r.alg,
    bindingLifetime: r.bindingLifetime,
    localAddress: r.localAddress,
    server: r.server,
    otherAddress: r.otherAddress,
    reachability: r.reachability,
    notes: r.notes,
    durationMs: Math.round(r.durationMs),
  };
}

const TEST_NAMES: Record<string, string> = {
  'mapping-I': 'Test I: binding to the primary address',
  'mapping-II': 'mapping Test II: the alternate IP',
  'mapping-III': 'mapping Test III: the alternate IP and port',
  'filtering-I': 'filtering Test I',
  'filtering-II': 'filtering Test II: answer from the other IP and port',
  'filtering-III': 'filtering Test III: answer from the other port',
  hairpinning: 'hairpinning: sending to our own public address',
  'binding-lifetime': 'binding lifetime',
};

/** `nat detect`: runs discovery and prints the report. Returns the exit code. */
export async function detectCommand(o: DetectCommandOptions, io: Io, signal: AbortSignal): Promise<number> {
  const progress = progressReporter(io, !o.json && !o.quiet);
  const running = new Set<string>();
  const onProgress = (p: DiscoveryProgress): void => {
    const name = TEST_NAMES[p.test] ?? p.test;
    if (p.state === 'start') running.add(name);
    else if (p.state !== 'probe') running.delete(name);
    const now = p.state === 'probe' ? `${name}: ${p.detail ?? ''}` : running.size > 0 ? [...running].join(', ') : 'finishing';
    const t = `${(p.elapsedMs / 1000).toFixed(1)}s`;
    progress.update(`${t}  ${now}`, p.state === 'start' || p.state === 'probe' ? `${t}  ${p.state === 'probe' ? now : name}` : undefined);
  };
  let report: NatReport;
  try {
    report = await detectNat({
      server: o.server,
      ...(o.local ? { localAddress: o.local } : {}),
      ...(o.lifetime ? { lifetime: true } : {}),
      ...(o.classic ? { classic: true } : {}),
      ...(o.hairpinning === false ? { hairpinning: false } : {}),
      ...(o.rto !== undefined ? { rto: o.rto } : {}),
      ...(o.rc !== undefined ? { rc: o.rc } : {}),
      signal,
      onProgress,
    });
  } catch (e) {
    progress.done();
    if (e instanceof StunClientError && e.code === 'BAD_ADDRESS') throw new UsageError(`--server: ${e.message}`);
    throw e;
  }
  progress.done();
  io.stdout.write(o.json ? `${JSON.stringify(reportJson(report), null, 2)}\n` : renderReport(report));
  return report.publicAddress === null ? ExitCode.NoAnswer : ExitCode.Ok;
}
