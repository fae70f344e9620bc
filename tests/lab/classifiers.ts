/**
 * Independent NAT classifiers from Debian packages, run inside a {@link Lab}:
 *
 * - coturn's `turnserver` (STUN only, on both server addresses, so that RFC 5780 CHANGE-REQUEST
 *   and OTHER-ADDRESS work) with `turnutils_natdiscovery` in the client namespace: the RFC 5780
 *   mapping and filtering verdicts.
 * - the classic RFC 3489 `stund` (package stun-server) with the `stun` client (package
 *   stun-client): the classic type (open, full cone, ..., blocked).
 *
 * They listen on different ports (coturn 3478/3479, stund 3488/3489 by default) because both
 * bind every address and port they serve and cannot share them.
 */
import { accessSync, constants } from 'node:fs';
import type { TransportAddress } from '@nat/protocol';
import type { Lab, LabProcess } from './netns.js';
import type { ClassicNatType, MappingBehaviour, FilteringBehaviour } from './recipes.js';

/** A STUN server started in the lab's server namespace. */
export interface LabStunServer {
  readonly process: LabProcess;
  /** Primary address and port (where clients send). */
  readonly primary: TransportAddress;
  /** The alternate address and port (RFC 3489 CHANGED-ADDRESS / RFC 5780 OTHER-ADDRESS). */
  readonly alternate: TransportAddress;
  /** Stops the server (it is also stopped by lab.destroy()). */
  stop(): Promise<void>;
}

/** Options of the server starters. */
export interface StunServerOptions {
  /** Primary port (default 3478 for coturn, 3488 for stund); the alternate port is this + 1. */
  readonly port?: number;
  /** How long to wait until every listener is bound, in ms (default 5000). */
  readonly readyTimeoutMs?: number;
}

const v4 = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });

/**
 * Waits until UDP sockets are bound on every `ip:port` in `ns` (polls `ss`). Throws with
 * the daemon's output when they are not bound in time or the daemon exits.
 */
export async function waitForUdpListeners(lab: Lab, ns: string, endpoints: readonly TransportAddress[], daemon: LabProcess, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const want = endpoints.map((e) => `${e.address}:${e.port}`);
  for (;;) {
    const r = await lab.exec(ns, ['ss', '-Hnul'], { timeoutMs: 2000 });
    const bound = new Set(r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[3]));
    if (want.every((w) => bound.has(w))) return;
    if (daemon.hasExited() || Date.now() > deadline) {
      const missing = want.filter((w) => !bound.has(w));
      throw new Error(
        `${daemon.argv[0]} in ${ns}: ${daemon.hasExited() ? 'exited' : 'not ready in time'}, ` +
          `not bound: ${missing.join(', ')}\n${daemon.output().slice(-2000)}`,
      );
    }
    await new Promise((r2) => setTimeout(r2, 50));
  }
}

/**
 * Starts `argv` in the server namespace and waits until it listens on both server addresses,
 * `port` and `port + 1`; stops it when it does not.
 */
async function startStunDaemon(lab: Lab, argv: readonly string[], port: number, readyTimeoutMs?: number): Promise<LabStunServer> {
  const proc = lab.spawn('server', argv);
  const primary = v4(lab.server.primary, port);
  const alternate = v4(lab.server.secondary, port + 1);
  try {
    await waitForUdpListeners(lab, lab.server.ns, [primary, v4(lab.server.primary, port + 1), v4(lab.server.secondary, port), alternate], proc, readyTimeoutMs);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { process: proc, primary, alternate, stop: () => proc.stop() };
}

/**
 * Starts coturn as a STUN-only server on both server addresses, primary port and primary
 * port + 1 (its alternate port), so that it answers RFC 5780 behaviour discovery. No
 * authentication, no TURN, no TLS/DTLS, no CLI, no config file; logs to its stdout.
 */
export async function startCoturnStun(lab: Lab, opts: StunServerOptions = {}): Promise<LabStunServer> {
  const port = opts.port ?? 3478;
  const argv = [
    'turnserver',
    '-n', // no configuration file
    '--stun-only',
    '--no-auth',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--listening-ip',
    lab.server.primary,
    '--listening-ip',
    lab.server.secondary,
    '--listening-port',
    String(port),
    '--alt-listening-port',
    String(port + 1),
    '--log-file',
    'stdout',
    '--simple-log',
    '--pidfile',
    `${lab.tmpDir}/turnserver-${port}.pid`,
    '--userdb',
    `${lab.tmpDir}/turndb-${port}`,
  ];
  return startStunDaemon(lab, argv, port, opts.readyTimeoutMs);
}

/**
 * Starts the classic RFC 3489 server `stund -h PRIMARY -a SECONDARY -p PORT -o PORT+1` in
 * the server namespace (foreground; it needs both addresses and both ports).
 */
export async function startStund(lab: Lab, opts: StunServerOptions = {}): Promise<LabStunServer> {
  const port = opts.port ?? 3488;
  const argv = ['stund', '-h', lab.server.primary, '-a', lab.server.secondary, '-p', String(port), '-o', String(port + 1)];
  return startStunDaemon(lab, argv, port, opts.readyTimeoutMs);
}

/** What `turnutils_natdiscovery -m -f` concluded. */
export interface NatDiscoveryResult {
  /** False when it reported "No NAT!"; undefined when it could not tell (no answer). */
  readonly nat: boolean | undefined;
  /** RFC 5780 section 4.3 verdict, undefined when none was printed. */
  readonly mapping: MappingBehaviour | undefined;
  /** RFC 5780 section 4.4 verdict, undefined when none was printed. */
  readonly filtering: FilteringBehaviour | undefined;
  /** Every "UDP reflexive addr" it printed, in order. */
  readonly reflexive: readonly TransportAddress[];
  /** True when it saw MAPPED-ADDRESS differ from XOR-MAPPED-ADDRESS (an ALG). */
  readonly alg: boolean;
  /** Number of "STUN receive timeout" lines (requests left unanswered). */
  readonly timeouts: number;
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  /** Its whole output. */
  readonly raw: string;
}

const VERDICT: Readonly<Record<string, MappingBehaviour>> = {
  'Endpoint Independent': 'endpoint-independent',
  'Address Dependent': 'address-dependent',
  'Address and Port Dependent': 'address-and-port-dependent',
};

const ADDR_RE = /(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})/;

