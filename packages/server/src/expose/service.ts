import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  EXPOSE_PROTOCOL,
  EXPOSE_VERSION,
  type ExposeControlMessage,
  type ExposeRefusal,
  type MuxStream,
  encodeControlMessage,
  formatTransportAddress,
  ipFamily,
  readControlMessages,
  sourceKey,
} from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type ServerEventSink, noEvents } from '../events.js';
import { type Logger, silentLogger } from '../logger.js';
import { type ExposeCredentials, checkHello } from './auth.js';
import { type ExposeCluster, type ExposeOwnerRecord, clusterHost } from './cluster.js';
import { type ExposeOptions, type ResolvedExposeLimits, parseCidrs, resolveExposeLimits, resolvePortRange } from './options.js';
import { OutboundSide } from './outbound.js';
import { ownerRequestListener, verifyAdvertise } from './owner.js';
import { PortTable, keyOf } from './ports.js';
import { PublicSide, addressOf } from './public-side.js';
import { type Session, closeSession, heartbeat, startSession } from './session.js';
import { ShareCounter } from './shares.js';
import { type ExposeCounters, type ExposeStats, type ExposureInfo, newExposeCounters } from './stats.js';

export type { ExposeStats, ExposureInfo } from './stats.js';

/** An embedded expose service (see {@link attachExpose}). */
export interface ExposeHandle {
  readonly path: string;
  stats(): ExposeStats;
  exposures(): ExposureInfo[];
  /** Closes every control connection and public port; the HTTP server is left alone. Idempotent. */
  close(): Promise<void>;
}

