import { type Cidr, ParseError, parseCidr } from '@nat/protocol';
import { ServerError } from '../errors.js';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import type { ExposeCluster } from './cluster.js';
import type { ExposeOutboundOptions } from './outbound.js';
import type { TurnAuthenticator } from '../turn/auth.js';

/** Limits of the expose service. */
export interface ExposeLimits {
  /** Public ports (TCP and UDP together) one user may hold, held ones included. Default 4. */
  readonly portsPerUser?: number;
  /** Inbound connections open at once on one public TCP port; more are reset. Default 256. */
  readonly connectionsPerPort?: number;
  /** Bytes per second per user, both directions together, over all its ports; 0 = unlimited. Default 0. */
  readonly bandwidthPerUser?: number;
  /** An inbound connection with no byte either way for this long is closed. Default 300,000 ms. */
  readonly idleTimeoutMs?: number;
  /** A disconnected client's ports are held for it this long, then released. Default 30,000 ms. */
  readonly graceMs?: number;
  /** A control connection that has not authenticated in this long is closed. Default 10,000 ms. */
  readonly authTimeoutMs?: number;
  /** Keepalive round: a ping every interval; a connection silent for a whole round is dropped. Default 15,000 ms. */
  readonly heartbeatMs?: number;
  /** Control connections at once. Default 1,000. */
  readonly maxSessions?: number;
  /**
   * Control connections from one source (an IPv4 address, an IPv6 /64) that have not
   * authenticated yet; more are answered 503, so that a flood of idle connections cannot take
   * every session slot. Default 8.
   */
  readonly maxPendingPerIp?: number;
  /** Receive window per multiplexed stream, bytes (bounds the memory per connection). Default 256 KiB. */
  readonly window?: number;
  /** Control connections from one source (an IPv4 address, an IPv6 /64), authenticated or not. Default a quarter of `maxSessions`. */
  readonly sessionsPerSource?: number;
  /** Inbound connections open at once on one public TCP port from one source (IPv4 address, IPv6 /64); more are reset. Default a quarter of `connectionsPerPort`. */
  readonly connectionsPerSource?: number;
  /** Frames a control connection may send before it authenticated (opening the control stream, the hello, pings). Default 16. */
  readonly preAuthFrames?: number;
  /** Payload bytes a control connection may send before it authenticated. Default 8,192. */
  readonly preAuthBytes?: number;
  /**
   * Unsent output of a control connection, bytes, over which the server stops reading from it,
   * leaves its pings unanswered and holds its streams' data until it drains. Default 1 MiB.
   */
  readonly outputBuffer?: number;
  /** Unsent output of a control connection over which it is cut (a peer that does not read). Default 8 MiB. */
  readonly outputHardCap?: number;
  /** Outbound connections (see `outbound`) open at once on one control connection. Default 16. */
  readonly outboundPerSession?: number;
  /** New outbound connections per user per minute (a sliding minute). Default 30. */
  readonly outboundPerMinute?: number;
  /** Outbound connections open at once, all users together. Default 1,000. */
  readonly outboundTotal?: number;
  /** An outbound connection not established in this long is refused (`timeout`). Default 10,000 ms. */
  readonly outboundConnectTimeoutMs?: number;
}

/** Options of {@link attachExpose}. */
export interface ExposeOptions {
  /** The HTTP path of the upgrade (`Upgrade: nat-expose`). Default `/expose`. */
  readonly path?: string;
  /** The only public ports ever handed out (inclusive). Required. */
  readonly ports: { readonly min: number; readonly max: number };
  /** IP address the public ports are bound on. Required. */
  readonly host: string;
  /** The address announced to clients (default `host`; set it when binding 0.0.0.0). */
  readonly publicIp?: string;
  /** Realm of the password keys (RFC 8489 long-term keys, as for TURN). Default `nat-expose`. */
  readonly realm?: string;
  /** Users and shared secrets, as the TURN server takes them (`staticUsers`, `restApiSecrets`, `anyOf`). */
  readonly auth?: TurnAuthenticator;
  /** Accept these Ed25519 peer keys (a list of peer ids; `true`, any key, is refused: exposure is never anonymous). Default false. */
  readonly peerKeys?: boolean | readonly string[];
  /** Source prefixes refused on every port. Default none. */
  readonly denySources?: readonly string[];
  readonly limits?: ExposeLimits;
  /** Outbound connections for exposed users, from the public ports' address. Default off. */
  readonly outbound?: ExposeOutboundOptions;
  /**
   * The other nodes of a cluster (`nat-server --redis`): each user's ports counted on every node
   * together against `limits.portsPerUser` (reserved there after this node's own count, before
   * the port is bound; refused `unavailable` when it does not answer), and owner advertisements
   * every node's owner lookup reads (`?host=`). Default none: this node's memory alone.
   */
  readonly cluster?: ExposeCluster;
  /** Logger (pino-compatible). Default silent. */
  readonly logger?: Logger;
  /**
   * Where the service's events go: expose-port-opened/closed, expose-connection, auth-failure,
   * refused (sessions, ports, connections). Default none.
   */
  readonly events?: ServerEventSink;
}

