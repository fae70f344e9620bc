/**
 * The ICE services of a pair lab (tests/lab/pair.ts), started the same way for the kernel-NAT
 * matrix (ice-matrix.test.ts) and the connect-time benchmark (bench/connect/run.ts):
 * `nat-server` (STUN, TURN over UDP and TCP, rendezvous) in the server namespace and `nat listen
 * --json` behind NAT B, whose peer id is read from its first line.
 *
 * The server has one address by default, as almost every volunteer or rented server has
 * (`--listen` only: STUN on 3478 and on its alternate port 3479 of the same IP, no RFC 5780
 * OTHER-ADDRESS); `{ addresses: 2 }` adds `--alternate` for what needs RFC 5780 discovery.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabProcess } from './netns.js';
import type { PairLab } from './pair.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
/** The built `nat-server` and `nat` entry points of a checkout (build first). */
export const natServerOf = (root: string): string => join(root, 'apps/server/dist/main.js');
export const natCliOf = (root: string): string => join(root, 'apps/cli/dist/main.js');
/**
 * The `nat-server` and `nat` the lab runs: this checkout's, or those of the built checkout named by
 * NAT_LAB_BUILD (a developer's shortcut: a lab suite against another build, such as main's).
 */
export const LAB_BUILD = process.env.NAT_LAB_BUILD ?? repo;
export const NAT_SERVER = natServerOf(LAB_BUILD);
export const NAT_CLI = natCliOf(LAB_BUILD);
/** The rendezvous URL on the lab's server. */
export const RENDEZVOUS = 'ws://203.0.113.1:8080/';
/** What the rendezvous hands out: STUN, TURN over UDP, and TURN over TCP for networks that block UDP. */
export const ICE_URLS: readonly string[] = ['stun:203.0.113.1:3478', 'turn:203.0.113.1:3478', 'turn:203.0.113.1:3478?transport=tcp'];

/** Polls `pred` every 25 ms; throws after `timeoutMs` (with what `log` returns, if given). */
export async function waitFor(pred: () => boolean, timeoutMs: number, what: string, log?: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${log === undefined ? '' : `\n${log()}`}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The JSON lines (`--json` status lines) a process has printed so far. */
export function jsonLines(p: LabProcess): Record<string, unknown>[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The lab server's STUN shape: one address (the default) or two; `altPort: false` serves no second port either. */
export interface NatServerShape {
  /** 1 (default): `--listen` only; 2: also `--alternate` (RFC 5780 OTHER-ADDRESS). */
  readonly addresses?: 1 | 2;
  /** False: `--no-alt-port` (STUN on one port of one address). Default true. */
  readonly altPort?: boolean;
  /** The checkout whose built `nat-server` runs. Default this one. */
  readonly root?: string;
}

/** Options of {@link startIceServices}. */
export interface IceServicesOptions {
  /** The server's shape. Default one address, with its alternate port. */
  readonly server?: NatServerShape;
  /** The checkout whose built `nat-server` and `nat` run (another build to compare with). Default this one. */
  readonly root?: string;
  /** More arguments of `nat listen` (e.g. `--no-punch`). */
  readonly listenArgs?: readonly string[];
  /** How long each of the two gets to come up, ms. Default 20000. */
  readonly timeoutMs?: number;
}

/** The running services. */
export interface IceServices {
  readonly server: LabProcess;
  readonly listener: LabProcess;
  /** The listener's peer id, to ping. */
  readonly id: string;
}

/**
 * Starts `nat-server` in the lab's server namespace and `nat listen` behind NAT B (identity in
 * the lab's temporary directory), and waits for the listener's id. Throws with the process's
 * output when either exits or does not come up in time; the lab's `destroy()` kills both.
 */
export async function startIceServices(lab: PairLab, options: IceServicesOptions = {}): Promise<IceServices> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const server = await startNatServer(lab, timeoutMs, { ...options.server, ...(options.root === undefined ? {} : { root: options.root }) });
  const listener = lab.spawn('clientB', [
    process.execPath,
    options.root === undefined ? NAT_CLI : natCliOf(options.root),
    'listen',
    '--rendezvous',
    RENDEZVOUS,
    '--json',
    '--identity',
    join(lab.tmpDir, 'b.key'),
    ...(options.listenArgs ?? []),
  ]);
  await waitFor(() => /^\{"id":/m.test(listener.output()) || listener.hasExited(), timeoutMs, 'nat listen id');
  const idLine = listener
    .output()
    .split('\n')
    .find((l) => l.startsWith('{"id":'));
  if (idLine === undefined) throw new Error(`nat listen printed no id:\n${listener.output()}`);
  const { id } = JSON.parse(idLine) as { id: string };
  return { server, listener, id };
}

/**
 * Starts `nat-server` (STUN on the server's primary address, also on its secondary one with
 * `shape.addresses` 2; TURN over UDP and TCP, rendezvous on port 8080 handing out
 * {@link ICE_URLS}) in the lab's server namespace and waits until it listens; throws with its
 * output when it exits or does not come up in `timeoutMs`.
 */
export async function startNatServer(lab: PairLab, timeoutMs = 20_000, shape: NatServerShape = {}): Promise<LabProcess> {
  const server = lab.spawn('server', [
    process.execPath,
    shape.root === undefined ? NAT_SERVER : natServerOf(shape.root),
    '--listen',
    lab.server.primary,
    ...(shape.addresses === 2 ? ['--alternate', lab.server.secondary] : []),
    ...(shape.altPort === false ? ['--no-alt-port'] : []),
    '--realm',
    'lab',
    '--auth-secret',
    'lab-secret',
    '--rendezvous-port',
    '8080',
    ...ICE_URLS.flatMap((u) => ['--rendezvous-ice-url', u]),
    '--allow-peer',
    '198.18.0.0/15',
    '--allow-peer',
    '203.0.113.0/24',
    '--allow-peer',
    '198.51.100.0/24',
    '--log-level',
    'warn',
  ]);
  await waitFor(() => /rendezvous ws:/.test(server.output()) || server.hasExited(), timeoutMs, 'nat-server');
  if (server.hasExited()) throw new Error(`nat-server exited:\n${server.output()}`);
  return server;
}
