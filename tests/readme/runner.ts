/**
 * Runs one README command line the way a reader would on one machine: `pnpm nat ...` and `nat
 * ...` become the package.json script's command (`node apps/cli/dist/main.js`; the build step of
 * a script is left out: the test runs on a built tree), documentation addresses become loopback
 * aliases of this run, placeholders (PEER_ID, USERNAME, ...) take what earlier lines printed,
 * long-running commands start in the background and are waited for, and every command's output
 * is checked against what the README says it prints.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { expect } from 'vitest';
import { shellWords } from './markdown.js';
import type { Net } from './net.js';
import { type Proc, runProc, sleep, spawnProc, stopProc, waitFor } from './processes.js';

/** Placeholders the READMEs use and the lines that give them a value. */
export const PLACEHOLDERS = ['PEER_ID_OF_A', 'PEER_ID', 'USERNAME', 'PASSWORD'] as const;

export interface Context {
  root: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  scripts: Record<string, string>;
  /** Documentation address -> this run's loopback alias. */
  addresses: Map<string, string>;
  values: Map<string, string>;
  /** Where the commands run, and the test's own services and checks there. */
  net: Net;
  /** Running nat-servers by their --listen address. */
  servers: Map<string, Proc>;
  /** Other background commands, stopped at the end of their block. */
  background: Proc[];
  /** The keys the root README documents for `nat detect --json`. */
  detectKeys: string[];
}

export type Tool = 'nat' | 'nat-server' | 'demo' | 'sh' | 'curl';

/** Commands run through `sh -c` as they are (they only write files in the test's folder). */
const SH_COMMANDS = new Set(['printf']);

/** What a command line runs: the argv and which tool, or undefined when the runner does not know it. */
export function resolveCommand(ctx: Pick<Context, 'root' | 'scripts'>, line: string): { tool: Tool; argv: string[] } | undefined {
  let words = shellWords(line);
  if (words[0] === 'npx' && words[1] === '-y' && /^pnpm@/.test(words[2] ?? '')) words = ['pnpm', ...words.slice(3)];
  if (words[0] === 'nat' || words[0] === 'nat-server') words = ['pnpm', ...words];
  if (SH_COMMANDS.has(words[0] ?? '')) return { tool: 'sh', argv: ['sh', '-c', line] };
  // curl asks a server the README started (its admin listener): as written, in the test's namespace.
  if (words[0] === 'curl') return { tool: 'curl', argv: words };
  if (words[0] !== 'pnpm' || words[1] === undefined) return undefined;
  const script = ctx.scripts[words[1]];
  if (script === undefined) return undefined;
  const command = shellWords(script.replace(/^turbo run build && /, ''));
  if (command[0] !== 'node' || command.length !== 2 || command[1]!.includes('&&')) return undefined;
  const file = command[1]!;
  const tool: Tool | undefined =
    file === 'apps/cli/dist/main.js' ? 'nat' : file === 'apps/server/dist/main.js' ? 'nat-server' : file === 'apps/cli/dist/demo.js' ? 'demo' : undefined;
  if (tool === undefined) return undefined;
  return { tool, argv: [process.execPath, isAbsolute(file) ? file : join(ctx.root, file), ...words.slice(2)] };
}

/** Documentation and loopback addresses in a word, replaced by this run's aliases. */
export function mapAddresses(ctx: Pick<Context, 'addresses'>, word: string): string {
  let out = word;
  for (const [doc, alias] of ctx.addresses) out = out.replace(new RegExp(`(?<![\\d.])${doc.replace(/\./g, '\\.')}(?![\\d])`, 'g'), alias);
  return out;
}

function fill(ctx: Context, word: string): string {
  return word.replace(/\b[A-Z][A-Z_]*[A-Z]\b/g, (name) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return name;
    const v = ctx.values.get(name);
    if (v === undefined) throw new Error(`${name} has no value: the README line that prints it failed or did not run`);
    return v;
  });
}

const flag = (args: readonly string[], ...names: string[]): string | undefined => {
  for (let i = 0; i < args.length - 1; i++) if (names.includes(args[i]!)) return args[i + 1];
  return undefined;
};
const has = (args: readonly string[], name: string): boolean => args.includes(name);
const hostPort = (s: string, defaultPort: number): { host: string; port: number } => {
  const m = /^(?:\w+:\/\/)?([\d.]+)(?::(\d+))?/.exec(s);
  if (!m) throw new Error(`not an address: ${s}`);
  return { host: m[1]!, port: m[2] === undefined ? defaultPort : Number(m[2]) };
};
const ADDRESS_LINE = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/m;
const PEER_ID_LINE = /^([a-z2-7]{20,64})$/m;

