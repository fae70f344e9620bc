/**
 * A real-kernel NAT lab: three network namespaces joined by veth pairs, with an nftables NAT
 * recipe in the middle one.
 *
 * ```
 *   server ns                         router ns                          client ns
 *   bridge inet0                      wan0 203.0.113.254/24  (NAT)       eth0 198.18.0.2/24
 *     203.0.113.1/24  <-- r0 ~ wan0 -->                    lan0 <-- ~ --> default via 198.18.0.1
 *     203.0.113.2/24                  lan0 198.18.0.1/24
 *   route 198.51.100.0/24 via .254    (+198.51.100.1/24)                (+198.51.100.2/24)
 * ```
 *
 * - The "internet" is the 203.0.113.0/24 segment, a bridge in the server namespace (so more
 *   routers could be attached later). The server host owns two addresses, as RFC 3489 and
 *   RFC 5780 servers need.
 * - The router's WAN address 203.0.113.254 is the NAT's public address.
 * - For 'open' and 'symmetric-udp-firewall' the client owns a public address, 198.51.100.2/24,
 *   on the same link as its private one, with its default route via the router's
 *   198.51.100.1; the server routes 198.51.100.0/24 via the router. Nothing is translated.
 * - Interfaces are created directly inside the namespaces (`ip link add ... netns`), never in
 *   the caller's namespace, so their short fixed names cannot collide between labs. The
 *   namespaces hold unique names `natlab-<pid>-<counter><random>-{s,r,c}`, and nothing in them
 *   has a route to any network but the lab's own.
 *
 * Cleanup: `destroy()` (idempotent) kills every process started through the lab and anything
 * else still inside its namespaces, then deletes the namespaces (which deletes the veths and
 * the bridge). A process 'exit' handler does the same synchronously for labs never destroyed,
 * daemons get SIGKILL when the test process dies (setpriv --pdeathsig), and
 * `sweepStaleLabs()` removes the namespaces of lab owners that died anyway.
 */
import { spawn as spawnChild, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isPublicBehaviour, routerRuleset, type Behaviour } from './recipes.js';

/** Prefix of every namespace a lab makes. */
export const LAB_PREFIX = 'natlab-';

/** The lab's fixed addresses (documentation ranges of RFC 5737 and RFC 2544's 198.18/15). */
export const LAB_ADDRESSES = {
  /** Server's primary address (STUN primary). */
  serverPrimary: '203.0.113.1',
  /** Server's secondary address (STUN alternate / OTHER-ADDRESS). */
  serverSecondary: '203.0.113.2',
  /** Router's WAN address: the NAT's public address. */
  routerWan: '203.0.113.254',
  /** Router's LAN address: the client's gateway. */
  routerLan: '198.18.0.1',
  /** Router's gateway address on the client's public subnet (public behaviours only). */
  routerPublicLan: '198.51.100.1',
  /** Client's private address. */
  clientLan: '198.18.0.2',
  /** Client's public address (public behaviours only). */
  clientPublic: '198.51.100.2',
} as const;

/** Conntrack UDP timeouts of the router, in seconds: the NAT's mapping lifetimes. */
export interface UdpTimeouts {
  /** `nf_conntrack_udp_timeout`: a mapping that has seen traffic one way only (kernel default 30). */
  readonly unreplied?: number;
  /** `nf_conntrack_udp_timeout_stream`: a mapping that has seen replies (kernel default 120). */
  readonly stream?: number;
}

/** Options of {@link createLab}. */
export interface LabOptions {
  /** The router's NAT behaviour. */
  readonly behaviour: Behaviour;
  /** A short tag for logs and for the lab's id (letters, digits, '-'; default none). */
  readonly name?: string;
  /** Mapping lifetimes (default: the kernel's 30 s / 120 s). */
  readonly udpTimeouts?: UdpTimeouts;
  /** Timeout of each setup command, in ms (default 10000). */
  readonly setupTimeoutMs?: number;
}