/** Parses the output of `turnutils_natdiscovery` (coturn 4.6). */
export function parseNatDiscovery(raw: string, exitCode: number | null = 0, timedOut = false): NatDiscoveryResult {
  let nat: boolean | undefined;
  let mapping: MappingBehaviour | undefined;
  let filtering: FilteringBehaviour | undefined;
  const reflexive: TransportAddress[] = [];
  let alg = false;
  let timeouts = 0;
  for (const line of raw.split('\n')) {
    let m: RegExpExecArray | null;
    if (/No NAT! \(Endpoint Independent Mapping\)/.test(line)) {
      nat = false;
      mapping = 'endpoint-independent';
    } else if ((m = /NAT with (.+) Mapping!/.exec(line))) {
      nat = true;
      mapping = VERDICT[m[1] as string];
    } else if ((m = /NAT with (.+) Filtering!/.exec(line))) {
      filtering = VERDICT[m[1] as string];
    } else if (line.includes('UDP reflexive addr') && (m = ADDR_RE.exec(line))) {
      reflexive.push({ family: 'IPv4', address: m[1] as string, port: Number(m[2]) });
    } else if (/ALG detected|Mapped != XOR-Mapped/i.test(line)) {
      alg = true;
    } else if (line.includes('STUN receive timeout')) {
      timeouts += 1;
    }
  }
  return { nat, mapping, filtering, reflexive, alg, timeouts, exitCode, timedOut, raw };
}

/** Options of {@link runNatDiscovery}. */
export interface NatDiscoveryOptions {
  /** Server to ask (default the lab's primary address, port 3478). */
  readonly server?: TransportAddress;
  /** Which discoveries to run (default both). */
  readonly mapping?: boolean;
  readonly filtering?: boolean;
  /** Kill it after this many ms (default 15000; a fully blocked run takes about 6 s). */
  readonly timeoutMs?: number;
}

/**
 * Runs `turnutils_natdiscovery -m -f -L CLIENT SERVER` in the client namespace. `-L` binds the
 * client's own address, which is how the tool recognises "No NAT" (its default 0.0.0.0 never
 * equals a reflexive address).
 */
export async function runNatDiscovery(lab: Lab, opts: NatDiscoveryOptions = {}): Promise<NatDiscoveryResult> {
  const server = opts.server ?? v4(lab.server.primary, 3478);
  const flags = [...((opts.mapping ?? true) ? ['-m'] : []), ...((opts.filtering ?? true) ? ['-f'] : [])];
  const r = await lab.exec('client', ['turnutils_natdiscovery', ...flags, '-L', lab.client.address, '-p', String(server.port), server.address], {
    timeoutMs: opts.timeoutMs ?? 15_000,
  });
  return parseNatDiscovery(`${r.stdout}\n${r.stderr}`, r.code, r.timedOut);
}

/** What `turnutils_natdiscovery -t -T SECONDS` saw. */
export interface MappingLifetimeResult {
  /** True when the server's answer through the old mapping still arrived after the wait. */
  readonly alive: boolean;
  readonly seconds: number;
  readonly raw: string;
}

/**
 * RFC 5780 section 4.6 lifetime probe: binds a mapping, waits `seconds`, then asks the server
 * (from another socket, with RESPONSE-PORT) to answer to the old mapping. coturn's tool prints
 * a second "RFC 5780 response" when it arrives and "STUN receive timeout" when the mapping
 * had expired. Takes `seconds` (+3 s when expired).
 */
