/**
 * Prometheus metrics of a nat-server (prom-client). Two kinds of source feed them:
 *
 * - the typed event sink ({@link ServerMetrics.sink}): counters of what happened (allocations
 *   created and ended, auth failures by reason, refusals by cause, rate limiting, bytes and
 *   packets relayed, connections accepted and closed, sessions brokered);
 * - the services' `stats()`, read at scrape time ({@link ServerMetrics.watch}): gauges of what
 *   is there now (allocations, connections, peers online, names, exposed ports) and the STUN
 *   responder's counters. A gauge read from the service cannot drift from it.
 *
 * Every metric name starts with `prefix` (default `nat_`). Labels are bounded sets (service,
 * cause, reason, transport, direction), never a user, peer id or address: those belong on the
 * status page, not in a time series database.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerEvent, ServerEventSink } from '../events.js';
import type { ExposeStats } from '../expose/index.js';
import type { RendezvousClusterStats, RendezvousStats } from '../rendezvous/index.js';
import type { StunResponderStats } from '../stun/responder.js';
import type { TurnStats } from '../turn/core.js';

/** Options of {@link ServerMetrics}. */
export interface ServerMetricsInit {
  /** The registry to register in. Default a new one (see {@link ServerMetrics.registry}). */
  readonly registry?: Registry;
  /** Prefix of every metric name. Default `nat_`. */
  readonly prefix?: string;
  /** Also export prom-client's process metrics (CPU, memory, event loop lag, handles). Default true. */
  readonly processMetrics?: boolean;
}

/** What {@link ServerMetrics.watch} reads at scrape time; each is optional. */
export interface MetricsSources {
  /** A STUN/TURN server's `stats()` (startStunServer). */
  readonly stun?: () => StunResponderStats & { connections: number; turn?: TurnStats };
  /** A rendezvous's `stats()`. */
  readonly rendezvous?: () => RendezvousStats;
  /** The expose service's `stats()`. */
  readonly expose?: () => ExposeStats;
}

/** The metrics of one server process: attach {@link sink} to the services' `events`, call {@link watch}, serve {@link registry}. */
export class ServerMetrics {
  readonly registry: Registry;
  readonly #p: string;
  readonly #sources: MetricsSources[] = [];
  readonly #allocationsCreated: Counter<'transport' | 'relay' | 'tier'>;
  readonly #allocationsEnded: Counter<'relay' | 'cause'>;
  readonly #relayedPackets: Counter<'direction'>;
  readonly #relayedBytes: Counter<'direction'>;
  readonly #authFailures: Counter<'service' | 'reason'>;
  readonly #challenges: Counter<'service'>;
  readonly #refusals: Counter<'service' | 'cause' | 'pool'>;
  readonly #rateLimited: Counter<'service' | 'what'>;
  readonly #connectionsAccepted: Counter<'service' | 'transport'>;
  readonly #connectionsClosed: Counter<'service' | 'transport' | 'cause'>;
  readonly #peersOnline: Counter<'tier'>;
  readonly #sessions: Counter;
  readonly #exposeConnections: Counter;

