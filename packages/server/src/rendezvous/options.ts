import { IceServerUrl, MAX_ICE_SERVERS, MAX_ICE_SERVERS_TTL, MAX_SIGNALLING_MESSAGE_BYTES, SignallingIceServer } from '@nat/protocol';
import { ServerError } from '../errors.js';
import type { ServerEventSink } from '../events.js';
import type { StreamLimits } from '../listeners/stream.js';
import type { Logger } from '../logger.js';
import type { RendezvousAdmission } from './admission.js';
import type { RendezvousCluster } from './cluster.js';
import { DEFAULT_NAME_LIMITS, type NameLimits } from './names.js';
import type { RelayScope } from './scope.js';

/** Limits of a rendezvous service. Every one is per connection unless it says otherwise. */
export interface RendezvousLimits extends NameLimits {
  /**
   * Largest WebSocket message in bytes; a bigger one closes the connection with 1009 (the `ws`
   * `maxPayload`). Default 65,536 ({@link MAX_SIGNALLING_MESSAGE_BYTES}).
   */
  readonly maxMessageBytes?: number;
  /** Messages per second a connection may send, sustained. Default 20; 0 disables the limit. */
  readonly messagesPerSecond?: number;
  /** Messages a connection may send in a burst. Default 50. */
  readonly burst?: number;
  /**
   * Messages over the limit a connection may send, since its last accepted message, before it is
   * closed (code 4003). The first one is answered with `error` `rate-limited`, the rest are
   * dropped silently. Default 20.
   */
  readonly maxDropped?: number;
  /** A connection that has not registered within this many ms is closed (code 4001). Default 10,000. */
  readonly registerTimeoutMs?: number;
  /**
   * Every this many ms the server sends a WebSocket ping to every connection; one that sent
   * nothing (no pong, no message) since the previous round is dropped, so a dead connection goes
   * within two intervals. Default 30,000.
   */
  readonly heartbeatIntervalMs?: number;
  /** Most connections at once (service-wide); more are closed at once with 1013. Default 10,000. */
  readonly maxConnections?: number;
  /**
   * A relayed message is refused (`error` `rate-limited`) when the receiving connection already
   * has this many bytes queued unsent: a peer that does not read cannot make the server buffer
   * without bound. Default 1 MiB.
   */
  readonly maxBufferedBytes?: number;
  /**
   * ({@link startRendezvous} only) An HTTP connection that has not sent a whole request (the
   * WebSocket upgrade) within this many ms of its accept is closed. Default 10,000.
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * WebSocket connections at once from one source address (IPv6: one /64); more are closed at
   * once with 1013. Default 64.
   */
  readonly maxConnectionsPerSource?: number;
  /**
   * ({@link startRendezvous} only) TCP connections from one source address (IPv6: one /64) that
   * have not sent their request (the upgrade) yet; more are closed at accept. Default 16.
   */
  readonly maxPendingPerSource?: number;
}

/** TURN credentials the service hands to registered peers (the TURN REST API draft). */
export interface RendezvousTurnOptions {
  /**
   * The STUN/TURN URIs of the server (`stun:`, `stuns:`, `turn:`, `turns:`; at most 8 of each
   * kind). `turn:`/`turns:` ones get the credentials; `stun:`/`stuns:` ones are listed without.
   */
  readonly urls: readonly string[];
  /**
   * The shared secret: peers get anonymous relay credentials (`anonymousRelayCredentials`), which
   * the TURN server accepts with `anonymousRelayUsers([secret])` and narrows with `RelayTiers`.
   */
  readonly secret: string;
  /** Lifetime of the credentials in seconds. Default 86,400 (one day); at most 7 days. */
  readonly ttl?: number;
}

/** Options of {@link attachRendezvous}. */
export interface RendezvousOptions {
  /** The HTTP path of the WebSocket endpoint. Default `/`. */
  readonly path?: string;
  /** Hand registered peers TURN credentials (and the STUN/TURN URIs). Default none. */
  readonly turn?: RendezvousTurnOptions;
  /** More ICE servers to list in `registered`, as they are (for example a public STUN server). Default none. */
  readonly iceServers?: readonly SignallingIceServer[];
  /** Limits; see {@link RendezvousLimits} for each default. */
  readonly limits?: RendezvousLimits;
  /** Who may register. Default: anyone with a key (an open rendezvous). */
  readonly admission?: RendezvousAdmission;
  /**
   * Where to record what each peer's sessions signal (the other side's candidates), for the
   * TURN server's anonymous tier. Give the same scope to `RelayTiers`. Default none.
   */
  readonly scope?: RelayScope;
  /**
   * Several nodes sharing presence, names and signalling (e.g. `@nat/redis`'s Redis cluster):
   * peers registered on different nodes meet. Its lifetime is the caller's (close it after the
   * service). Default none: a single node, everything in memory.
   */
  readonly cluster?: RendezvousCluster;
  /** Logger (pino-compatible). Default silent. Nothing is logged per message above debug. */
  readonly logger?: Logger;
  /**
   * Where the service's events go: peer-online/offline, session-brokered, auth-failure,
   * refused (connections, names), rate-limited. Default none.
   */
  readonly events?: ServerEventSink;
}

/** Options of {@link startRendezvous}: where to listen, plus {@link RendezvousOptions}. */
export interface StartRendezvousOptions extends RendezvousOptions {
  /** IP address (or host name) to listen on. Required (use `127.0.0.1` or `::` explicitly). */
  readonly host: string;
  /** TCP port; 0 picks a free one. Required. */
  readonly port: number;
  /**
   * The StreamGovernor limits of the listener: every TCP connection (WebSocket, expose control on
   * the same server, handshakes) counts. Defaults: twice `limits.maxConnections` in all,
   * `limits.maxConnectionsPerSource + limits.maxPendingPerSource` per source, and a connection
   * silent for `limits.handshakeTimeoutMs` before its upgrade is closed (after the upgrade, its
   * service's heartbeat governs it).
   */
  readonly connections?: StreamLimits;
}