/** A namespace given by role or by its full name (which must belong to the lab). */
export type NsRef = 'server' | 'router' | 'client' | (string & {});

/** Options of {@link Lab.exec}. */
export interface ExecOptions {
  /** Kill the command (SIGKILL) after this many ms (default 10000). */
  readonly timeoutMs?: number;
  /** Written to the command's standard input, which is then closed. */
  readonly input?: string;
  /** Throw a {@link LabCommandError} unless the command exits with code 0 in time (default false). */
  readonly check?: boolean;
}

/** How a command ended. */
export interface ExecResult {
  readonly argv: readonly string[];
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when it was killed by the timeout. */
  readonly timedOut: boolean;
}

/** A command run by {@link Lab.exec} that failed while `check` was set, or a setup step that failed. */
export class LabCommandError extends Error {
  override readonly name = 'LabCommandError';
  constructor(readonly result: ExecResult) {
    super(
      `${result.argv.join(' ')}: ${result.timedOut ? 'timed out' : `exit ${result.code ?? result.signal}`}` +
        (result.stderr.trim() ? `: ${result.stderr.trim().slice(0, 500)}` : ''),
    );
  }
}

/** A long-running process started by {@link Lab.spawn}. */
export interface LabProcess {
  readonly pid: number;
  readonly ns: string;
  readonly argv: readonly string[];
  /** Everything it has written so far, stdout and stderr interleaved (capped at 1 MiB). */
  output(): string;
  /** Resolves when it has exited (and been reaped). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once it has exited. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 1000); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** One host of the lab. */
export interface LabHost {
  /** Namespace name. */
  readonly ns: string;
}

/** A built lab. */
export interface Lab {
  /** Unique id, also the namespaces' common prefix. */
  readonly id: string;
  readonly behaviour: Behaviour;
  /** The server host: both STUN addresses. */
  readonly server: LabHost & { readonly primary: string; readonly secondary: string };
  /** The NAT router. */
  readonly router: LabHost & { readonly wan: string; readonly lan: string };
  readonly client: LabHost & {
    /** The address the client's packets leave with (its public address in 'open' and 'symmetric-udp-firewall'). */
    readonly address: string;
    /** Its private address on the router's LAN. */
    readonly lanAddress: string;
  };
  /** The IP the server sees the client's packets come from (the router's WAN address when translated). */
  readonly publicAddress: string;
  /** Every namespace of the lab. */
  readonly namespaces: readonly string[];
  /** The nftables ruleset loaded into the router. */
  readonly ruleset: string;
  /** A private temporary directory, removed by destroy(). */
  readonly tmpDir: string;
  /** Runs `ip netns exec NS argv...` with a timeout. */
  exec(ns: NsRef, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a daemon in a namespace; it is killed by stop() or destroy(), or when this process dies. */
  spawn(ns: NsRef, argv: readonly string[]): LabProcess;
  /** Forgets every NAT mapping and filter entry (conntrack table and the recipe's sets). */
  flushMappings(): Promise<void>;
  /** True once destroy() has been called. */
  readonly destroyed: boolean;
  /** Kills the lab's processes and deletes its namespaces; safe to call more than once. */
  destroy(): Promise<void>;
}

/** Why namespaces cannot be used here, or that they can. */
export type LabAvailability = { ok: true } | { ok: false; reason: string };

const DEFAULT_TIMEOUT_MS = 10_000;
const OUTPUT_CAP = 1 << 20;

/** Tracks what is alive, for the synchronous exit handler. */
interface Live {
  namespaces: string[];
  processes: Set<ChildProcess>;
  tmpDir: string;
}
const liveLabs = new Map<string, Live>();
let exitHandlerInstalled = false;
let counter = 0;
let pdeathsig: boolean | undefined;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', destroyAllLabsSync);
}

/**
 * Synchronously kills every process and deletes every namespace of the labs of this process
 * that were not destroyed. Runs on process 'exit'; also callable directly.
 */
export function destroyAllLabsSync(): void {
  for (const [id, live] of liveLabs) {
    for (const child of live.processes) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const ns of live.namespaces) removeNamespaceSync(ns);
    rmSync(live.tmpDir, { recursive: true, force: true });
    liveLabs.delete(id);
  }
}