  constructor(init: ServerMetricsInit = {}) {
    this.registry = init.registry ?? new Registry();
    this.#p = init.prefix ?? 'nat_';
    const counter = <K extends string>(name: string, help: string, labelNames: readonly K[]): Counter<K> =>
      new Counter<K>({ name: this.#p + name, help, labelNames, registers: [this.registry] });
    this.#allocationsCreated = counter('turn_allocations_created_total', 'TURN allocations created, by client transport, relay transport and tier', [
      'transport',
      'relay',
      'tier',
    ]);
    this.#allocationsEnded = counter('turn_allocations_ended_total', 'TURN allocations ended, by relay transport and cause', ['relay', 'cause']);
    this.#relayedPackets = counter('turn_relayed_packets_total', 'Packets relayed by TURN allocations (to_peer: from clients to peers)', ['direction']);
    this.#relayedBytes = counter('turn_relayed_bytes_total', 'Payload bytes relayed by TURN allocations', ['direction']);
    this.#authFailures = counter('auth_failures_total', 'Authentication failures (wrong or unknown credentials), by service and reason', ['service', 'reason']);
    this.#challenges = counter('auth_challenges_total', 'Requests without credentials answered with a challenge (the first step of every client), by service', [
      'service',
    ]);
    this.#refusals = counter('refusals_total', 'Requests or connections refused by a limit, by service, cause and pool', ['service', 'cause', 'pool']);
    this.#rateLimited = counter('rate_limited_total', 'Requests or answers suppressed by a rate limit', ['service', 'what']);
    this.#connectionsAccepted = counter('connections_accepted_total', 'Stream connections accepted, by service and transport', ['service', 'transport']);
    this.#connectionsClosed = counter('connections_closed_total', 'Stream connections closed, by service, transport and cause', [
      'service',
      'transport',
      'cause',
    ]);
    this.#peersOnline = counter('rendezvous_registrations_total', 'Peers that registered with the rendezvous, by tier', ['tier']);
    this.#sessions = counter('rendezvous_sessions_brokered_total', 'Sessions brokered between two peers by the rendezvous', []);
    this.#exposeConnections = counter('expose_connections_total', 'Connections accepted on exposed public ports', []);
    this.#gauges();
    if (init.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: this.#p });
  }

  /** Pass this as the services' `events` option (or subscribe it to a ServerEventHub). */
  readonly sink: ServerEventSink = (e) => this.#count(e);

  #clusterGauges = false;

  /** Reads these services' `stats()` at every scrape. */
  watch(sources: MetricsSources): void {
    this.#sources.push(sources);
    if (!this.#clusterGauges && sources.rendezvous?.().cluster !== undefined) this.#addClusterGauges();
  }

  /** `rendezvous_cluster_*`: only on a node of several (a single node's metrics stay as they were). */
  #addClusterGauges(): void {
    this.#clusterGauges = true;
    const read = (pick: (c: RendezvousClusterStats) => number) => (): number =>
      this.#sources.reduce((n, s) => {
        const c = s.rendezvous?.().cluster;
        return n + (c === undefined ? 0 : pick(c));
      }, 0);
    const gauges: readonly [string, string, () => number][] = [
      ['rendezvous_cluster_store_up', '1 while the shared store (Redis) answers, 0 while it is lost', read((c) => c.storeUp)],
      ['rendezvous_cluster_nodes', 'Live nodes sharing the rendezvous (this one included), at the last heartbeat', read((c) => c.nodes)],
      ['rendezvous_cluster_forwarded', 'Messages sent to peers on other nodes, since start', read((c) => c.forwarded)],
      ['rendezvous_cluster_delivered', 'Messages from other nodes delivered to peers here, since start', read((c) => c.delivered)],
      ['rendezvous_cluster_undeliverable', 'Messages from other nodes whose peer was gone or not reading here, since start', read((c) => c.undeliverable)],
      ['rendezvous_cluster_forward_failures', 'Forwards refused because the store was slow (busy) or lost, since start', read((c) => c.forwardFailures)],
      ['rendezvous_cluster_store_losses', 'Times the shared store was lost, since start', read((c) => c.storeLosses)],
    ];
    for (const [name, help, value] of gauges) {
      new Gauge({
        name: this.#p + name,
        help,
        registers: [this.registry],
        collect(this: Gauge) {
          this.set(value());
        },
      });
    }
  }

  /** The exposition text (`text/plain; version=0.0.4`). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  #count(e: ServerEvent): void {
    switch (e.type) {
      case 'allocation-created':
        return this.#allocationsCreated.inc({ transport: e.transport, relay: e.relay, tier: e.anonymous ? 'anonymous' : 'user' });
      case 'allocation-ended':
        return this.#allocationsEnded.inc({ relay: e.relay, cause: e.cause });
      case 'relayed':
        return this.#relayed(e);
      case 'auth-failure':
        // A request without credentials is how every client starts (RFC 8489 section 9.2): a challenge, not a failure.
        if (e.reason === 'missing') return this.#challenges.inc({ service: e.service });
        return this.#authFailures.inc({ service: e.service, reason: e.reason });
      case 'refused':
        return this.#refusals.inc({ service: e.service, cause: e.cause, pool: e.pool });
      case 'rate-limited':
        return this.#rateLimited.inc({ service: e.service, what: e.what });
      case 'connection-opened':
        return this.#connectionsAccepted.inc({ service: e.service, transport: e.transport });
      case 'connection-closed':
        return this.#connectionsClosed.inc({ service: e.service, transport: e.transport, cause: e.cause });
      case 'peer-online':
        return this.#peersOnline.inc({ tier: e.anonymous ? 'anonymous' : 'listed' });
      case 'session-brokered':
        return this.#sessions.inc();
      case 'expose-connection':
        if (e.state === 'opened') this.#exposeConnections.inc();
        return;
      default:
        return;
    }
  }

  #relayed(e: Extract<ServerEvent, { type: 'relayed' }>): void {
    if (e.packetsToPeer > 0) this.#relayedPackets.inc({ direction: 'to_peer' }, e.packetsToPeer);
    if (e.bytesToPeer > 0) this.#relayedBytes.inc({ direction: 'to_peer' }, e.bytesToPeer);
    if (e.packetsToClient > 0) this.#relayedPackets.inc({ direction: 'to_client' }, e.packetsToClient);
    if (e.bytesToClient > 0) this.#relayedBytes.inc({ direction: 'to_client' }, e.bytesToClient);
  }

  /** Gauges (and the STUN responder's counters) read from the watched services at scrape time. */
  #gauges(): void {
    const sum = (read: (s: MetricsSources) => number | undefined): number => this.#sources.reduce((n, s) => n + (read(s) ?? 0), 0);
    const gauge = (name: string, help: string, read: (s: MetricsSources) => number | undefined): void => {
      new Gauge({
        name: this.#p + name,
        help,
        registers: [this.registry],
        collect(this: Gauge) {
          this.set(sum(read));
        },
      });
    };
    gauge('turn_allocations_active', 'TURN allocations now', (s) => s.stun?.().turn?.allocations);
    gauge('stream_connections_open', 'STUN/TURN TCP and TLS connections open now', (s) => s.stun?.().connections);
    gauge('rendezvous_peers_online', 'Peers registered with the rendezvous now', (s) => s.rendezvous?.().registered);
    gauge('rendezvous_connections_open', 'Rendezvous WebSocket connections open now', (s) => s.rendezvous?.().connections);
    gauge('rendezvous_names', 'Names held in the rendezvous now', (s) => s.rendezvous?.().names);
    gauge('expose_sessions_open', 'Expose control connections open now', (s) => s.expose?.().sessions);
    gauge('expose_ports_open', 'Public ports bound by the expose service now', (s) => s.expose?.().ports);
    gauge('expose_connections_open', 'Inbound connections on exposed TCP ports now', (s) => s.expose?.().connections);
    this.#stunCounters(sum);
  }

  /** `stun_requests_total{outcome}`: the responder's own counters, exported as they are (they only grow). */
  #stunCounters(sum: (read: (s: MetricsSources) => number | undefined) => number): void {
    const outcomes: readonly (readonly [string, keyof StunResponderStats])[] = [
      ['answered', 'answered'],
      ['error', 'errors'],
      ['dropped', 'dropped'],
      ['rate_limited', 'rateLimited'],
      ['indication', 'indications'],
    ];
    const seen = new Map<string, number>();
    new Counter<'outcome'>({
      name: `${this.#p}stun_requests_total`,
      help: 'STUN Binding traffic by outcome: answered, error (400/420), dropped (not STUN), rate_limited, indication (keep-alives)',
      labelNames: ['outcome'],
      registers: [this.registry],
      collect(this: Counter<'outcome'>) {
        for (const [outcome, key] of outcomes) {
          const now = sum((s) => s.stun?.()[key]);
          const delta = now - (seen.get(outcome) ?? 0);
          if (delta > 0) this.inc({ outcome }, delta);
          seen.set(outcome, Math.max(now, seen.get(outcome) ?? 0));
        }
      },
    });
  }
}