/** The limits with every default filled in. */
export type ResolvedLimits = Required<RendezvousLimits>;

/** The defaults of {@link RendezvousLimits}. */
export const DEFAULT_RENDEZVOUS_LIMITS: ResolvedLimits = {
  maxMessageBytes: MAX_SIGNALLING_MESSAGE_BYTES,
  messagesPerSecond: 20,
  burst: 50,
  maxDropped: 20,
  registerTimeoutMs: 10_000,
  heartbeatIntervalMs: 30_000,
  maxConnections: 10_000,
  maxBufferedBytes: 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  maxConnectionsPerSource: 64,
  maxPendingPerSource: 16,
  ...DEFAULT_NAME_LIMITS,
};

/** Default lifetime of TURN credentials, seconds. */
export const DEFAULT_TURN_CREDENTIAL_TTL = 86_400;

function bad(message: string): never {
  throw new ServerError('BAD_CONFIG', `rendezvous: ${message}`);
}

function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) bad(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

/** Fills in the defaults and checks every limit. Throws ServerError BAD_CONFIG. */
export function resolveLimits(limits: RendezvousLimits = {}): ResolvedLimits {
  const l = { ...DEFAULT_RENDEZVOUS_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) };
  checkInt('limits.maxMessageBytes', l.maxMessageBytes, 256, 16 * 1024 * 1024);
  if (!(Number.isFinite(l.messagesPerSecond) && l.messagesPerSecond >= 0)) bad('limits.messagesPerSecond must be >= 0');
  if (!(Number.isFinite(l.burst) && l.burst >= 1)) bad('limits.burst must be >= 1');
  checkInt('limits.maxDropped', l.maxDropped, 0);
  checkInt('limits.registerTimeoutMs', l.registerTimeoutMs, 1, 2 ** 31 - 1);
  checkInt('limits.heartbeatIntervalMs', l.heartbeatIntervalMs, 1, 2 ** 31 - 1);
  checkInt('limits.maxConnections', l.maxConnections, 1);
  checkInt('limits.maxBufferedBytes', l.maxBufferedBytes, 1);
  checkInt('limits.handshakeTimeoutMs', l.handshakeTimeoutMs, 1, 2 ** 31 - 1);
  checkInt('limits.maxConnectionsPerSource', l.maxConnectionsPerSource, 1);
  checkInt('limits.maxPendingPerSource', l.maxPendingPerSource, 1);
  checkInt('limits.maxNamesPerPeer', l.maxNamesPerPeer, 0);
  checkInt('limits.maxNames', l.maxNames, 0);
  checkInt('limits.nameClaimsPerSource', l.nameClaimsPerSource, 0);
  checkInt('limits.nameClaimWindowMs', l.nameClaimWindowMs, 1);
  checkInt('limits.nameTtlMs', l.nameTtlMs, 1);
  return l;
}

/** A normalised path: starts with `/`, no query. */
export function resolvePath(path = '/'): string {
  if (!path.startsWith('/') || /[?#\s]/.test(path)) bad(`path must start with "/" and hold no query: ${JSON.stringify(path)}`);
  return path;
}

/** Checked TURN options with the ttl filled in. */
export interface ResolvedTurn {
  readonly stunUrls: readonly string[];
  readonly turnUrls: readonly string[];
  readonly secret: string;
  readonly ttl: number;
}

/** Checks the TURN options against the signalling schemas. Throws ServerError BAD_CONFIG. */
export function resolveTurn(turn: RendezvousTurnOptions | undefined): ResolvedTurn | undefined {
  if (turn === undefined) return undefined;
  if (typeof turn.secret !== 'string' || turn.secret === '') bad('turn.secret must be a non-empty string');
  const ttl = checkInt('turn.ttl', turn.ttl ?? DEFAULT_TURN_CREDENTIAL_TTL, 1, MAX_ICE_SERVERS_TTL);
  for (const url of turn.urls) if (!IceServerUrl.safeParse(url).success) bad(`turn.urls: not a stun:/turn: URI: ${JSON.stringify(url)}`);
  const stunUrls = turn.urls.filter((u) => u.startsWith('stun'));
  const turnUrls = turn.urls.filter((u) => u.startsWith('turn'));
  if (turnUrls.length === 0) bad('turn.urls must hold at least one turn: or turns: URI');
  if (stunUrls.length > 8 || turnUrls.length > 8) bad('turn.urls: at most 8 stun and 8 turn URIs');
  return { stunUrls, turnUrls, secret: turn.secret, ttl };
}

/** Checks the static ICE servers. Throws ServerError BAD_CONFIG. */
export function resolveIceServers(servers: readonly SignallingIceServer[] = [], turn: ResolvedTurn | undefined): readonly SignallingIceServer[] {
  const out = servers.map((s, i) => {
    const r = SignallingIceServer.safeParse(s);
    if (!r.success) bad(`iceServers[${i}]: ${r.error.issues[0]?.message ?? 'invalid'}`);
    return r.data;
  });
  const fromTurn = turn === undefined ? 0 : turn.stunUrls.length > 0 ? 2 : 1;
  if (out.length + fromTurn > MAX_ICE_SERVERS) bad(`at most ${MAX_ICE_SERVERS} ICE servers in all (turn counts 1, or 2 with stun: URIs)`);
  return out;
}