function output(r: { code: number | null; stdout: string; stderr: string }): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** Runs one README command line (one part of an `&&` list) and checks what it prints. */
export async function runLine(ctx: Context, line: string): Promise<void> {
  const resolved = resolveCommand(ctx, line);
  if (resolved === undefined)
    throw new Error(
      `\`${line}\` is neither run by this test nor excluded: teach tests/readme/runner.ts to run it, or add it to EXCLUDED in recipes.test.ts with the reason`,
    );
  const mapped =
    resolved.tool === 'sh' || resolved.tool === 'curl' ? resolved.argv : resolved.argv.map((w, i) => (i < 2 ? w : mapAddresses(ctx, fill(ctx, w))));
  const args = mapped.slice(2);
  const argv = [...ctx.net.prefix, ...mapped];
  const o = { cwd: ctx.cwd, env: ctx.env };
  switch (resolved.tool) {
    case 'sh': {
      const r = await runProc(line, argv, o, 10_000);
      expect(r.code, output(r)).toBe(0);
      return;
    }
    case 'curl': {
      const r = await runProc(line, argv, o, 10_000);
      expect(r.code, output(r)).toBe(0);
      if (/\/metrics\b/.test(line)) expect(r.stdout, 'the metrics as Prometheus reads them').toMatch(/^nat_turn_allocations_active \d+$/m);
      if (/\/status\.json\b/.test(line)) expect(JSON.parse(r.stdout), 'the status page as data').toHaveProperty('counts');
      return;
    }
    case 'demo':
      return runDemo(ctx, line, argv);
    case 'nat-server':
      if (has(args, '--check-config')) {
        const r = await runProc(line, argv, o, 20_000);
        expect(r.code, output(r)).toBe(0);
        expect(r.stdout, output(r)).toContain(`${flag(args, '--check-config')}: valid`);
        return;
      }
      return startServer(ctx, line, argv, args);
    case 'nat':
      return runNat(ctx, line, argv, args);
  }
}

async function runDemo(ctx: Context, line: string, argv: string[]): Promise<void> {
  const p = spawnProc(line, argv, { cwd: ctx.cwd, env: ctx.env });
  ctx.background.push(p);
  await waitFor('the demo prints its NAT report and keeps serving', p, () => (p.stdout().includes('The server keeps running') ? true : undefined), 30_000);
  expect(p.stdout()).toMatch(/NAT type\s+[A-G]\s/);
  expect(await stopProc(p), 'the demo stops on Ctrl-C (SIGTERM) with exit 0').toBe(0);
}

