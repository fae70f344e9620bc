import type { RendezvousClusterStats } from './cluster.js';

/** Counters of a rendezvous service, since it started. */
export interface RendezvousStats {
  /** Open WebSocket connections now. */
  connections: number;
  /** Registered peers now (live presence). */
  registered: number;
  /** Successful registrations. */
  registrations: number;
  /** `register` messages refused (bad signature or key). */
  registrationsRefused: number;
  /** Connections closed because a newer one registered the same peer id. */
  replaced: number;
  /** Connections closed for not registering in time. */
  registerTimeouts: number;
  /** Messages relayed to another peer. */
  relayed: number;
  /** Relayed messages answered `peer-offline`. */
  peerOffline: number;
  /** Messages answered `unauthorized` (before registering, or a spoofed `from`). */
  unauthorized: number;
  /** Messages answered `bad-message` or `version-unsupported`. */
  badMessages: number;
  /** Messages dropped by the rate limit. */
  rateLimited: number;
  /** Connections closed for abusing the rate limit. */
  rateLimitDisconnects: number;
  /** Connections dropped by the heartbeat. */
  heartbeatDrops: number;
  /** Connections refused because `maxConnections` were open. */
  refusedConnections: number;
  /** Upgrades refused for a missing or wrong invite token, and registrations of keys not listed. */
  admissionRefused: number;
  /** WebSocket connections refused (1013): their source address (IPv6: /64) held `maxConnectionsPerSource`. */
  refusedSourceShare: number;
  /** `claim-name` refused: taken, over the per-key or per-source limit, or the table full. */
  nameClaimsRefused: number;
  /** Names held now (released when their owner has not registered for `nameTtlMs`). */
  names: number;
  /** With a cluster (several nodes sharing a store): its state and counters. */
  cluster?: RendezvousClusterStats;
}

/** Counters of the listener of {@link startRendezvous} (its own HTTP server and StreamGovernor). */
export interface RendezvousGateStats {
  /** TCP connections open now, upgraded or not (rendezvous, expose control, handshakes). */
  tcpConnections: number;
  /** Connections closed at accept: their source address (IPv6: /64) had `maxPendingPerSource` connections that had sent no request yet. */
  pendingRefused: number;
  /** Connections closed at accept: the listener's connection cap was reached. */
  refusedTcpConnections: number;
  /** Connections closed at accept: their source address (IPv6: /64) held its share of the listener's connections. */
  refusedTcpSourceShare: number;
  /** Connections closed for not sending their request (the upgrade) within `handshakeTimeoutMs`. */
  handshakeTimeouts: number;
  /** Connections closed for sending nothing (before any upgrade) for the listener's idle timeout. */
  idleClosed: number;
}
