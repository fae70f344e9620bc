import {
  type DiscoveryProgress,
  type NatReport,
  PortMapError,
  PortMapper,
  type PortMapProbe,
  StunClientError,
  detectNat,
  isDoubleNat,
  stunBinding,
} from '@nat/client';
import { ExitCode, UsageError } from '../exit-codes.js';
import { type Io, progressReporter } from '../io.js';
import { probeJson, renderProbe } from './map.js';

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
  /** Router to probe for PCP / NAT-PMP / UPnP (default: the IPv4 default gateway). */
  readonly gateway?: string;
  /** False: skip the port-mapping probes (`--no-port-mapping`). */
  readonly portMapping?: boolean;
}

/** What `nat detect` learned about port mapping on the router. */
export interface PortMappingReport {
  readonly gateway: string | null;
  readonly probe: PortMapProbe | undefined;
  /** Why nothing was probed (no gateway, a loopback server, --no-port-mapping). */
  readonly skipped: string | undefined;
  /** The router's external address differs from the STUN-observed one (null: unknown). */
  readonly doubleNat: boolean | null;
  /** A mapping on this router would make this host reachable from the internet (null: unknown). */
  readonly reachable: boolean | null;
}

/** Probe bound: detect stays fast when no router answers (the probes run beside the STUN tests). */
const PORT_MAP_PROBE_MS = 2500;

const isLoopback = (host: string): boolean => /^(127\.|localhost\b|\[?::1\]?(:|$))/i.test(host);

/** Probes PCP, NAT-PMP and UPnP on the router, concurrently and bounded. */
export async function probePortMapping(o: DetectCommandOptions): Promise<Omit<PortMappingReport, 'doubleNat' | 'reachable'>> {
  if (o.portMapping === false) return { gateway: null, probe: undefined, skipped: 'skipped (--no-port-mapping)' };
  if (o.gateway === undefined && (isLoopback(o.server) || (o.local !== undefined && isLoopback(o.local)))) {
    return { gateway: null, probe: undefined, skipped: 'skipped: the STUN server is on loopback, no router in between (--gateway IP probes one)' };
  }
  let mapper: PortMapper;
  try {
    mapper = await PortMapper.create({ ...(o.gateway ? { gateway: o.gateway } : {}), probeTimeoutMs: PORT_MAP_PROBE_MS });
  } catch (e) {
    if (e instanceof PortMapError && e.code === 'NO_GATEWAY') return { gateway: null, probe: undefined, skipped: e.message };
    throw e;
  }
  try {
    return { gateway: mapper.gateway, probe: await mapper.probe(), skipped: undefined };
  } finally {
    await mapper.close().catch(() => {});
  }
}

/** Adds the double-NAT verdict: the router's external address against the STUN-observed one. */
export function portMappingVerdict(p: Omit<PortMappingReport, 'doubleNat' | 'reachable'>, publicAddress: string | null): PortMappingReport {
  const stunIp = publicAddress === null ? null : publicAddress.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const available = p.probe?.methods.filter((m) => m.available) ?? [];
  const routerIp = available[0]?.externalAddress;
  const doubleNat = isDoubleNat(routerIp, stunIp);
  const reachable = p.probe === undefined ? null : available.length === 0 ? false : doubleNat === null ? null : !doubleNat;
  return { ...p, doubleNat, reachable };
}

/** The `portMapping` key of `--json`. */
export function portMappingJson(p: PortMappingReport): Record<string, unknown> {
  return {
    gateway: p.gateway,
    methods: p.probe ? probeJson(p.probe) : [],
    externalAddress: p.probe?.externalAddress ?? null,
    doubleNat: p.doubleNat,
    reachable: p.reachable,
    skipped: p.skipped ?? null,
  };
}