export type ResolvedExposeLimits = Required<ExposeLimits>;

export const DEFAULT_EXPOSE_LIMITS: ResolvedExposeLimits = {
  portsPerUser: 4,
  connectionsPerPort: 256,
  bandwidthPerUser: 0,
  idleTimeoutMs: 300_000,
  graceMs: 30_000,
  authTimeoutMs: 10_000,
  heartbeatMs: 15_000,
  maxSessions: 1000,
  maxPendingPerIp: 8,
  window: 256 * 1024,
  sessionsPerSource: 250,
  connectionsPerSource: 64,
  preAuthFrames: 16,
  preAuthBytes: 8192,
  outputBuffer: 1 << 20,
  outputHardCap: 8 << 20,
  outboundPerSession: 16,
  outboundPerMinute: 30,
  outboundTotal: 1000,
  outboundConnectTimeoutMs: 10_000,
};

function bad(message: string): never {
  throw new ServerError('BAD_CONFIG', `expose: ${message}`);
}

export function resolveExposeLimits(l: ExposeLimits = {}): ResolvedExposeLimits {
  const given = Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) as ExposeLimits;
  // The per-source shares follow their pool's size unless given.
  const shares = {
    sessionsPerSource: Math.max(1, Math.floor((given.maxSessions ?? DEFAULT_EXPOSE_LIMITS.maxSessions) / 4)),
    connectionsPerSource: Math.max(1, Math.floor((given.connectionsPerPort ?? DEFAULT_EXPOSE_LIMITS.connectionsPerPort) / 4)),
  };
  const r = { ...DEFAULT_EXPOSE_LIMITS, ...shares, ...given } as ResolvedExposeLimits;
  for (const [k, v] of Object.entries(r)) if (!Number.isInteger(v) || v < 0) bad(`limits.${k} must be a non-negative integer, got ${v}`);
  if (r.portsPerUser < 1 || r.connectionsPerPort < 1 || r.maxSessions < 1 || r.maxPendingPerIp < 1)
    bad('portsPerUser, connectionsPerPort, maxSessions and maxPendingPerIp must be at least 1');
  if (r.sessionsPerSource < 1 || r.connectionsPerSource < 1 || r.preAuthFrames < 2)
    bad('sessionsPerSource and connectionsPerSource must be at least 1, preAuthFrames at least 2');
  if (r.outputBuffer < 64 * 1024 || r.outputHardCap < 2 * r.outputBuffer)
    bad('limits.outputBuffer must be at least 65536 and outputHardCap at least twice outputBuffer');
  if (r.outboundPerSession < 1 || r.outboundPerMinute < 1 || r.outboundTotal < 1 || r.outboundConnectTimeoutMs < 1)
    bad('outboundPerSession, outboundPerMinute, outboundTotal and outboundConnectTimeoutMs must be at least 1');
  if (r.window < 256 * 1024) bad('limits.window must be at least 262144 (the yamux initial window)');
  return r;
}

export function resolvePortRange(p: { min: number; max: number }): { min: number; max: number } {
  if (!Number.isInteger(p.min) || !Number.isInteger(p.max) || p.min < 1 || p.max > 65535 || p.min > p.max)
    bad(`ports must be a range within 1-65535, got ${p.min}-${p.max}`);
  return { min: p.min, max: p.max };
}

/** Parses `20000-20099` or `8080`. Throws ServerError BAD_CONFIG. */
export function parsePortRange(text: string): { min: number; max: number } {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  if (!m) bad(`${JSON.stringify(text)} is not a port range (e.g. 20000-20099)`);
  return resolvePortRange({ min: Number(m[1]), max: Number(m[2] ?? m[1]) });
}

/** Parses IP prefixes. Throws ServerError BAD_CONFIG naming the one that does not parse. */
export function parseCidrs(list: readonly string[] | undefined): Cidr[] {
  try {
    return (list ?? []).map((t) => parseCidr(t));
  } catch (e) {
    if (e instanceof ParseError) throw new ServerError('BAD_CONFIG', e.message);
    throw e;
  }
}
