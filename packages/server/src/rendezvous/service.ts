import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { RENDEZVOUS_CLOSE_CODES, SIGNALLING_VERSION, sourceKey } from '@nat/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { type ServerEventSink, noEvents } from '../events.js';
import { type Logger, silentLogger } from '../logger.js';
import { Admission } from './admission.js';
import type { RendezvousCluster } from './cluster.js';
import { Connection } from './connection.js';
import { isGateListener } from './gate.js';
import { type RendezvousOptions, type ResolvedLimits, resolveIceServers, resolveLimits, resolvePath, resolveTurn } from './options.js';
import { plainIp } from './scope.js';
import { type RendezvousCounters, Signalling } from './signalling.js';
import { ServerError } from '../errors.js';
import type { RendezvousStats } from './stats.js';

/** An embedded rendezvous service (see {@link attachRendezvous}). */
export interface RendezvousHandle {
  /** The HTTP path it answers WebSocket upgrades on. */
  readonly path: string;
  /** Counters. */
  stats(): RendezvousStats;
  /** Signs the anonymous relay credentials of later registrations with this secret (a reload). No effect without `turn`. */
  setTurnSecret(secret: string): void;
  /**
   * Stops answering upgrades, closes every connection (1001) and stops the heartbeat; the HTTP
   * server itself is left alone. Idempotent.
   */
  close(): Promise<void>;
}