export async function runMappingLifetimeProbe(
  lab: Lab,
  seconds: number,
  opts: { server?: TransportAddress; timeoutMs?: number } = {},
): Promise<MappingLifetimeResult> {
  const server = opts.server ?? v4(lab.server.primary, 3478);
  const r = await lab.exec(
    'client',
    ['turnutils_natdiscovery', '-t', '-T', String(seconds), '-L', lab.client.address, '-p', String(server.port), server.address],
    { timeoutMs: opts.timeoutMs ?? seconds * 1000 + 15_000 },
  );
  const raw = `${r.stdout}\n${r.stderr}`;
  return { alive: /RFC 5780 response 2/.test(raw), seconds, raw };
}

/** What the classic `stun` client concluded. */
export interface StunClientResult {
  /** The classic type from the "Primary:" line; undefined when absent or not understood. */
  readonly type: ClassicNatType | undefined;
  /** The classic type decoded from the exit code (the low 8 bits of its "Return value"). */
  readonly typeFromExitCode: ClassicNatType | undefined;
  /** The text after "Primary: ". */
  readonly primary: string | undefined;
  /** "preserves ports" (the mapped port equals the local one). */
  readonly preservesPort: boolean;
  /** "will hairpin". */
  readonly hairpin: boolean;
  /** The first MAPPED-ADDRESS it received (verbose output), if any. */
  readonly mappedAddress: TransportAddress | undefined;
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  readonly raw: string;
}

/**
 * Decodes the classic client's exit status. stun 0.97 returns its "Return value": a type code
 * in bits 1-3 (0x00 open, 0x02 independent filter, 0x04 address dependent filter, 0x06 port
 * dependent filter, 0x08 dependent mapping, 0x0A firewall, 0x0C blocked, 0x0E unknown),
 * 0x01 when the port was preserved and 0x10 when the NAT does NOT hairpin.
 */
export function classicTypeFromExitCode(code: number | null): ClassicNatType | undefined {
  if (code === null) return undefined;
  switch (code & 0x0e) {
    case 0x00:
      return 'open';
    case 0x02:
      return 'full-cone';
    case 0x04:
      return 'restricted-cone';
    case 0x06:
      return 'port-restricted-cone';
    case 0x08:
      return 'symmetric';
    case 0x0a:
      return 'symmetric-udp-firewall';
    case 0x0c:
      return 'blocked';
    default:
      return undefined;
  }
}

/** Classic type named by the text of a "Primary:" line of stun 0.97. */
export function classicTypeFromText(primary: string): ClassicNatType | undefined {
  if (/^Open\b/.test(primary)) return 'open';
  if (primary.startsWith('Independent Mapping, Independent Filter')) return 'full-cone';
  if (primary.startsWith('Independent Mapping, Address Dependent Filter')) return 'restricted-cone';
  if (primary.startsWith('Independent Mapping, Port Dependent Filter')) return 'port-restricted-cone';
  if (primary.startsWith('Dependent Mapping')) return 'symmetric';
  if (primary.startsWith('Firewall')) return 'symmetric-udp-firewall';
  if (primary.startsWith('Blocked')) return 'blocked';
  return undefined;
}

/** Parses the output and exit code of Debian's `stun` client (0.97). */
export function parseStunClient(raw: string, exitCode: number | null, timedOut = false): StunClientResult {
  const primaryMatch = /^Primary: (.*)$/m.exec(raw);
  const primary = primaryMatch?.[1]?.trim();
  const mapped = /MappedAddress = (\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})/.exec(raw);
  return {
    type: primary === undefined ? undefined : classicTypeFromText(primary),
    typeFromExitCode: timedOut ? undefined : classicTypeFromExitCode(exitCode),
    primary,
    preservesPort: primary?.includes('preserves ports') ?? false,
    hairpin: primary?.includes('will hairpin') ?? false,
    mappedAddress: mapped ? { family: 'IPv4', address: mapped[1] as string, port: Number(mapped[2]) } : undefined,
    exitCode,
    timedOut,
    raw,
  };
}

/** Options of {@link runStunClient}. */
export interface StunClientOptions {
  /** Server to ask (default the lab's primary address, port 3488: where startStund listens). */
  readonly server?: TransportAddress;
  /** Kill it after this many ms (default 15000; a blocked run takes about 1.2 s). */
  readonly timeoutMs?: number;
}

/** Runs `stun -v SERVER:PORT` (classic RFC 3489 client) in the client namespace. */
export async function runStunClient(lab: Lab, opts: StunClientOptions = {}): Promise<StunClientResult> {
  const server = opts.server ?? v4(lab.server.primary, 3488);
  const r = await lab.exec('client', ['stun', `${server.address}:${server.port}`, '-v'], {
    timeoutMs: opts.timeoutMs ?? 15_000,
  });
  return parseStunClient(`${r.stdout}\n${r.stderr}`, r.code, r.timedOut);
}

/** Whether the classifier programs are installed (and which one is missing). */
export function classifiersAvailable(): { ok: true } | { ok: false; reason: string } {
  const path = (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const tool of ['turnserver', 'turnutils_natdiscovery', 'stund', 'stun', 'ss']) {
    if (!path.some((dir) => dir && existsExecutable(`${dir}/${tool}`))) {
      return { ok: false, reason: `${tool} is missing (run scripts/install-test-deps.sh)` };
    }
  }
  return { ok: true };
}

function existsExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
