/**
 * What the kernel-NAT ICE suites expect of a pair of NAT behaviours, and a runner of `nat ping`
 * over pair labs (tests/lab/pair.ts) for the one-address server suites: a column per behaviour of
 * NAT B (lab, `nat-server` and `nat listen` started once), NAT A reconfigured in place for each
 * row, optionally behind the carrier NAT.
 */
import { join } from 'node:path';
import { NAT_CLI, RENDEZVOUS, startIceServices, type NatServerShape } from './ice-lab.js';
import type { Behaviour } from './recipes.js';
import { createPairLab, reconfigurePairSide, type PairLab } from './pair.js';

/**
 * The path `nat ping`/`nat listen` must take between two behaviours: relay when both mappings
 * depend on the destination (symmetric on both sides: punching is hopeless, so no time is spent
 * on it) or either side blocks UDP (TURN over TCP), direct otherwise; one symmetric side against
 * an endpoint-independent side that filters on ports (port-restricted cone, symmetric UDP
 * firewall) is direct through birthday punching.
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

/**
 * How a home NAT of behaviour `a` behind the lab's carrier NAT (a port-restricted cone) looks from
 * the internet: symmetric and UDP-blocked stay what they are; everything else becomes a
 * port-restricted cone (the CGN's endpoint-independent mapping keeps one public port per home
 * mapping, its filter lets in only what was sent to).
 */
export function behindCarrier(a: Behaviour): Behaviour {
  return a === 'symmetric' || a === 'udp-blocked' ? a : 'port-restricted-cone';
}

/** What `nat ping --json` prints. */
export interface PingJson {
  path: 'direct' | 'relay';
  localCandidate: { type: string; address: string };
  remoteCandidate: { type: string; address: string };
  connectMs: number;
  directMs: number | null;
  rttMs: number[];
  punched?: boolean;
  nat?: { mapping: string | null; ports: string | null; probeMs: number | null } | null;
  punch?: { role: string | null; outcome: string | null; probesSent: number; socketsOpened: number; learned?: string };
}

/** One pair's `nat ping`. */
export interface PingOutcome {
  readonly a: Behaviour;
  readonly b: Behaviour;
  readonly code: number | null;
  readonly ping: PingJson | undefined;
  readonly log: string;
  readonly namespaces: readonly string[];
}

/** Options of {@link pingColumn}. */
export interface ColumnOptions {
  readonly server?: NatServerShape;
  /** NAT A behind the carrier NAT. */
  readonly carrierA?: boolean;
  readonly pings?: number;
}

/**
 * One column: NAT B of behaviour `b` with `nat listen` behind it and `nat-server` on the internet,
 * then for each of `as` NAT A gets that behaviour and a fresh `nat ping` runs behind it. A column
 * whose lab or services do not come up (a loaded machine) is tried once more.
 */
export async function pingColumn(b: Behaviour, as: readonly Behaviour[], options: ColumnOptions = {}): Promise<PingOutcome[]> {
  for (let attempt = 0; ; attempt++) {
    let lab: PairLab | undefined;
    try {
      lab = await createPairLab({ a: as[0]!, b, carrierA: options.carrierA === true });
      const { server, listener, id } = await startIceServices(lab, { ...(options.server ? { server: options.server } : {}) });
      const out: PingOutcome[] = [];
      for (const [i, a] of as.entries()) {
        if (i > 0) lab = await reconfigurePairSide(lab, 'a', a);
        const listenFrom = listener.output().length;
        const argv = [process.execPath, NAT_CLI, 'ping', id, '--rendezvous', RENDEZVOUS, '--json', '--count', String(options.pings ?? 3), '--interval', '50'];
        const r = await lab.exec('clientA', [...argv, '--identity', join(lab.tmpDir, 'a.key')], { timeoutMs: 35_000 });
        const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
        const parsed = line === undefined ? undefined : (JSON.parse(line) as PingJson);
        const log = `ping exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nping stdout: ${r.stdout}\nping stderr: ${r.stderr}\nlisten: ${listener.output().slice(listenFrom)}\nserver: ${server.output()}`;
        out.push({ a, b, code: r.code, ping: parsed !== undefined && 'path' in parsed ? parsed : undefined, log, namespaces: lab.namespaces });
      }
      return out;
    } catch (e) {
      const log = `lab error: ${(e as Error).stack ?? String(e)}`;
      if (attempt === 0) {
        console.warn(`[lab] column ${b} tried again after ${log}`);
        continue;
      }
      return as.map((a) => ({ a, b, code: null, ping: undefined, log, namespaces: lab?.namespaces ?? [] }));
    } finally {
      await lab?.destroy();
    }
  }
}

/** Runs `tasks` with at most `limit` at a time, keeping their order. */
export async function pool<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
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