/** Writes a bare HTTP refusal on an upgrade's socket and closes it. */
function refuseUpgrade(socket: Duplex, status: string, body = ''): void {
  socket.on('error', () => {});
  const type = body === '' ? '' : 'Content-Type: text/plain\r\n';
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n${type}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/**
 * The service behind {@link attachRendezvous}: the WebSocket side (upgrades, the connection pool
 * and its shares, the heartbeat, shutdown); the protocol itself is {@link Signalling}'s.
 */
class RendezvousService implements RendezvousHandle {
  readonly path: string;
  readonly #limits: ResolvedLimits;
  readonly #log: Logger;
  readonly #events: ServerEventSink;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  /** WebSocket connections per source address (IPv6: /64). */
  readonly #perSource = new Map<string, number>();
  readonly #admission: Admission;
  readonly #cluster: RendezvousCluster | undefined;
  readonly #signalling: Signalling;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #http: HttpServer;
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  #closing: Promise<void> | undefined;
  readonly #stats: RendezvousCounters = {
    registrations: 0,
    registrationsRefused: 0,
    replaced: 0,
    registerTimeouts: 0,
    relayed: 0,
    peerOffline: 0,
    unauthorized: 0,
    badMessages: 0,
    rateLimited: 0,
    rateLimitDisconnects: 0,
    heartbeatDrops: 0,
    refusedConnections: 0,
    admissionRefused: 0,
    nameClaimsRefused: 0,
    refusedSourceShare: 0,
  };

  constructor(http: HttpServer, options: RendezvousOptions) {
    this.path = resolvePath(options.path);
    this.#limits = resolveLimits(options.limits);
    const turn = resolveTurn(options.turn);
    this.#log = options.logger ?? silentLogger;
    this.#events = options.events ?? noEvents;
    this.#admission = new Admission(options.admission);
    this.#cluster = options.cluster;
    this.#signalling = new Signalling({
      limits: this.#limits,
      turn,
      iceServers: resolveIceServers(options.iceServers, turn),
      admission: this.#admission,
      scope: options.scope,
      cluster: options.cluster,
      log: this.#log,
      events: this.#events,
      stats: this.#stats,
      forget: (c) => this.#connections.delete(c),
    });
    this.#http = http;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#limits.maxMessageBytes, perMessageDeflate: false, clientTracking: false });
    this.#onUpgrade = (req, socket, head) => this.#upgrade(req, socket, head);
    http.on('upgrade', this.#onUpgrade);
    this.#heartbeat = setInterval(() => this.#beat(), this.#limits.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  setTurnSecret(secret: string): void {
    if (typeof secret !== 'string' || secret === '') throw new ServerError('BAD_CONFIG', 'turn.secret must be a non-empty string');
    this.#signalling.setTurnSecret(secret);
  }

  stats(): RendezvousStats {
    const { peers, names } = this.#signalling;
    const cluster = this.#cluster?.stats();
    return { connections: this.#connections.size, registered: peers.size, names: names.size, ...this.#stats, ...(cluster === undefined ? {} : { cluster }) };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#http.off('upgrade', this.#onUpgrade);
    clearInterval(this.#heartbeat);
    const gone = [...this.#connections].map(
      (c) =>
        new Promise<void>((resolve) => {
          c.offlineCause = 'server-close';
          if (c.ws.readyState === c.ws.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.ws.close(RENDEZVOUS_CLOSE_CODES.shutdown, 'shutting down');
          // A peer that does not answer the close handshake is cut off.
          setTimeout(() => c.ws.terminate(), 1000).unref();
        }),
    );
    await Promise.all(gone);
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.path) {
      // Another upgrade handler may own this path; if none does, refuse it.
      if (this.#http.listeners('upgrade').filter((l) => !isGateListener(l)).length === 1) refuseUpgrade(socket, '404 Not Found');
      return;
    }
    if (this.#closing !== undefined) return refuseUpgrade(socket, '503 Service Unavailable');
    if (!this.#admission.tokenOk(req)) {
      this.#stats.admissionRefused++;
      const source = sourceKey(req.socket.remoteAddress ?? '?');
      this.#log.info({ remote: req.socket.remoteAddress }, 'rendezvous: upgrade without a valid invite token refused');
      const reason = req.headers.authorization === undefined ? 'missing' : 'not-allowed';
      this.#events({ type: 'auth-failure', service: 'rendezvous', reason, source });
      return refuseUpgrade(socket, '401 Unauthorized', 'this rendezvous needs an invite token (nat: --rendezvous-token or NAT_RENDEZVOUS_TOKEN)\n');
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
  }

  /** Takes one unit of the WebSocket pool for `source`; false (after closing `ws` 1013) over the cap or the share. */
  #admit(ws: WebSocket, source: string): boolean {
    const fromSource = this.#perSource.get(source) ?? 0;
    const overShare = fromSource >= this.#limits.maxConnectionsPerSource;
    if (!overShare && this.#connections.size < this.#limits.maxConnections) {
      this.#perSource.set(source, fromSource + 1);
      return true;
    }
    if (overShare) this.#stats.refusedSourceShare++;
    else this.#stats.refusedConnections++;
    this.#events({ type: 'refused', service: 'rendezvous', cause: overShare ? 'source-share' : 'global-cap', source, pool: 'connections' });
    ws.on('error', () => {});
    ws.close(1013, overShare ? 'too many connections from this address' : 'too many connections');
    return false;
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const source = sourceKey(req.socket.remoteAddress ?? '?');
    if (!this.#admit(ws, source)) return;
    const c = new Connection(ws, plainIp(req.socket.remoteAddress ?? '') ?? '?', source, remote, this.#limits);
    this.#connections.add(c);
    ws.on('message', (data, isBinary) => this.#signalling.message(c, data, isBinary));
    ws.on('pong', () => (c.alive = true));
    ws.on('error', (error) => this.#log.debug({ remote, err: error.message }, 'rendezvous connection error'));
    ws.once('close', () => {
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left <= 0) this.#perSource.delete(source);
      else this.#perSource.set(source, left);
      this.#signalling.closed(c);
    });
    c.registerTimer = setTimeout(() => {
      if (c.peerId !== undefined || c.closed) return;
      this.#stats.registerTimeouts++;
      this.#signalling.drop(c, RENDEZVOUS_CLOSE_CODES.registerTimeout, 'registration timeout', 'timeout');
    }, this.#limits.registerTimeoutMs);
    c.registerTimer.unref();
    c.send({ v: SIGNALLING_VERSION, type: 'challenge', nonce: c.nonce! });
  }

  #beat(): void {
    for (const c of this.#connections) {
      if (!c.alive) {
        this.#stats.heartbeatDrops++;
        this.#log.debug({ remote: c.remote, peerId: c.peerId }, 'rendezvous heartbeat: dropping dead connection');
        this.#signalling.drop(c, 0, '', 'timeout');
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }
}

/**
 * Runs the rendezvous service on an existing node:http (or https) server: WebSocket upgrades on
 * `options.path` (default `/`) are answered, other paths are left to other `upgrade` listeners
 * (or refused with 404 when there are none). Any peer with a reachable address can volunteer as
 * a rendezvous point this way. Throws ServerError BAD_CONFIG for bad options.
 */
export function attachRendezvous(httpServer: HttpServer, options: RendezvousOptions = {}): RendezvousHandle {
  return new RendezvousService(httpServer, options);
}
