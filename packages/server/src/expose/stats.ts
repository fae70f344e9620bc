import type { ExposeTransport } from '@nat/protocol';

/** Counters of an expose service since it started. */
export interface ExposeStats {
  /** Control connections open now. */
  sessions: number;
  /** Public ports bound now (held ones included). */
  ports: number;
  /** Inbound TCP connections open now. */
  connections: number;
  /** Control connections that authenticated / were refused. */
  authenticated: number;
  authRefused: number;
  /** Upgrades refused because their source (IPv4 address, IPv6 /64) already had `maxPendingPerIp` unauthenticated connections. */
  pendingRefused: number;
  /** Upgrades refused because their source already held `sessionsPerSource` control connections. */
  sessionsOverShare: number;
  /** Control connections cut for breaking a bound: a frame not allowed (before authenticating, or a second client stream), or unsent output over the hard cap. */
  sessionsCut: number;
  /** Requests granted / refused. */
  granted: number;
  refused: number;
  /** Inbound connections refused: over the per-port limit, by a source prefix, or while the port was held. */
  connectionsOverLimit: number;
  /** Inbound connections refused because their source already had `connectionsPerSource` open on the port. */
  connectionsOverShare: number;
  connectionsDenied: number;
  connectionsWhileHeld: number;
  /** Inbound connections closed for idleness. */
  idleClosed: number;
  /** UDP datagrams carried each way, and dropped (a client not keeping up, or a denied source). */
  datagramsIn: number;
  datagramsOut: number;
  datagramsDropped: number;
  /** Of those dropped, datagrams of a new flow (source address and port) from a source that had `connectionsPerSource` live flows on the port. */
  datagramsOverShare: number;
}

/** The counters the service keeps itself (the rest are sizes of its tables). */
export type ExposeCounters = Omit<ExposeStats, 'sessions' | 'ports' | 'connections'>;

/** Every counter at zero. */
export function newExposeCounters(): ExposeCounters {
  return {
    authenticated: 0,
    authRefused: 0,
    pendingRefused: 0,
    sessionsOverShare: 0,
    sessionsCut: 0,
    granted: 0,
    refused: 0,
    connectionsOverLimit: 0,
    connectionsOverShare: 0,
    connectionsDenied: 0,
    connectionsWhileHeld: 0,
    idleClosed: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    datagramsDropped: 0,
    datagramsOverShare: 0,
  };
}

/** One public port as {@link ExposeHandle.exposures} lists it. */
export interface ExposureInfo {
  readonly transport: ExposeTransport;
  readonly port: number;
  readonly user: string;
  /** False while held for a disconnected client. */
  readonly attached: boolean;
  readonly connections: number;
}