/** Kills whatever runs in `ns` (all of it was started by a lab) and deletes the namespace. */
function removeNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { timeout: 5000, stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

function namespaceExists(ns: string): boolean {
  try {
    return readdirSync('/run/netns').includes(ns);
  } catch {
    return false;
  }
}

/** The namespaces that exist now with the lab prefix (any process's labs). */
export function listLabNamespaces(): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(LAB_PREFIX));
  } catch {
    return [];
  }
}

/**
 * True while process `pid` exists and is not a zombie (a killed daemon whose parent died may
 * linger as a zombie until init reaps it).
 */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (after the parenthesised command name) is the state.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Removes the namespaces (and the processes in them) and temporary directories of labs whose
 * owning process no longer runs: what a test process killed with SIGKILL leaves behind.
 * Returns the namespaces removed.
 */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  for (const ns of listLabNamespaces()) {
    const m = /^natlab-(\d+)-/.exec(ns);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || processRunning(owner)) continue;
    removeNamespaceSync(ns);
    removed.push(ns);
  }
  // Their temporary directories too.
  try {
    for (const dir of readdirSync(tmpdir())) {
      const m = /^natlab-(\d+)-/.exec(dir);
      if (!m) continue;
      const owner = Number(m[1]);
      if (owner !== process.pid && !processRunning(owner)) rmSync(join(tmpdir(), dir), { recursive: true, force: true });
    }
  } catch {
    /* best effort */
  }
  return removed;
}

let availability: LabAvailability | undefined;

/**
 * Whether labs can be built here: Linux, root, `ip netns` and veth work, and `nft` can load a
 * NAT table in a namespace. The answer is computed once (with a throwaway namespace).
 */
export function labAvailable(): LabAvailability {
  availability ??= probeAvailability();
  return availability;
}

function probeAvailability(): LabAvailability {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'network namespaces need root (run the lab tests as root)' };
  }
  for (const [tool, args] of [
    ['ip', ['-V']],
    ['nft', ['--version']],
    ['sysctl', ['--version']],
  ] as const) {
    try {
      execFileSync(tool, [...args], { timeout: 5000, stdio: 'ignore' });
    } catch {
      return { ok: false, reason: `${tool} is missing (run scripts/install-test-deps.sh)` };
    }
  }
  const a = `${LAB_PREFIX}${process.pid}-probe${randomBytes(2).toString('hex')}-a`;
  const b = `${a.slice(0, -1)}b`;
  const step = (args: string[]): void => {
    execFileSync(args[0] as string, args.slice(1), { timeout: 5000, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  try {
    step(['ip', 'netns', 'add', a]);
    step(['ip', 'netns', 'add', b]);
    step(['ip', 'link', 'add', 'name', 'p0', 'netns', a, 'type', 'veth', 'peer', 'name', 'p1', 'netns', b]);
    step(['ip', 'netns', 'exec', a, 'nft', 'add table ip probe; add chain ip probe post { type nat hook postrouting priority srcnat; }']);
    step(['ip', 'netns', 'exec', a, 'sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_udp_timeout=30']);
    return { ok: true };
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return { ok: false, reason: `network namespace probe failed: ${err.stderr?.toString().trim() || err.message}` };
  } finally {
    removeNamespaceSync(a);
    removeNamespaceSync(b);
  }
}

/** Whether `setpriv --pdeathsig` is usable (util-linux >= 2.33). */
function hasPdeathsig(): boolean {
  if (pdeathsig === undefined) {
    try {
      execFileSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { timeout: 5000, stdio: 'ignore' });
      pdeathsig = true;
    } catch {
      pdeathsig = false;
    }
  }
  return pdeathsig;
}

/** Runs a command (no shell) with a timeout, collecting its output. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new Error('run: empty argv'));
      return;
    }
    const child = spawnChild(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < OUTPUT_CAP) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < OUTPUT_CAP) stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdin.on('error', () => {
      /* the command may exit without reading its input */
    });
    child.stdin.end(opts.input ?? '');
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = { argv: [...argv], stdout, stderr, code, signal, timedOut };
      if (opts.check && (code !== 0 || timedOut)) reject(new LabCommandError(result));
      else resolve(result);
    });
  });
}