async function startServer(ctx: Context, line: string, argv: string[], args: string[]): Promise<void> {
  const config = flag(args, '--config', '-c');
  const text = config === undefined ? '' : readFileSync(join(ctx.cwd, config), 'utf8');
  const listen = flag(args, '--listen', '-l') ?? /^listen:\s*\[?\s*([\d.]+)/m.exec(text)?.[1];
  if (listen === undefined) throw new Error(`no --listen address in \`${line}\``);
  const port = Number(flag(args, '--port', '-p') ?? /^port:\s*(\d+)/m.exec(text)?.[1] ?? 3478);
  const rv = flag(args, '--rendezvous-port') ?? /^rendezvousPort:\s*(\d+)/m.exec(text)?.[1];
  const previous = ctx.servers.get(listen);
  if (previous !== undefined) {
    // What a reader does before starting another server on the same address: Ctrl-C the first
    // (one that already exited failed its own test).
    ctx.servers.delete(listen);
    const wasRunning = previous.running();
    const code = await stopProc(previous);
    if (wasRunning) expect(code, `\`${previous.line}\` stops on SIGTERM with exit 0:\n${previous.stderr()}`).toBe(0);
  }
  const p = spawnProc(line, argv, { cwd: ctx.cwd, env: ctx.env });
  ctx.servers.set(listen, p);
  await waitFor(`nat-server accepts TCP on ${listen}:${port}`, p, async () => ((await ctx.net.tcpOpen(listen, port)) ? true : undefined));
  if (rv !== undefined)
    await waitFor(`the rendezvous service accepts TCP on ${listen}:${rv}`, p, async () => ((await ctx.net.tcpOpen(listen, Number(rv))) ? true : undefined));
  // nat-server installs its SIGINT/SIGTERM handlers once it has printed what it serves (the
  // sockets are open before): wait for those lines, so that stopping it later tests the handler.
  const printed = [
    'listening ',
    ...(rv === undefined ? [] : ['rendezvous ws://']),
    ...(has(args, '--expose-ports') || /^exposePorts:/m.test(text) ? ['expose '] : []),
    ...(has(args, '--admin-port') ? ['admin http://'] : []),
  ];
  await waitFor(`nat-server prints ${printed.join(', ')}`, p, () => (printed.every((w) => p.stderr().includes(w)) ? true : undefined));
  await sleep(300);
}

interface NatCall {
  ctx: Context;
  line: string;
  argv: string[];
  /** The arguments after the script (args[0] is the subcommand). */
  args: string[];
  /** Runs the command to its end; it must exit 0 within the time. */
  run(timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** What each `nat` subcommand the READMEs use is run as, and what its output must show. */
export const NAT_COMMANDS: Record<string, (c: NatCall) => Promise<void>> = {
  async detect({ ctx, args, run }) {
    const r = await run();
    if (has(args, '--json')) {
      const report = JSON.parse(r.stdout) as Record<string, unknown>;
      for (const k of ctx.detectKeys) expect(report, `nat detect --json has the documented key ${k}`).toHaveProperty(k);
      expect(report.publicAddress).toMatch(ADDRESS_LINE);
    } else {
      expect(r.stdout).toMatch(/NAT type\s+[A-G]\s/);
      expect(r.stdout).toMatch(/Public address\s+\d+\.\d+\.\d+\.\d+:\d+/);
    }
  },
  async stun({ run }) {
    expect((await run()).stdout, 'nat stun prints the mapped address').toMatch(ADDRESS_LINE);
  },
  turn: (c) => (c.args[1] === 'credentials' ? turnCredentials(c) : turn(c)),
  async id({ ctx, args, run }) {
    const r = await run();
    const id = PEER_ID_LINE.exec(r.stdout)?.[1];
    expect(id, output(r)).toBeDefined();
    if (flag(args, '--identity', '-i') === 'a.pem') ctx.values.set('PEER_ID_OF_A', id!);
  },
  async listen({ ctx, line, argv }) {
    const p = background(ctx, line, argv);
    ctx.values.set('PEER_ID', await waitFor('nat listen prints its peer id', p, () => PEER_ID_LINE.exec(p.stdout())?.[1]));
  },
  async ping({ args, run }) {
    const r = await run(40_000);
    if (has(args, '--json')) {
      const j = JSON.parse(r.stdout) as { path?: string; rttMs?: unknown[] };
      expect(['direct', 'relay'], r.stdout).toContain(j.path);
      expect(j.rttMs?.length, r.stdout).toBeGreaterThan(0);
    } else expect(r.stdout).toMatch(/pings answered/);
  },
  expose: ({ ctx, line, argv, args }) => expose(ctx, line, argv, args),
  connect: ({ ctx, line, argv, args }) => connectTunnel(ctx, line, argv, args),
};

async function runNat(ctx: Context, line: string, argv: string[], args: string[]): Promise<void> {
  const handler = NAT_COMMANDS[args[0] ?? ''];
  if (handler === undefined)
    throw new Error(`\`${line}\`: the runner does not know \`nat ${args[0]}\`; teach tests/readme/runner.ts or add the line to EXCLUDED`);
  const run = async (timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const r = await runProc(line, argv, { cwd: ctx.cwd, env: ctx.env }, timeoutMs);
    expect(r.timedOut, `still running after ${timeoutMs / 1000} s:\n${output(r)}`).toBe(false);
    expect(r.code, output(r)).toBe(0);
    return r;
  };
  await handler({ ctx, line, argv, args, run });
}

async function turnCredentials({ ctx, args, run }: NatCall): Promise<void> {
  const r = await run();
  const user = flag(args, '--user')!;
  const username = new RegExp(`^username: (\\d+:${user})$`, 'm').exec(r.stdout)?.[1];
  const password = /^password: (\S+)$/m.exec(r.stdout)?.[1];
  expect(username, r.stdout).toBeDefined();
  expect(password, r.stdout).toBeDefined();
  ctx.values.set('USERNAME', username!);
  ctx.values.set('PASSWORD', password!);
}

async function turn({ ctx, line, argv, args, run }: NatCall): Promise<void> {
  const server = hostPort(flag(args, '--server', '-s')!, 3478);
  const peer = flag(args, '--peer', '-p');
  if (peer !== undefined) {
    const pa = hostPort(peer, 0);
    await ctx.net.udpEcho(pa.host, pa.port); // the echoing peer the README asks for
    const r = await run();
    if (has(args, '--echo')) {
      const m = /^(\d+)\/(\d+) echoed through/m.exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect(m![1], r.stdout).toBe(m![2]);
    }
  } else if (has(args, '--hold')) {
    const p = background(ctx, line, argv);
    const relayed = await waitFor('nat turn --hold prints the relayed address', p, () => ADDRESS_LINE.exec(p.stdout())?.[1]);
    expect(relayed).toBe(server.host);
  } else {
    const r = await run();
    expect(ADDRESS_LINE.exec(r.stdout)?.[1], `nat turn prints the relayed address (on the server's ${server.host}):\n${output(r)}`).toBe(server.host);
  }
}

function background(ctx: Context, line: string, argv: string[]): Proc {
  const p = spawnProc(line, argv, { cwd: ctx.cwd, env: ctx.env });
  ctx.background.push(p);
  return p;
}

async function expose(ctx: Context, line: string, argv: string[], args: string[]): Promise<void> {
  const target = hostPort(args[1]!, 0);
  const udp = has(args, '--udp');
  if (udp) await ctx.net.udpEcho(target.host, target.port);
  else await ctx.net.tcpEcho(target.host, target.port); // the service behind the NAT (a ZeroNet fileserver)
  const p = background(ctx, line, argv);
  if (!has(args, '--public')) {
    // its id is what `nat connect NAME@PEER_ID` pins the name to
    ctx.values.set('PEER_ID', await waitFor('nat expose prints its peer id', p, () => PEER_ID_LINE.exec(p.stdout())?.[1]));
    return;
  }
  const address = await waitFor('nat expose --public prints the public address', p, () => {
    if (!has(args, '--json')) return ADDRESS_LINE.exec(p.stdout())?.[0];
    const ev = p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event?: string; address?: string })
      .find((e) => e.event === 'exposed');
    return ev?.address;
  });
  const pub = hostPort(address, 0);
  const wanted = flag(args, '--public-port');
  if (wanted !== undefined) expect(pub.port, `--public-port ${wanted}`).toBe(Number(wanted));
  const data = Buffer.from(`through ${address}`);
  const back = await waitFor(
    `a plain client reaches the service through ${address}`,
    p,
    () => (udp ? ctx.net.udpRoundTrip('127.0.0.1', pub.host, pub.port, data) : ctx.net.tcpRoundTrip(pub.host, pub.port, data)),
    15_000,
  );
  expect(back.toString()).toBe(data.toString());
}

async function connectTunnel(ctx: Context, line: string, argv: string[], args: string[]): Promise<void> {
  const local = hostPort(flag(args, '--listen', '-l')!, 0);
  const p = background(ctx, line, argv);
  const data = Buffer.from('through the peer tunnel');
  const back = await waitFor(
    `bytes through ${local.host}:${local.port} come back from the exposed echo service`,
    p,
    async () => {
      if (!(await ctx.net.tcpOpen(local.host, local.port))) return undefined;
      return ctx.net.tcpRoundTrip(local.host, local.port, data);
    },
    30_000,
  );
  expect(back.toString()).toBe(data.toString());
  if (has(args, '--json')) expect(JSON.parse(p.stdout().split('\n')[0]!)).toMatchObject({ event: 'listening' });
}

/** Stops the block's background commands (not the servers: later blocks use them). */
export async function endBlock(ctx: Context): Promise<void> {
  const procs = ctx.background.splice(0);
  await Promise.all(procs.map((p) => stopProc(p)));
}

/** Stops every command; nat-server must exit 0 on SIGTERM ("0 stopped cleanly"). */
export async function endFile(ctx: Context): Promise<Array<{ line: string; code: number | null; stderr: string }>> {
  await endBlock(ctx);
  const servers = [...ctx.servers.values()].filter((p) => p.running()); // one that exited failed its own test
  ctx.servers.clear();
  return Promise.all(servers.map(async (p) => ({ line: p.line, code: await stopProc(p), stderr: p.stderr() })));
}
