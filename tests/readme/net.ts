/**
 * Where the README commands run: in a private network namespace with only loopback when this
 * process may make one (root, `ip`), so that the peer commands, which gather host candidates on
 * every interface, can reach nothing but loopback; otherwise in this namespace. The test's own
 * services and checks run where the commands do ({@link Net}).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LAB_PREFIX, labAvailable, openNamespaceSet, type NamespaceSet } from '../lab/netns.js';
import { echoServices, tcpOpen, tcpRoundTrip, udpRoundTrip } from './processes.js';

export interface Net {
  /** Prefix of every command's argv (`ip netns exec NS`), or empty. */
  readonly prefix: readonly string[];
  /** Why the commands run in this namespace, or undefined when in a private one. */
  readonly note: string | undefined;
  tcpEcho(host: string, port: number): Promise<void>;
  udpEcho(host: string, port: number): Promise<void>;
  tcpOpen(host: string, port: number): Promise<boolean>;
  tcpRoundTrip(host: string, port: number, data: Buffer): Promise<Buffer | undefined>;
  udpRoundTrip(from: string, host: string, port: number, data: Buffer): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** The test's networking in this namespace. */
function hostNet(note: string): Net {
  const services = echoServices();
  return {
    prefix: [],
    note,
    tcpEcho: (h, p) => services.tcp(h, p),
    udpEcho: (h, p) => services.udp(h, p),
    tcpOpen,
    tcpRoundTrip,
    udpRoundTrip,
    close: () => services.closeAll(),
  };
}

/** A namespace with loopback up, and the helper that does the test's networking inside it. */
async function namespaceNet(): Promise<Net> {
  const id = `${LAB_PREFIX}${process.pid}-readme${randomBytes(3).toString('hex')}`;
  const set: NamespaceSet = openNamespaceSet(id, { label: 'README test namespace' });
  const ns = `${id}-n`;
  let helper: ChildProcess | undefined;
  try {
    await set.build([ns], []);
    await set.must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const here = dirname(fileURLToPath(import.meta.url));
    helper = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', 'net-helper.ts'], { cwd: here, stdio: ['pipe', 'pipe', 'inherit'] });
  } catch (e) {
    await set.destroy();
    throw e;
  }
  const h = helper;
  const pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  let next = 0;
  let ready: () => void = () => undefined;
  const started = new Promise<void>((r) => (ready = r));
  createInterface({ input: h.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { id?: number; ready?: boolean; value?: unknown; error?: string };
    if (m.ready) return ready();
    const p = pending.get(m.id!);
    pending.delete(m.id!);
    if (m.error !== undefined) p?.rej(new Error(m.error));
    else p?.res(m.value);
  });
  h.once('exit', (code) => {
    for (const p of pending.values()) p.rej(new Error(`the namespace helper exited (${code})`));
    pending.clear();
    ready();
  });
  const call = <T>(op: string, ...args: unknown[]): Promise<T> =>
    new Promise<T>((res, rej) => {
      if (h.exitCode !== null) return rej(new Error('the namespace helper is gone'));
      const id = next++;
      pending.set(id, { res: res as (v: unknown) => void, rej });
      h.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  await started;
  const buf = (v: string | null): Buffer | undefined => (v === null ? undefined : Buffer.from(v, 'base64'));
  return {
    prefix: ['ip', 'netns', 'exec', ns],
    note: undefined,
    tcpEcho: (host, port) => call('tcpEcho', host, port),
    udpEcho: (host, port) => call('udpEcho', host, port),
    tcpOpen: (host, port) => call('tcpOpen', host, port),
    tcpRoundTrip: async (host, port, data) => buf(await call<string | null>('tcpRoundTrip', host, port, data.toString('base64'))),
    udpRoundTrip: async (from, host, port, data) => buf(await call<string | null>('udpRoundTrip', host, port, data.toString('base64'), from)),
    async close() {
      h.stdin!.end();
      const timer = setTimeout(() => h.kill('SIGKILL'), 3000);
      if (h.exitCode === null) await new Promise((r) => h.once('exit', r));
      clearTimeout(timer);
      await set.destroy();
    },
  };
}

/** A private namespace when one can be made here, else this one (the note says why). */
export async function openNet(): Promise<Net> {
  const avail = labAvailable();
  if (!avail.ok) return hostNet(`the README commands run in this network namespace: ${avail.reason}`);
  return namespaceNet();
}