/**
 * Builds a lab whose router has `behaviour`. Throws (after removing whatever it had built)
 * when a step fails; call {@link labAvailable} first to skip where namespaces are impossible.
 */
export async function createLab(options: LabOptions): Promise<Lab> {
  const { behaviour } = options;
  const setupTimeout = options.setupTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const tag = (options.name ?? '').replace(/[^A-Za-z0-9-]/g, '').slice(0, 16);
  counter += 1;
  const id = `${LAB_PREFIX}${process.pid}-${counter}${randomBytes(2).toString('hex')}${tag ? `-${tag}` : ''}`;
  const ns = { server: `${id}-s`, router: `${id}-r`, client: `${id}-c` };
  const A = LAB_ADDRESSES;
  const pub = isPublicBehaviour(behaviour);
  const unreplied = options.udpTimeouts?.unreplied ?? 30;
  const stream = options.udpTimeouts?.stream ?? 120;
  const ruleset = routerRuleset(behaviour, {
    wanIf: 'wan0',
    lanIf: 'lan0',
    publicAddress: A.routerWan,
    hostAddress: A.clientLan,
    filterTimeoutSeconds: Math.max(unreplied, stream),
  });

  const set = openNamespaceSet(id, { label: 'lab', setupTimeoutMs: setupTimeout });
  const { must, batch } = set;
  const resolveNs = (ref: NsRef): string => (Object.hasOwn(ns, ref) ? ns[ref as keyof typeof ns] : ref);

  const lab: Lab = {
    id,
    behaviour,
    server: { ns: ns.server, primary: A.serverPrimary, secondary: A.serverSecondary },
    router: { ns: ns.router, wan: A.routerWan, lan: A.routerLan },
    client: { ns: ns.client, address: pub ? A.clientPublic : A.clientLan, lanAddress: A.clientLan },
    publicAddress: pub ? A.clientPublic : A.routerWan,
    namespaces: [ns.server, ns.router, ns.client],
    ruleset,
    tmpDir: set.tmpDir,
    get destroyed() {
      return set.destroyed;
    },
    exec: (ref, argv, opts) => set.exec(resolveNs(ref), argv, opts),
    spawn: (ref, argv) => set.spawn(resolveNs(ref), argv),
    async flushMappings() {
      // conntrack -F exits 1 on an empty table with some versions: not an error here.
      await lab.exec('router', ['conntrack', '-F'], { timeoutMs: setupTimeout });
      if (behaviour === 'full-cone') await lab.exec('router', ['nft', 'flush set inet natlab eim_ports'], { timeoutMs: setupTimeout, check: true });
      if (behaviour === 'restricted-cone') await lab.exec('router', ['nft', 'flush set inet natlab adf_allow'], { timeoutMs: setupTimeout, check: true });
    },
    destroy: () => set.destroy(),
  };

  try {
    await set.build(lab.namespaces, [veth('r0', ns.server, 'wan0', ns.router), veth('lan0', ns.router, 'eth0', ns.client)]);
    await Promise.all([
      batch(ns.server, [
        'link set lo up',
        'link add inet0 type bridge',
        'link set r0 master inet0',
        `addr add ${A.serverPrimary}/24 dev inet0`,
        `addr add ${A.serverSecondary}/24 dev inet0`,
        'link set r0 up',
        'link set inet0 up',
        `route add 198.51.100.0/24 via ${A.routerWan}`,
      ]),
      batch(ns.router, [
        'link set lo up',
        `addr add ${A.routerWan}/24 dev wan0`,
        `addr add ${A.routerLan}/24 dev lan0`,
        ...(pub ? [`addr add ${A.routerPublicLan}/24 dev lan0`] : []),
        'link set wan0 up',
        'link set lan0 up',
      ]),
      batch(ns.client, [
        'link set lo up',
        `addr add ${A.clientLan}/24 dev eth0`,
        ...(pub ? [`addr add ${A.clientPublic}/24 dev eth0`] : []),
        'link set eth0 up',
        pub ? `route add default via ${A.routerPublicLan} src ${A.clientPublic}` : `route add default via ${A.routerLan}`,
      ]),
    ]);
    await must(['ip', 'netns', 'exec', ns.router, 'nft', '-f', '-'], ruleset);
    // After the NAT table exists, so that conntrack is surely set up in the namespace.
    await must([
      'ip',
      'netns',
      'exec',
      ns.router,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      `net.netfilter.nf_conntrack_udp_timeout=${unreplied}`,
      `net.netfilter.nf_conntrack_udp_timeout_stream=${stream}`,
    ]);
    return lab;
  } catch (e) {
    await set.destroy();
    throw e;
  }
}