/** Writes a bare HTTP refusal on an upgrade's socket and closes it. */
function refuseUpgrade(socket: Duplex, status: string, why = ''): void {
  socket.on('error', () => {});
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(why)}\r\n\r\n${why}`);
}

/** Checks the options that no resolver covers. Throws ServerError BAD_CONFIG. */
function checkOptions(opts: ExposeOptions, path: string): void {
  if (!path.startsWith('/') || /[?#\s]/.test(path)) throw new ServerError('BAD_CONFIG', `expose: bad path ${JSON.stringify(path)}`);
  if (ipFamily(opts.host) === undefined) throw new ServerError('BAD_CONFIG', `expose: host must be an IP address, got ${JSON.stringify(opts.host)}`);
  if (opts.peerKeys === true)
    throw new ServerError('BAD_CONFIG', 'expose: peerKeys: true would let any new key expose public ports; list the peer ids allowed');
  if (opts.auth === undefined && !opts.peerKeys) throw new ServerError('BAD_CONFIG', 'expose: give users or shared secrets (auth), or accept peer keys');
}

/**
 * The service behind {@link attachExpose}: control connections (upgrades, their pool and shares,
 * authentication, the heartbeat); public ports are {@link PortTable}'s, the traffic on them
 * {@link PublicSide}'s.
 */
class ExposeService implements ExposeHandle {
  readonly path: string;
  readonly #http: HttpServer;
  readonly #limits: ResolvedExposeLimits;
  readonly #credentials: ExposeCredentials;
  readonly #publicIp: string;
  readonly #cluster: ExposeCluster | undefined;
  readonly #log: Logger;
  readonly #events: ServerEventSink;
  readonly #sessions = new Set<Session>();
  readonly #ports: PortTable;
  readonly #outbound: OutboundSide;
  /** Control connections per source. */
  readonly #sessionShares = new ShareCounter();
  /** When each TCP connection of the HTTP server was accepted (performance.now()): the authentication deadline counts from there. */
  readonly #accepted = new WeakMap<object, number>();
  readonly #onConnection = (socket: object): void => void this.#accepted.set(socket, performance.now());
  readonly #heartbeat: NodeJS.Timeout;
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly #onRequest: ReturnType<typeof ownerRequestListener>;
  #closing: Promise<void> | undefined;
  #pingValue = 0;
  readonly #stats: ExposeCounters = newExposeCounters();

  constructor(http: HttpServer, opts: ExposeOptions) {
    this.path = opts.path ?? '/expose';
    checkOptions(opts, this.path);
    this.#http = http;
    this.#limits = resolveExposeLimits(opts.limits);
    this.#credentials = { realm: opts.realm ?? 'nat-expose', auth: opts.auth, peerKeys: opts.peerKeys };
    this.#publicIp = opts.publicIp ?? opts.host;
    this.#cluster = opts.cluster;
    this.#log = opts.logger ?? silentLogger;
    this.#events = opts.events ?? noEvents;
    const common = { limits: this.#limits, stats: this.#stats, log: this.#log, events: this.#events, host: opts.host };
    const publicSide = new PublicSide({ ...common, deny: parseCidrs(opts.denySources) });
    const range = resolvePortRange(opts.ports);
    this.#outbound = new OutboundSide({ ...common, options: opts.outbound ?? {}, publicIp: this.#publicIp, meter: (u) => publicSide.meter(u) });
    this.#ports = new PortTable({
      ...common,
      range,
      publicIp: this.#publicIp,
      publicSide,
      send: (s, m) => this.#send(s, m),
      closing: () => this.#closing !== undefined,
      cluster: opts.cluster,
    });
    this.#onUpgrade = (req, socket, head) => this.#upgrade(req, socket, head);
    this.#onRequest = ownerRequestListener(this.path, (transport, port, host) => this.#owner(transport, port, host));
    http.prependListener('request', this.#onRequest);
    http.on('upgrade', this.#onUpgrade);
    http.on('connection', this.#onConnection);
    http.on('secureConnection', this.#onConnection); // https: req.socket is the TLS socket
    this.#heartbeat = setInterval(() => this.#beat(), this.#limits.heartbeatMs);
    this.#heartbeat.unref();
  }

  stats(): ExposeStats {
    let connections = 0;
    for (const e of this.#ports.exposures.values()) connections += e.conns.size;
    return { sessions: this.#sessions.size, ports: this.#ports.exposures.size, connections, ...this.#stats };
  }

  exposures(): ExposureInfo[] {
    return [...this.#ports.exposures.values()].map((e) => ({
      transport: e.transport,
      port: e.port,
      user: e.user,
      attached: e.session !== undefined,
      connections: e.conns.size,
    }));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#http.off('upgrade', this.#onUpgrade);
      this.#http.off('request', this.#onRequest);
      this.#http.off('connection', this.#onConnection);
      this.#http.off('secureConnection', this.#onConnection);
      clearInterval(this.#heartbeat);
      for (const s of [...this.#sessions]) this.#endSession(s, 'shutting down');
      this.#outbound.close();
      await Promise.all([...this.#ports.exposures.values()].map((e) => this.#ports.release(e)));
    })();
    return this.#closing;
  }

  /** The advertised owner of a held public port (the owner lookup): this node's, or another node's (`host`) as the cluster knows it. */
  #owner(transport: 'tcp' | 'udp', port: number, host: string | undefined): ReturnType<Parameters<typeof ownerRequestListener>[1]> {
    if (host !== undefined && host !== clusterHost(this.#publicIp)) return this.#cluster?.owner({ host, transport, port });
    const e = this.#ports.exposures.get(keyOf(transport, port));
    if (e?.advertised === undefined || e.session === undefined) return undefined;
    const owner: ExposeOwnerRecord = { peer: e.advertised, address: formatTransportAddress(addressOf(this.#publicIp, port)) };
    return owner;
  }

  // ---- control connections

  /** Why an upgrade from `source` may not start a session (a 503 text), or undefined when it may (its share taken). */
  #sessionRefusal(source: string): string | undefined {
    const { maxSessions, maxPendingPerIp, sessionsPerSource } = this.#limits;
    const refused = (cause: 'global-cap' | 'source-share'): void => this.#events({ type: 'refused', service: 'expose', cause, source, pool: 'sessions' });
    if (this.#sessions.size >= maxSessions) {
      refused('global-cap');
      return `the expose service holds ${this.#sessions.size} control connections (at most ${maxSessions})`;
    }
    let pending = 0;
    for (const other of this.#sessions) if (other.user === undefined && other.source === source) pending++;
    if (pending >= maxPendingPerIp) {
      this.#stats.pendingRefused++;
      this.#log.debug({ source, pending }, 'expose: upgrade refused, too many unauthenticated connections from one source');
      refused('source-share');
      return `${pending} unauthenticated expose connections from your address already (at most ${maxPendingPerIp})`;
    }
    if (!this.#sessionShares.take(source, sessionsPerSource)) {
      this.#stats.sessionsOverShare++;
      this.#log.debug({ source, share: sessionsPerSource }, 'expose: upgrade refused, source over its share of sessions');
      refused('source-share');
      return `${sessionsPerSource} expose control connections from your address already (its share of this server)`;
    }
    return undefined;
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if ((req.url ?? '/').split('?')[0] !== this.path) {
      // Another listener's path. The rendezvous service answers 404 only when it is the sole
      // listener; once this one is attached too, an upgrade that no listener took is refused
      // here, after every listener had its turn, instead of hanging.
      setImmediate(() => {
        if (!socket.destroyed && (socket as Socket).bytesWritten === 0) refuseUpgrade(socket, '404 Not Found');
      });
      return;
    }
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (!upgrade.split(',').some((t) => t.trim() === EXPOSE_PROTOCOL)) return refuseUpgrade(socket, '400 Bad Request');
    if (this.#closing !== undefined) return refuseUpgrade(socket, '503 Service Unavailable', 'the expose service is shutting down');
    const ip = req.socket.remoteAddress ?? '?';
    const source = sourceKey(ip);
    const refusal = this.#sessionRefusal(source);
    if (refusal !== undefined) return refuseUpgrade(socket, '503 Service Unavailable', refusal);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${EXPOSE_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
    const remote = `${ip}:${req.socket.remotePort ?? 0}`;
    const acceptedAt = this.#accepted.get(req.socket) ?? performance.now();
    const s = startSession(socket, ip, source, remote, acceptedAt, this.#limits, {
      onStream: (session, stream) => this.#incomingStream(session, stream),
      onEnd: (session, reason, cut) => {
        if (cut && !session.closed) {
          this.#stats.sessionsCut++;
          this.#log.debug({ remote: session.remote, user: session.user, reason }, 'expose: control connection cut');
        }
        this.#endSession(session, reason);
      },
      onAuthTimeout: (session) => {
        if (session.user !== undefined) return;
        this.#events({ type: 'auth-failure', service: 'expose', reason: 'missing', source: session.source });
        this.#refuseSession(session, 'unauthorized', 'authentication timeout');
      },
    });
    this.#sessions.add(s);
    if (head.length > 0) s.mux.receive(head);
  }

  #incomingStream(s: Session, stream: MuxStream): void {
    stream.on('error', () => {});
    if (s.control !== undefined) {
      // After the control stream, a client opens only outbound connections (once authenticated).
      if (s.user !== undefined) this.#outbound.handle(s, stream);
      else stream.destroy();
      return;
    }
    s.control = stream;
    readControlMessages(
      stream,
      (m) => {
        if (!s.closed) this.#control(s, m);
      },
      (e) => this.#refuseSession(s, 'bad-message', e.message),
    );
    stream.on('end', () => this.#endSession(s, 'control stream ended'));
    this.#send(s, { v: EXPOSE_VERSION, type: 'challenge', nonce: s.nonce, realm: this.#credentials.realm });
  }

  #send(s: Session, m: ExposeControlMessage): void {
    if (s.control !== undefined && !s.control.destroyed && !s.control.writableEnded) s.control.write(encodeControlMessage(m));
  }

  #refuseSession(s: Session, code: ExposeRefusal, message: string): void {
    this.#send(s, { v: EXPOSE_VERSION, type: 'error', code, message: message.slice(0, 512) });
    if (code === 'unauthorized') this.#stats.authRefused++;
    this.#log.debug({ remote: s.remote, code }, 'expose: closing control connection');
    this.#endSession(s, message);
  }

  #endSession(s: Session, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    this.#sessions.delete(s);
    this.#sessionShares.give(s.source);
    closeSession(s);
    for (const e of s.exposures) this.#ports.hold(e);
    s.exposures.clear();
    this.#log.debug({ remote: s.remote, user: s.user, reason }, 'expose: control connection ended');
  }

  #beat(): void {
    for (const s of this.#sessions) if (!heartbeat(s, ++this.#pingValue)) this.#endSession(s, 'heartbeat: no answer');
    const now = performance.now();
    for (const e of this.#ports.exposures.values()) e.flows?.sweep(now);
  }

  #hello(s: Session, m: ExposeControlMessage): void {
    if (m.type !== 'hello') {
      this.#events({ type: 'auth-failure', service: 'expose', reason: 'missing', source: s.source });
      return this.#refuseSession(s, 'unauthorized', 'authenticate first (hello)');
    }
    const r = checkHello(m, s.nonce, this.#credentials);
    if (!r.ok) {
      this.#events({ type: 'auth-failure', service: 'expose', reason: r.reason, source: s.source, ...(r.user === undefined ? {} : { user: r.user }) });
      return this.#refuseSession(s, 'unauthorized', r.message);
    }
    s.user = r.user;
    s.gate.authenticated = true;
    clearTimeout(s.authTimer);
    this.#stats.authenticated++;
    this.#send(s, { v: EXPOSE_VERSION, type: 'welcome', user: r.user, publicIp: this.#publicIp });
  }

  #control(s: Session, m: ExposeControlMessage): void {
    if (s.user === undefined) return this.#hello(s, m);
    switch (m.type) {
      case 'expose': {
        const advertised = m.advertise === undefined ? undefined : verifyAdvertise(m.advertise, s.nonce);
        if (m.advertise !== undefined && advertised === undefined)
          return this.#send(s, {
            v: EXPOSE_VERSION,
            type: 'refused',
            ref: m.id,
            code: 'forbidden',
            message: 'the signature of the advertised peer key does not verify',
          });
        void this.#ports.request(s, m, advertised);
        return;
      }
      case 'unexpose':
        this.#ports.unexpose(s, m.transport, m.port);
        return;
      default:
        this.#refuseSession(s, 'bad-message', `a client does not send ${m.type}`);
    }
  }
}

/**
 * Runs the expose service (public exposure, frp/ngrok style) on an existing node:http or https
 * server, next to the rendezvous service: clients reach it at the same host and port with an
 * HTTP Upgrade to `nat-expose` on `path` (default `/expose`), authenticate (users and shared
 * secrets as for TURN, or Ed25519 peer keys), and ask for public TCP or UDP ports in `ports`.
 * Each inbound public connection becomes a multiplexed (yamux) stream on the client's
 * connection. Throws ServerError BAD_CONFIG for bad options.
 */
export function attachExpose(httpServer: HttpServer, options: ExposeOptions): ExposeHandle {
  return new ExposeService(httpServer, options);
}
