/**
 * ICE between two peers behind two real kernel NATs (tests/lab/pair.ts): `nat-server` (STUN,
 * TURN and rendezvous) on the internet side, `nat listen` behind NAT B, `nat ping` behind NAT A.
 * For every pair of behaviours the ping must connect, take the expected path
 * ({@link expectedIcePath}: relay when both sides are symmetric, direct otherwise, through
 * birthday punching where ordinary checks cannot get through) and get RTT samples. The matrix
 * (path and connectMs) is printed. One pair runs again with 20% UDP loss on both routers.
 *
 * Sides with 'udp-blocked' are not in the matrix: their recipe lets TCP through, but `nat ping`
 * and `nat listen` only use TURN over UDP today, so they cannot connect at all (n/a: needs TURN
 * over TCP).
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BEHAVIOURS, labAvailable, listLabNamespaces, type Behaviour } from './index.js';
import { createPairLab, injectForwardLoss, type PairLab } from './pair.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = `${repo}apps/server/dist/main.js`;
const NAT_CLI = `${repo}apps/cli/dist/main.js`;
const RENDEZVOUS = 'ws://203.0.113.1:8080/';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] ICE matrix skipped: ${availability.reason}`);

/** The behaviours of the matrix (rows: NAT A, the pinging side; columns: NAT B, the listener). */
const MATRIX: readonly Behaviour[] = BEHAVIOURS.filter((b) => b !== 'udp-blocked');
/** How many pair labs run at once. */
const CONCURRENCY = 4;

/**
 * The path `nat ping`/`nat listen` must take between two behaviours: relay when both mappings
 * depend on the destination (symmetric on both sides: punching is hopeless, so no time is spent
 * on it), direct otherwise; one symmetric side against an endpoint-independent side that filters
 * on ports (port-restricted cone, symmetric UDP firewall) is direct through birthday punching.
 */
export function expectedIcePath(a: Behaviour, b: Behaviour): 'direct' | 'relay' | 'n/a' {
  if (a === 'udp-blocked' || b === 'udp-blocked') return 'n/a';
  if (a === 'symmetric' && b === 'symmetric') return 'relay';
  return 'direct';
}

/** Pairs that need birthday punching for their direct path (ordinary ICE checks give relay). */
export function needsPunching(a: Behaviour, b: Behaviour): boolean {
  const portFiltering = (t: Behaviour): boolean => t === 'port-restricted-cone' || t === 'symmetric-udp-firewall';
  return (a === 'symmetric' && portFiltering(b)) || (b === 'symmetric' && portFiltering(a));
}

interface PingJson {
  path: 'direct' | 'relay';
  localCandidate: { type: string; address: string };
  remoteCandidate: { type: string; address: string };
  connectMs: number;
  directMs: number | null;
  rttMs: number[];
  punched?: boolean;
}

interface PairOutcome {
  a: Behaviour;
  b: Behaviour;
  code: number | null;
  ping?: PingJson;
  /** Wall time of the whole pair (lab, server, listen, ping, teardown). */
  wallMs: number;
  log: string;
  namespaces: readonly string[];
}