/** The port-mapping lines of the human report. */
export function renderPortMapping(p: PortMappingReport): string {
  if (!p.probe) return `Port mapping: ${p.skipped ?? 'not probed'}\n`;
  const lines = [`Port mapping on ${p.gateway}:`, ...renderProbe(p.probe).map((l) => `  ${l}`)];
  if (p.doubleNat === true)
    lines.push(
      `  Double NAT: the router's external address ${p.probe.externalAddress} is not the public address; a mapping here does not make this host reachable`,
    );
  else if (p.reachable === true) lines.push('  A mapping makes this host reachable from the internet (nat map add PORT)');
  else if (p.reachable === false) lines.push('  The router offers no port mapping');
  return `${lines.join('\n')}\n`;
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
  lines.push(
    `Server ${r.server}${r.otherAddress ? ` (alternate ${r.otherAddress})` : ' (no alternate address)'}, local ${r.localAddress}, ${(r.durationMs / 1000).toFixed(2)} s`,
  );
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

/** What a STUN Binding over TCP to the server's port said, after UDP got no answer at all. */
export type TcpCheck = { readonly answered: true } | { readonly answered: false; readonly error: string };

/** Bound on the TCP check: a firewall that drops the SYN must not stall detect for long. */
const TCP_CHECK_MS = 3000;

/**
 * Tells "UDP blocked" (TCP answers) from "no server at all" (TCP does not either): one STUN
 * Binding request over TCP to the same host and port.
 */
export async function checkTcp(o: DetectCommandOptions, signal: AbortSignal): Promise<TcpCheck> {
  try {
    await stunBinding(o.server, { transport: 'tcp', ...(o.local ? { localAddress: o.local } : {}), connectTimeoutMs: TCP_CHECK_MS, ti: TCP_CHECK_MS, signal });
    return { answered: true };
  } catch (e) {
    if (e instanceof StunClientError && e.code === 'ABORTED') throw e;
    return { answered: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** The no-server outcome: JSON (the report's keys, no verdict) or a message on stderr; exit 3. */
function reportNoServer(report: NatReport, tcp: TcpCheck & { answered: false }, portMapping: PortMappingReport, o: DetectCommandOptions, io: Io): number {
  const message = `no server answered at all at ${report.server}: no UDP test got an answer, and a STUN Binding request over TCP to the same port failed (${tcp.error}); check --server HOST:PORT and that the server runs there`;
  if (o.json) {
    const notes = [...report.notes, message];
    const json = {
      ...reportJson(report),
      classic: null,
      classicLetter: null,
      classicMeaning: null,
      reachability: 'unknown: no server answered',
      notes,
      tcpCheck: { answered: false, error: tcp.error },
    };
    io.stdout.write(`${JSON.stringify({ ...json, portMapping: portMappingJson(portMapping) }, null, 2)}\n`);
  }
  io.stderr.write(`nat detect: ${message}\n`);
  return ExitCode.NoAnswer;
}

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
  const mapping = probePortMapping(o).catch((e: unknown): Omit<PortMappingReport, 'doubleNat' | 'reachable'> => ({
    gateway: o.gateway ?? null,
    probe: undefined,
    skipped: `failed: ${e instanceof Error ? e.message : String(e)}`,
  }));
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
  const portMapping = portMappingVerdict(await mapping, report.publicAddress);
  let tcp: TcpCheck | undefined;
  if (report.classic === 'udp-blocked') {
    progress.update('no UDP answer: trying STUN over TCP', 'no UDP answer: trying STUN over TCP to the same port');
    tcp = await checkTcp(o, signal);
    progress.done();
    if (!tcp.answered) return reportNoServer(report, tcp, portMapping, o, io);
    report = {
      ...report,
      notes: [...report.notes, `a STUN Binding request over TCP to ${report.server} was answered: the server is up, UDP does not get through`],
    };
  }
  progress.done();
  io.stdout.write(
    o.json
      ? `${JSON.stringify({ ...reportJson(report), ...(tcp === undefined ? {} : { tcpCheck: { answered: true, error: null } }), portMapping: portMappingJson(portMapping) }, null, 2)}\n`
      : `${renderReport(report)}\n${renderPortMapping(portMapping)}`,
  );
  return report.publicAddress === null ? ExitCode.NoAnswer : ExitCode.Ok;
}
