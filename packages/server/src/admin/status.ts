/**
 * What the status page shows, kept from the event sink: allocations and expose sessions by user,
 * rendezvous peers online, exposed ports with their connections, the most recent refusals with
 * their causes; plus live counts read from the services' stats at render time. Bounded: at most
 * `maxRows` rows per table are listed (the totals are exact), `recent` refusals are kept.
 */
import type { TransportAddress } from '@nat/protocol';
import type { ServerEvent, ServerEventSink } from '../events.js';
import type { MetricsSources } from './metrics.js';

/** Options of {@link StatusView}. */
export interface StatusViewInit {
  /** The version shown. Required. */
  readonly version: string;
  /** Recent refusals kept. Default 50. */
  readonly recent?: number;
  /** Rows listed per table. Default 200. */
  readonly maxRows?: number;
  /** Clock, ms. Default Date.now. */
  readonly now?: () => number;
}

/** One refusal, auth failure or rate limit, as listed. */
export interface RecentRefusal {
  readonly at: number;
  readonly service: string;
  readonly what: string;
  readonly source: string;
  readonly user?: string;
}

/** One exposed public port. */
export interface ExposedPortStatus {
  readonly user: string;
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  readonly address: TransportAddress;
  readonly connections: number;
}

/** The status as data (the page renders it; `/status.json` serves it). */
export interface StatusSnapshot {
  readonly version: string;
  readonly startedAt: string;
  readonly uptimeS: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly allocationsByUser: readonly { readonly user: string; readonly allocations: number; readonly anonymous: boolean }[];
  readonly peers: readonly { readonly peer: string; readonly source: string; readonly anonymous: boolean; readonly since: string }[];
  readonly exposedPorts: readonly ExposedPortStatus[];
  readonly recentRefusals: readonly RecentRefusal[];
}

/** Keeps what the status page shows, from events and stats. */
export class StatusView {
  readonly #version: string;
  readonly #recentMax: number;
  readonly #maxRows: number;
  readonly #now: () => number;
  readonly #started: number;
  readonly #sources: MetricsSources[] = [];
  readonly #allocations = new Map<number, { user: string; anonymous: boolean }>();
  readonly #peers = new Map<string, { source: string; anonymous: boolean; since: number }>();
  readonly #ports = new Map<string, ExposedPortStatus & { connections: number }>();
  readonly #recent: RecentRefusal[] = [];

  constructor(init: StatusViewInit) {
    this.#version = init.version;
    this.#recentMax = init.recent ?? 50;
    this.#maxRows = init.maxRows ?? 200;
    this.#now = init.now ?? Date.now;
    this.#started = this.#now();
  }

  /** Subscribe this to the services' events. */
  readonly sink: ServerEventSink = (e) => this.#apply(e);

  /** Reads these services' `stats()` when a snapshot is taken. */
  watch(sources: MetricsSources): void {
    this.#sources.push(sources);
  }

  #apply(e: ServerEvent): void {
    switch (e.type) {
      case 'allocation-created':
        this.#allocations.set(e.allocation, { user: e.user, anonymous: e.anonymous });
        return;
      case 'allocation-ended':
        this.#allocations.delete(e.allocation);
        return;
      case 'peer-online':
        this.#peers.set(e.peer, { source: e.source, anonymous: e.anonymous, since: this.#now() });
        return;
      case 'peer-offline':
        this.#peers.delete(e.peer);
        return;
      case 'expose-port-opened':
        this.#ports.set(portKey(e.protocol, e.address), { user: e.user, name: e.name, protocol: e.protocol, address: e.address, connections: 0 });
        return;
      case 'expose-port-closed':
        this.#ports.delete(portKey(e.protocol, e.address));
        return;
      case 'expose-connection':
        return this.#exposeConnection(e);
      case 'refused':
        return this.#remember({ at: this.#now(), service: e.service, what: `${e.cause} (${e.pool})`, source: e.source, ...(e.user ? { user: e.user } : {}) });
      case 'auth-failure':
        if (e.reason === 'missing') return; // the challenge every client gets first
        return this.#remember({ at: this.#now(), service: e.service, what: `auth: ${e.reason}`, source: e.source, ...(e.user ? { user: e.user } : {}) });
      case 'rate-limited':
        return this.#remember({ at: this.#now(), service: e.service, what: `rate limited: ${e.what}`, source: e.source });
      default:
        return;
    }
  }

  #exposeConnection(e: Extract<ServerEvent, { type: 'expose-connection' }>): void {
    for (const p of this.#ports.values()) {
      if (p.user === e.user && p.name === e.name) {
        p.connections = Math.max(0, p.connections + (e.state === 'opened' ? 1 : -1));
        return;
      }
    }
  }

  #remember(r: RecentRefusal): void {
    this.#recent.push(r);
    if (this.#recent.length > this.#recentMax) this.#recent.shift();
  }

  /** The status now. */
  snapshot(): StatusSnapshot {
    const now = this.#now();
    const byUser = new Map<string, { user: string; allocations: number; anonymous: boolean }>();
    for (const a of this.#allocations.values()) {
      const row = byUser.get(a.user) ?? { user: a.user, allocations: 0, anonymous: a.anonymous };
      row.allocations++;
      byUser.set(a.user, row);
    }
    return {
      version: this.#version,
      startedAt: new Date(this.#started).toISOString(),
      uptimeS: Math.floor((now - this.#started) / 1000),
      counts: this.#counts(),
      allocationsByUser: [...byUser.values()].sort((a, b) => b.allocations - a.allocations || a.user.localeCompare(b.user)).slice(0, this.#maxRows),
      peers: [...this.#peers.entries()]
        .slice(0, this.#maxRows)
        .map(([peer, p]) => ({ peer, source: p.source, anonymous: p.anonymous, since: new Date(p.since).toISOString() })),
      exposedPorts: [...this.#ports.values()].slice(0, this.#maxRows).map((p) => ({ ...p })),
      recentRefusals: [...this.#recent].reverse(),
    };
  }

  #counts(): Record<string, number> {
    const sum = (read: (s: MetricsSources) => number | undefined): number => this.#sources.reduce((n, s) => n + (read(s) ?? 0), 0);
    return {
      'TURN allocations': sum((s) => s.stun?.().turn?.allocations),
      'STUN/TURN stream connections': sum((s) => s.stun?.().connections),
      'STUN answers': sum((s) => s.stun?.().answered),
      'rendezvous peers online': sum((s) => s.rendezvous?.().registered),
      'rendezvous names': sum((s) => s.rendezvous?.().names),
      'expose sessions': sum((s) => s.expose?.().sessions),
      'exposed ports': sum((s) => s.expose?.().ports),
      'expose connections': sum((s) => s.expose?.().connections),
      ...this.#clusterCounts(),
    };
  }

  /** On a node of several: whether Redis answers, and the live nodes (a single node shows none of it). */
  #clusterCounts(): Record<string, number> {
    const c = this.#sources.map((s) => s.rendezvous?.().cluster).find((x) => x !== undefined);
    if (c === undefined) return {};
    return { 'cluster: Redis up (1) or lost (0)': c.storeUp, 'cluster: live nodes': c.nodes, 'cluster: Redis losses': c.storeLosses };
  }
}

const portKey = (protocol: string, a: TransportAddress): string => `${protocol}|${a.address}|${a.port}`;
