/**
 * The messages between the primary of `nat-server --workers N` and its workers (node:cluster
 * IPC, JSON). None is on a packet's path: the hot path never leaves its worker.
 */
import type { TransportAddress } from '@nat/protocol';
import type { ScopeKind, ServerEvent, StunListener, StunServer } from '@nat/server';

/** A worker's counters, as `StunServer.stats()` gives them (the shared port's and its own port's summed). */
export type WorkerStats = ReturnType<StunServer['stats']>;

/** An address entered into a peer's relay scope (by the rendezvous or a TURN permission). */
export interface ScopeEntry {
  readonly peer: string;
  readonly ip: string;
  readonly kind: ScopeKind;
  readonly now: number;
}

/** From a worker to the primary. */
export type WorkerMessage =
  | { readonly t: 'ready'; readonly shared: readonly StunListener[]; readonly own: readonly StunListener[] }
  | { readonly t: 'event'; readonly e: ServerEvent }
  | { readonly t: 'stats'; readonly stats: WorkerStats }
  | ({ readonly t: 'scope' } & ScopeEntry)
  | { readonly t: 'reloaded'; readonly ok: boolean; readonly text: string };

/** From the primary to a worker. */
export type PrimaryMessage =
  /** The TURN ports of every live worker (where allocations are redirected) and the addresses no relay may reach. */
  | { readonly t: 'ports'; readonly ports: readonly (readonly [number, readonly StunListener[]])[]; readonly services: readonly TransportAddress[] }
  | ({ readonly t: 'scope' } & ScopeEntry)
  | { readonly t: 'reload' }
  | { readonly t: 'stop' };

/** The environment a worker is started with. */
export const WORKER_ENV = {
  id: 'NAT_SERVER_WORKER_ID',
  count: 'NAT_SERVER_WORKERS',
  ports: 'NAT_SERVER_WORKER_PORTS',
  nonce: 'NAT_SERVER_WORKER_NONCE_KEY',
} as const;

/** Ports the primary fixed before forking (a 0 in the configuration resolved once, for every worker). */
export interface FixedPorts {
  readonly port: number;
  readonly altPort: number | null;
  readonly tlsPort: number | undefined;
}

/** What the primary gives every worker at start (in its environment). */
export interface WorkerStart {
  readonly ports: FixedPorts;
  /** The TURN nonce key of every worker (hex): the shared socket hands each datagram to any of them. */
  readonly nonceKey: string;
}

/** Sums workers' counters (a missing worker counts nothing). */
export function sumStats(all: readonly (WorkerStats | undefined)[]): WorkerStats {
  const total: WorkerStats = { answered: 0, errors: 0, dropped: 0, rateLimited: 0, indications: 0, connections: 0, streams: zeroStreams() };
  for (const s of all) {
    if (s === undefined) continue;
    for (const k of ['answered', 'errors', 'dropped', 'rateLimited', 'indications', 'connections'] as const) total[k] += s[k];
    addInto(total.streams as unknown as Record<string, number>, s.streams as unknown as Record<string, number>);
    if (s.turn !== undefined) {
      total.turn ??= { ...s.turn, ...zeroOf(s.turn) };
      addInto(total.turn as unknown as Record<string, number>, s.turn as unknown as Record<string, number>);
    }
  }
  return total;
}

function zeroStreams(): WorkerStats['streams'] {
  return {} as WorkerStats['streams'];
}

function zeroOf<T extends object>(o: T): T {
  return Object.fromEntries(Object.keys(o).map((k) => [k, 0])) as T;
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) if (typeof v === 'number') into[k] = (into[k] ?? 0) + v;
}