/** `ip -batch` line of a veth pair made directly inside two namespaces: nothing appears in ours. */
export function veth(name: string, ns: string, peerName: string, peerNs: string): string {
  return `link add name ${name} netns ${ns} type veth peer name ${peerName} netns ${peerNs}`;
}

/** Options of {@link openNamespaceSet}. */
export interface NamespaceSetOptions {
  /** What error messages call the owner ('lab', 'pair lab'). */
  readonly label: string;
  /** Timeout of each setup command, in ms (default 10000). */
  readonly setupTimeoutMs?: number;
}

/**
 * The namespaces of one lab, registered for the 'exit' handler ({@link destroyAllLabsSync})
 * from the start, with a private temporary directory, the processes started in them, and
 * an idempotent destroy().
 */
export interface NamespaceSet {
  readonly id: string;
  readonly tmpDir: string;
  /** The namespaces created so far. */
  readonly namespaces: readonly string[];
  /** True once destroy() has been called. */
  readonly destroyed: boolean;
  /** Runs a setup command; rejects with a {@link LabCommandError} unless it succeeds. */
  must(argv: readonly string[], input?: string): Promise<ExecResult>;
  /** Runs `ip [-n NS] -batch -` with `lines` as a setup command. */
  batch(ns: string | undefined, lines: readonly string[]): Promise<ExecResult>;
  /**
   * Sweeps stale labs, creates the namespaces (each recorded as soon as it exists, so that
   * cleanup finds it), the veth pairs (lines of {@link veth}), and disables IPv6 in each.
   */
  build(namespaces: readonly string[], veths: readonly string[]): Promise<void>;
  /** Runs `ip netns exec NS argv...` in one of the set's namespaces. */
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a daemon in one of the set's namespaces. */
  spawn(ns: string, argv: readonly string[]): LabProcess;
  /** Kills the processes and deletes the namespaces and the temporary directory. */
  destroy(): Promise<void>;
}