async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function runPair(a: Behaviour, b: Behaviour, lossPercent = 0): Promise<PairOutcome> {
  const started = Date.now();
  const lab: PairLab = await createPairLab({ a, b });
  let log = '';
  try {
    if (lossPercent > 0) {
      await injectForwardLoss(lab, 'routerA', lossPercent);
      await injectForwardLoss(lab, 'routerB', lossPercent);
    }
    const server = lab.spawn('server', [
      process.execPath, NAT_SERVER,
      '--listen', lab.server.primary, '--alternate', lab.server.secondary,
      '--realm', 'lab', '--auth-secret', 'lab-secret', '--rendezvous-port', '8080',
      '--allow-peer', '198.18.0.0/15', '--allow-peer', '203.0.113.0/24', '--allow-peer', '198.51.100.0/24',
      '--log-level', 'warn',
    ]);
    await waitFor(() => /rendezvous ws:/.test(server.output()) || server.hasExited(), 10_000, 'nat-server');
    if (server.hasExited()) throw new Error(`nat-server exited:\n${server.output()}`);
    const listener = lab.spawn('clientB', [
      process.execPath, NAT_CLI, 'listen', '--rendezvous', RENDEZVOUS, '--json', '--identity', join(lab.tmpDir, 'b.key'),
    ]);
    await waitFor(() => /^\{"id":/m.test(listener.output()) || listener.hasExited(), 10_000, 'nat listen id');
    const idLine = listener.output().split('\n').find((l) => l.startsWith('{"id":'));
    if (idLine === undefined) throw new Error(`nat listen printed no id:\n${listener.output()}`);
    const { id } = JSON.parse(idLine) as { id: string };
    const r = await lab.exec(
      'clientA',
      [process.execPath, NAT_CLI, 'ping', id, '--rendezvous', RENDEZVOUS, '--json', '--count', '3', '--identity', join(lab.tmpDir, 'a.key')],
      { timeoutMs: 25_000 },
    );
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    const ping = line === undefined ? undefined : (JSON.parse(line) as PingJson);
    log = `ping exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nping stdout: ${r.stdout}\nping stderr: ${r.stderr}\nlisten: ${listener.output()}\nserver: ${server.output()}`;
    return { a, b, code: r.code, ...(ping && 'path' in ping ? { ping } : {}), wallMs: 0, log, namespaces: lab.namespaces };
  } finally {
    await lab.destroy();
  }
}

/** Runs `tasks` with at most `limit` at a time, keeping their order. */
async function pool<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

const timed = async (a: Behaviour, b: Behaviour, loss = 0): Promise<PairOutcome> => {
  const t = Date.now();
  try {
    const o = await runPair(a, b, loss);
    return { ...o, wallMs: Date.now() - t };
  } catch (e) {
    return { a, b, code: null, wallMs: Date.now() - t, log: `lab error: ${(e as Error).stack ?? String(e)}`, namespaces: [] };
  }
};

function printMatrix(outcomes: readonly PairOutcome[]): void {
  const cell = (a: Behaviour, b: Behaviour): string => {
    if (expectedIcePath(a, b) === 'n/a') return 'n/a (needs TURN over TCP)';
    const o = outcomes.find((x) => x.a === a && x.b === b);
    if (!o) return '-';
    if (!o.ping) return `FAIL (exit ${o.code})`;
    const want = expectedIcePath(a, b);
    return `${o.ping.path} ${Math.round(o.ping.connectMs)}ms${o.ping.directMs !== null && o.ping.path === 'direct' ? ` (d ${Math.round(o.ping.directMs)})` : ''}${o.ping.path === want ? '' : ` [want ${want}]`}`;
  };
  const cols = [...MATRIX, 'udp-blocked' as const];
  const w = 30;
  const lines = [
    'ICE matrix on kernel NATs (rows: NAT A, nat ping; columns: NAT B, nat listen): path connectMs',
    `${'A \\ B'.padEnd(24)}${cols.map((c) => c.padEnd(w)).join('')}`,
    ...[...MATRIX, 'udp-blocked' as const].map((a) => `${a.padEnd(24)}${cols.map((b) => cell(a, b).padEnd(w)).join('')}`),
  ];
  console.log(lines.join('\n'));
}

describe.skipIf(!availability.ok)('ICE across two kernel NATs', () => {
  const outcomes: PairOutcome[] = [];
  afterAll(() => {
    if (outcomes.length > 0) printMatrix(outcomes);
  });

  // ICE_MATRIX_ONLY=symmetric,open (a developer's shortcut): only the pairs with one of these sides.
  const only = process.env.ICE_MATRIX_ONLY?.split(',').filter((x) => x.length > 0);
  const pairs = MATRIX.flatMap((a) => MATRIX.map((b) => [a, b] as const)).filter(([a, b]) => only === undefined || only.includes(a) || only.includes(b));

  it(`connects all ${pairs.length} pairs of ${MATRIX.join(', ')} with the expected path`, { timeout: 150_000 }, async () => {
    const t = Date.now();
    outcomes.push(...(await pool(pairs.map(([a, b]) => () => timed(a, b)), CONCURRENCY)));
    console.log(`matrix: ${pairs.length} pairs in ${Date.now() - t} ms (${CONCURRENCY} labs at a time); per pair wall ms: ${outcomes.map((o) => `${o.a}/${o.b} ${o.wallMs}`).join(', ')}`);
    const failures: string[] = [];
    for (const o of outcomes) {
      const want = expectedIcePath(o.a, o.b);
      const ok = o.code === 0 && o.ping !== undefined && o.ping.path === want && o.ping.rttMs.length > 0 && (!needsPunching(o.a, o.b) || o.ping.punched === true);
      if (!ok) failures.push(`${o.a} -> ${o.b}: want ${want}, got ${o.ping?.path ?? 'nothing'} (exit ${o.code})\n${o.log}`);
      expect(listLabNamespaces().filter((n) => o.namespaces.includes(n))).toEqual([]);
    }
    expect(failures, failures.join('\n\n')).toEqual([]);
  });

  it('connects full-cone -> port-restricted-cone with 20% UDP loss on both routers', { timeout: 60_000 }, async () => {
    const o = await timed('full-cone', 'port-restricted-cone', 20);
    console.log(
      `20% loss, full-cone -> port-restricted-cone: ${o.ping ? `${o.ping.path} connectMs ${o.ping.connectMs} directMs ${o.ping.directMs} rtt ${o.ping.rttMs.join('/')}` : 'FAILED'} (wall ${o.wallMs} ms)`,
    );
    expect(o.code, o.log).toBe(0);
    expect(o.ping?.rttMs.length ?? 0, o.log).toBeGreaterThan(0);
  });
});
