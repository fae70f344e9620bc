/**
 * ICE between two peers behind two real kernel NATs (tests/lab/pair.ts): `nat-server` (STUN,
 * TURN and rendezvous) on the internet side, `nat listen` behind NAT B, `nat ping` behind NAT A.
 * For every pair of behaviours the ping must connect, take the expected path
 * ({@link expectedIcePath}: relay when both sides are symmetric, direct otherwise, through
 * birthday punching where ordinary checks cannot get through) and get RTT samples. The matrix
 * (path and connectMs) is printed. One pair runs again with 20% UDP loss on both routers.
 *
 * A 'udp-blocked' side lets only TCP through: it gets its relayed candidate from TURN over TCP
 * (the rendezvous hands out `turn:...?transport=tcp` beside the UDP URIs), so every pair with
 * one must connect through the relay.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NAT_CLI, RENDEZVOUS, startIceServices } from './ice-lab.js';
import { BEHAVIOURS, labAvailable, listLabNamespaces, type Behaviour } from './index.js';
import { createPairLab, injectForwardLoss, reconfigurePairSide, type PairLab } from './pair.js';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] ICE matrix skipped: ${availability.reason}`);

/** The behaviours of the matrix (rows: NAT A, the pinging side; columns: NAT B, the listener). */
const MATRIX: readonly Behaviour[] = BEHAVIOURS;
/** How many pair labs run at once. */
const CONCURRENCY = 4;

/**
 * The path `nat ping`/`nat listen` must take between two behaviours: relay when both mappings
 * depend on the destination (symmetric on both sides: punching is hopeless, so no time is spent
 * on it) or either side blocks UDP (TURN over TCP), direct otherwise; one symmetric side against an endpoint-independent side that filters
 * on ports (port-restricted cone, symmetric UDP firewall) is direct through birthday punching.
 */
export function expectedIcePath(a: Behaviour, b: Behaviour): 'direct' | 'relay' {
  if (a === 'udp-blocked' || b === 'udp-blocked') return 'relay';
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
  /** Wall time of the pair: NAT A set up, `nat ping` run (lab, server and listener are shared by a column). */
  wallMs: number;
  log: string;
  namespaces: readonly string[];
}

/**
 * One column of the matrix: NAT B of behaviour `b` with `nat listen` behind it and `nat-server`
 * on the internet side, started once; then for each behaviour of `as` in turn, NAT A gets that
 * behaviour (its ruleset replaced and its connection tracking flushed: reconfigurePairSide) and
 * a fresh `nat ping` runs behind it. Sharing the lab, server and listener across a column saves
 * two of every three Node processes the matrix would otherwise start. A column whose lab,
 * server or listener does not come up (a loaded machine) is tried once more.
 */
async function runColumn(b: Behaviour, as: readonly Behaviour[], lossPercent = 0, pings = 3): Promise<PairOutcome[]> {
  for (let attempt = 0; ; attempt++) {
    const started = Date.now();
    let lab: PairLab | undefined;
    try {
      lab = await createPairLab({ a: as[0]!, b });
      if (lossPercent > 0) {
        await injectForwardLoss(lab, 'routerA', lossPercent);
        await injectForwardLoss(lab, 'routerB', lossPercent);
      }
      const { server, listener, id } = await startIceServices(lab);
      const outcomes: PairOutcome[] = [];
      let t = started;
      for (const [i, a] of as.entries()) {
        if (i > 0) lab = await reconfigurePairSide(lab, 'a', a);
        const listenFrom = listener.output().length;
        const r = await lab.exec(
          'clientA',
          [process.execPath, NAT_CLI, 'ping', id, '--rendezvous', RENDEZVOUS, '--json', '--count', String(pings), '--interval', '50', '--identity', join(lab.tmpDir, 'a.key')],
          { timeoutMs: 35_000 },
        );
        const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
        const ping = line === undefined ? undefined : (JSON.parse(line) as PingJson);
        const log = `ping exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nping stdout: ${r.stdout}\nping stderr: ${r.stderr}\nlisten: ${listener.output().slice(listenFrom)}\nserver: ${server.output()}`;
        outcomes.push({ a, b, code: r.code, ...(ping && 'path' in ping ? { ping } : {}), wallMs: Date.now() - t, log, namespaces: lab.namespaces });
        t = Date.now();
      }
      return outcomes;
    } catch (e) {
      const log = `lab error: ${(e as Error).stack ?? String(e)}`;
      if (attempt === 0) {
        console.warn(`[lab] column ${b} tried again after ${log}`);
        continue;
      }
      return as.map((a) => ({ a, b, code: null, wallMs: Date.now() - started, log, namespaces: lab?.namespaces ?? [] }));
    } finally {
      await lab?.destroy();
    }
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

function printMatrix(outcomes: readonly PairOutcome[]): void {
  const cell = (a: Behaviour, b: Behaviour): string => {
    const o = outcomes.find((x) => x.a === a && x.b === b);
    if (!o) return '-';
    if (!o.ping) return `FAIL (exit ${o.code})`;
    const want = expectedIcePath(a, b);
    return `${o.ping.path} ${Math.round(o.ping.connectMs)}ms${o.ping.directMs !== null && o.ping.path === 'direct' ? ` (d ${Math.round(o.ping.directMs)})` : ''}${o.ping.path === want ? '' : ` [want ${want}]`}`;
  };
  const cols = MATRIX;
  const w = 30;
  const lines = [
    'ICE matrix on kernel NATs (rows: NAT A, nat ping; columns: NAT B, nat listen): path connectMs',
    `${'A \\ B'.padEnd(24)}${cols.map((c) => c.padEnd(w)).join('')}`,
    ...MATRIX.map((a) => `${a.padEnd(24)}${cols.map((b) => cell(a, b).padEnd(w)).join('')}`),
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
  const columns = MATRIX.map((b) => ({ b, as: pairs.filter((p) => p[1] === b).map((p) => p[0]) })).filter((c) => c.as.length > 0);

  it(`connects all ${pairs.length} pairs of ${MATRIX.join(', ')} with the expected path`, { timeout: 240_000 }, async () => {
    const t = Date.now();
    outcomes.push(...(await pool(columns.map((c) => () => runColumn(c.b, c.as)), CONCURRENCY)).flat());
    console.log(`matrix: ${pairs.length} pairs in ${Date.now() - t} ms (${CONCURRENCY} columns at a time); per pair wall ms: ${outcomes.map((o) => `${o.a}/${o.b} ${o.wallMs}`).join(', ')}`);
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
    // 8 pings: each crosses four lossy hops, so 3 would all be lost one time in five.
    const [o] = await runColumn('port-restricted-cone', ['full-cone'], 20, 8);
    if (o === undefined) throw new Error('no outcome');
    console.log(
      `20% loss, full-cone -> port-restricted-cone: ${o.ping ? `${o.ping.path} connectMs ${o.ping.connectMs} directMs ${o.ping.directMs} rtt ${o.ping.rttMs.join('/')}` : 'FAILED'} (wall ${o.wallMs} ms)`,
    );
    expect(o.code, o.log).toBe(0);
    expect(o.ping?.rttMs.length ?? 0, o.log).toBeGreaterThan(0);
  });
});