/** Registers an (empty) namespace set `id`; build it with {@link NamespaceSet.build}. */
export function openNamespaceSet(id: string, options: NamespaceSetOptions): NamespaceSet {
  const setupTimeout = options.setupTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const label = `${options.label} ${id}`;
  installExitHandler();
  const live: Live = { namespaces: [], processes: new Set(), tmpDir: mkdtempSync(join(tmpdir(), `${id}-`)) };
  liveLabs.set(id, live);

  const must = (argv: readonly string[], input?: string): Promise<ExecResult> =>
    run(argv, { timeoutMs: setupTimeout, check: true, ...(input === undefined ? {} : { input }) });
  const batch = (netns: string | undefined, lines: readonly string[]): Promise<ExecResult> =>
    must(netns === undefined ? ['ip', '-batch', '-'] : ['ip', '-n', netns, '-batch', '-'], `${lines.join('\n')}\n`);

  let destroyPromise: Promise<void> | undefined;
  const member = (name: string): string => {
    if (!live.namespaces.includes(name)) throw new Error(`${name} is not a namespace of ${label}`);
    return name;
  };
  const wrap = (argv: readonly string[]): string[] => (hasPdeathsig() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...argv] : [...argv]);

  return {
    id,
    tmpDir: live.tmpDir,
    namespaces: live.namespaces,
    get destroyed() {
      return destroyPromise !== undefined;
    },
    must,
    batch,
    async build(namespaces, veths) {
      sweepStaleLabs();
      for (const name of namespaces) {
        await must(['ip', 'netns', 'add', name]);
        live.namespaces.push(name);
      }
      await batch(undefined, veths);
      const quiet = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
      await Promise.all(namespaces.map((n) => must(['ip', 'netns', 'exec', n, 'sysctl', '-q', '-e', '-w', ...quiet])));
    },
    exec(ns, argv, opts = {}) {
      if (destroyPromise) return Promise.reject(new Error(`${label} is destroyed`));
      let name: string;
      try {
        name = member(ns);
      } catch (e) {
        return Promise.reject(e);
      }
      return run(['ip', 'netns', 'exec', name, ...wrap(argv)], opts);
    },
    spawn(ns, argv) {
      if (destroyPromise) throw new Error(`${label} is destroyed`);
      return spawnIn(live, member(ns), wrap(argv), argv);
    },
    destroy() {
      destroyPromise ??= destroyLab(id, live);
      return destroyPromise;
    },
  };
}

/** Starts `ip netns exec NS wrapped...` and tracks it in `live` until it exits. */
function spawnIn(live: Live, name: string, wrapped: readonly string[], argv: readonly string[]): LabProcess {
  const child = spawnChild('ip', ['netns', 'exec', name, ...wrapped], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.processes.add(child);
  let out = '';
  const collect = (d: string): void => {
    if (out.length < OUTPUT_CAP) out += d;
  };
  child.stdout?.setEncoding('utf8').on('data', collect);
  child.stderr?.setEncoding('utf8').on('data', collect);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => {
      collect(`spawn error: ${e.message}\n`);
      done = true;
      live.processes.delete(child);
      resolve({ code: null, signal: null });
    });
    // 'exit' (reaped), not 'close': a stray grandchild may hold the pipes open.
    child.on('exit', (code, signal) => {
      done = true;
      live.processes.delete(child);
      resolve({ code, signal });
    });
  });
  const stop = async (graceMs = 1000): Promise<void> => {
    if (done) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return {
    pid: child.pid ?? -1,
    ns: name,
    argv: [...argv],
    output: () => out,
    exited,
    hasExited: () => done,
    stop,
  };
}

async function destroyLab(id: string, live: Live): Promise<void> {
  const waits = [...live.processes].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
        const giveUp = setTimeout(resolve, 5000); // the namespace sweep below kills it anyway
        child.once('exit', () => {
          clearTimeout(timer);
          clearTimeout(giveUp);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  );
  await Promise.all(waits);
  for (const name of live.namespaces) {
    // Anything still inside (a command's stray child) was started by this lab.
    const pids = await run(['ip', 'netns', 'pids', name], { timeoutMs: 5000 }).catch(() => undefined);
    for (const pid of (pids?.stdout ?? '').split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await run(['ip', 'netns', 'del', name], { timeoutMs: 5000 }).catch(() => undefined);
    if (namespaceExists(name)) removeNamespaceSync(name);
  }
  rmSync(live.tmpDir, { recursive: true, force: true });
  liveLabs.delete(id);
}
