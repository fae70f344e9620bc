import { createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type Cidr,
  EXPOSE_PROTOCOL,
  EXPOSE_VERSION,
  type ExposeControlMessage,
  type ExposeRefusal,
  type ExposeRequest,
  type ExposeTransport,
  ExposedDatagramReader,
  type MuxStream,
  PasswordAlgorithm,
  type TransportAddress,
  anonymousRelayPeer,
  encodeControlMessage,
  encodeExposedDatagram,
  encodeStreamPreamble,
  exposeSigningPayload,
  ipFamily,
  peerIdFromPublicKey,
  readControlMessages,
  restApiExpiry,
  spliceTcp,
  sourceKey,
} from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { bindPublicPort, bindRefusal } from './bind.js';
import { ByteBudget } from './budget.js';
import { type ExposeOptions, type ResolvedExposeLimits, parseCidrs, resolveExposeLimits, resolvePortRange } from './options.js';
import { type Exposure, type Session, closeSession, heartbeat, sourceAllowed, startSession } from './session.js';
import { ShareCounter } from './shares.js';
import { UdpFlowShares } from './udp-flows.js';

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

/** One public port as {@link ExposeHandle.exposures} lists it. */
export interface ExposureInfo {
  readonly transport: ExposeTransport;
  readonly port: number;
  readonly user: string;
  /** False while held for a disconnected client. */
  readonly attached: boolean;
  readonly connections: number;
}

/** An embedded expose service (see {@link attachExpose}). */
export interface ExposeHandle {
  readonly path: string;
  stats(): ExposeStats;
  exposures(): ExposureInfo[];
  /** Closes every control connection and public port; the HTTP server is left alone. Idempotent. */
  close(): Promise<void>;
}

const keyOf = (t: ExposeTransport, port: number): string => `${t}:${port}`;

function addressOf(ip: string | undefined, port: number | undefined): TransportAddress {
  const address = (ip ?? '0.0.0.0').replace(/^::ffff:(?=\d+\.)/, '');
  return { family: ipFamily(address) ?? 'IPv4', address, port: port ?? 0 };
}

class ExposeService implements ExposeHandle {
  readonly path: string;
  readonly #http: HttpServer;
  readonly #opts: ExposeOptions;
  readonly #limits: ResolvedExposeLimits;
  readonly #range: { min: number; max: number };
  readonly #realm: string;
  readonly #publicIp: string;
  readonly #deny: Cidr[];
  readonly #log: Logger;
  readonly #sessions = new Set<Session>();
  readonly #exposures = new Map<string, Exposure>();
  readonly #budgets = new Map<string, ByteBudget>();
  /** Control connections per source, ports per user (bound and being bound). */
  readonly #sessionShares = new ShareCounter();
  readonly #ports = new ShareCounter();
  /** Ports being bound now (`tcp:20001`): another request skips them. */
  readonly #binding = new Set<string>();
  /** When each TCP connection of the HTTP server was accepted (performance.now()): the authentication deadline counts from there. */
  readonly #accepted = new WeakMap<object, number>();
  readonly #onConnection = (socket: object): void => void this.#accepted.set(socket, performance.now());
  readonly #heartbeat: NodeJS.Timeout;
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  #closing: Promise<void> | undefined;
  #pingValue = 0;
  readonly #stats: Omit<ExposeStats, 'sessions' | 'ports' | 'connections'> = {
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

  constructor(http: HttpServer, opts: ExposeOptions) {
    this.path = opts.path ?? '/expose';
    if (!this.path.startsWith('/') || /[?#\s]/.test(this.path)) throw new ServerError('BAD_CONFIG', `expose: bad path ${JSON.stringify(this.path)}`);
    if (ipFamily(opts.host) === undefined) throw new ServerError('BAD_CONFIG', `expose: host must be an IP address, got ${JSON.stringify(opts.host)}`);
    if (opts.peerKeys === true)
      throw new ServerError('BAD_CONFIG', 'expose: peerKeys: true would let any new key expose public ports; list the peer ids allowed');
    if (opts.auth === undefined && !opts.peerKeys) throw new ServerError('BAD_CONFIG', 'expose: give users or shared secrets (auth), or accept peer keys');
    this.#http = http;
    this.#opts = opts;
    this.#limits = resolveExposeLimits(opts.limits);
    this.#range = resolvePortRange(opts.ports);
    this.#realm = opts.realm ?? 'nat-expose';
    this.#publicIp = opts.publicIp ?? opts.host;
    this.#deny = parseCidrs(opts.denySources);
    this.#log = opts.logger ?? silentLogger;
    this.#onUpgrade = (req, socket, head) => this.#upgrade(req, socket, head);
    http.on('upgrade', this.#onUpgrade);
    http.on('connection', this.#onConnection);
    http.on('secureConnection', this.#onConnection); // https: req.socket is the TLS socket
    this.#heartbeat = setInterval(() => this.#beat(), this.#limits.heartbeatMs);
    this.#heartbeat.unref();
  }

  stats(): ExposeStats {
    let connections = 0;
    for (const e of this.#exposures.values()) connections += e.conns.size;
    return { sessions: this.#sessions.size, ports: this.#exposures.size, connections, ...this.#stats };
  }

  exposures(): ExposureInfo[] {
    return [...this.#exposures.values()].map((e) => ({
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
      this.#http.off('connection', this.#onConnection);
      this.#http.off('secureConnection', this.#onConnection);
      clearInterval(this.#heartbeat);
      for (const s of [...this.#sessions]) this.#endSession(s, 'shutting down');
      await Promise.all([...this.#exposures.values()].map((e) => this.#release(e)));
    })();
    return this.#closing;
  }

  // ---- control connections

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if ((req.url ?? '/').split('?')[0] !== this.path) {
      // Another listener's path. The rendezvous service answers 404 only when it is the sole
      // listener; once this one is attached too, an upgrade that no listener took is refused
      // here, after every listener had its turn, instead of hanging.
      setImmediate(() => {
        if (!socket.destroyed && (socket as Socket).bytesWritten === 0) {
          socket.on('error', () => {});
          socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        }
      });
      return;
    }
    const reject = (status: string, why = ''): void => {
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(why)}\r\n\r\n${why}`);
    };
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (!upgrade.split(',').some((t) => t.trim() === EXPOSE_PROTOCOL)) return reject('400 Bad Request');
    if (this.#closing !== undefined) return reject('503 Service Unavailable', 'the expose service is shutting down');
    if (this.#sessions.size >= this.#limits.maxSessions)
      return reject('503 Service Unavailable', `the expose service holds ${this.#sessions.size} control connections (at most ${this.#limits.maxSessions})`);
    const ip = req.socket.remoteAddress ?? '?';
    const source = sourceKey(ip);
    let pending = 0;
    for (const other of this.#sessions) if (other.user === undefined && other.source === source) pending++;
    if (pending >= this.#limits.maxPendingPerIp) {
      this.#stats.pendingRefused++;
      this.#log.debug({ source, pending }, 'expose: upgrade refused, too many unauthenticated connections from one source');
      return reject(
        '503 Service Unavailable',
        `${pending} unauthenticated expose connections from your address already (at most ${this.#limits.maxPendingPerIp})`,
      );
    }
    if (!this.#sessionShares.take(source, this.#limits.sessionsPerSource)) {
      this.#stats.sessionsOverShare++;
      this.#log.debug({ source, share: this.#limits.sessionsPerSource }, 'expose: upgrade refused, source over its share of sessions');
      return reject(
        '503 Service Unavailable',
        `${this.#limits.sessionsPerSource} expose control connections from your address already (its share of this server)`,
      );
    }
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
        if (session.user === undefined) this.#refuseSession(session, 'unauthorized', 'authentication timeout');
      },
    });
    this.#sessions.add(s);
    if (head.length > 0) s.mux.receive(head);
  }

  #incomingStream(s: Session, stream: MuxStream): void {
    stream.on('error', () => {});
    if (s.control !== undefined) {
      stream.destroy(); // only the control stream may be opened by a client
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
    this.#send(s, { v: EXPOSE_VERSION, type: 'challenge', nonce: s.nonce, realm: this.#realm });
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
    for (const e of s.exposures) this.#hold(e);
    s.exposures.clear();
    this.#log.debug({ remote: s.remote, user: s.user, reason }, 'expose: control connection ended');
  }

  #beat(): void {
    for (const s of this.#sessions) if (!heartbeat(s, ++this.#pingValue)) this.#endSession(s, 'heartbeat: no answer');
    const now = performance.now();
    for (const e of this.#exposures.values()) e.flows?.sweep(now);
  }

  #control(s: Session, m: ExposeControlMessage): void {
    if (s.user === undefined) {
      if (m.type !== 'hello') return this.#refuseSession(s, 'unauthorized', 'authenticate first (hello)');
      if (m.auth.method === 'password' && anonymousRelayPeer(m.auth.username) !== undefined) {
        return this.#refuseSession(
          s,
          'unauthorized',
          'these are anonymous relay credentials (handed out by the rendezvous): they relay only and cannot expose ports; use a user of the server operator, or a peer key the operator listed',
        );
      }
      const user = this.#authenticate(s, m);
      if (user === undefined) return this.#refuseSession(s, 'unauthorized', 'bad credentials');
      s.user = user;
      s.gate.authenticated = true;
      clearTimeout(s.authTimer);
      this.#stats.authenticated++;
      this.#send(s, { v: EXPOSE_VERSION, type: 'welcome', user, publicIp: this.#publicIp });
      return;
    }
    switch (m.type) {
      case 'expose':
        void this.#request(s, m);
        return;
      case 'unexpose': {
        const e = this.#exposures.get(keyOf(m.transport, m.port));
        if (e !== undefined && e.session === s) {
          s.exposures.delete(e);
          void this.#release(e);
        }
        return;
      }
      default:
        this.#refuseSession(s, 'bad-message', `a client does not send ${m.type}`);
    }
  }

  #authenticate(s: Session, m: Extract<ExposeControlMessage, { type: 'hello' }>): string | undefined {
    const a = m.auth;
    if (a.method === 'password') {
      if (this.#opts.auth === undefined) return undefined;
      const payload = exposeSigningPayload(s.nonce, a.username);
      const given = Buffer.from(a.mac, 'base64url');
      for (const key of this.#opts.auth.keys(a.username, this.#realm, PasswordAlgorithm.SHA256, Date.now())) {
        const want = createHmac('sha256', key).update(payload).digest();
        if (want.length === given.length && timingSafeEqual(want, given)) {
          // A REST API username is `expiry:user`: quotas belong to the user, not to one credential.
          return restApiExpiry(a.username) === undefined ? a.username : a.username.slice(a.username.indexOf(':') + 1) || a.username;
        }
      }
      return undefined;
    }
    const allowed = this.#opts.peerKeys;
    if (!allowed) return undefined;
    const peerId = peerIdFromPublicKey(Buffer.from(a.publicKey, 'base64url'));
    if (Array.isArray(allowed) && !allowed.includes(peerId)) return undefined;
    try {
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: a.publicKey }, format: 'jwk' });
      if (!verify(null, exposeSigningPayload(s.nonce, peerId), key, Buffer.from(a.signature, 'base64url'))) return undefined;
    } catch {
      return undefined;
    }
    return `peer:${peerId}`;
  }

  #refuse(s: Session, m: ExposeRequest, code: ExposeRefusal, message: string): void {
    this.#stats.refused++;
    this.#log.debug({ user: s.user, source: s.source, code }, 'expose: request refused');
    this.#send(s, { v: EXPOSE_VERSION, type: 'refused', ref: m.id, code, message });
  }

  async #request(s: Session, m: ExposeRequest): Promise<void> {
    const user = s.user!;
    const { min, max } = this.#range;
    let allow: Cidr[];
    let deny: Cidr[];
    try {
      allow = parseCidrs(m.allow);
      deny = parseCidrs(m.deny);
    } catch (e) {
      return this.#refuse(s, m, 'bad-message', (e as Error).message);
    }
    if (m.port !== undefined) {
      if (m.port < min || m.port > max) return this.#refuse(s, m, 'out-of-range', `port ${m.port} is outside this server's range ${min}-${max}`);
      const existing = this.#exposures.get(keyOf(m.transport, m.port));
      if (existing !== undefined) {
        if (existing.user !== user) return this.#refuse(s, m, 'taken', `${m.transport} port ${m.port} is held by another user of this server`);
        // The same user again (a reconnect, or a newer connection): it gets the port back.
        this.#attach(existing, s, allow, deny);
        return this.#grant(s, m, existing);
      }
    }
    // Reserved now, before any await: requests of one write cannot all pass the check first.
    if (!this.#ports.take(user, this.#limits.portsPerUser)) {
      return this.#refuse(s, m, 'over-quota', `${user} already holds ${this.#ports.count(user)} ports (at most ${this.#limits.portsPerUser})`);
    }
    if ((await this.#bindNew(s, m, user, allow, deny)) === undefined) this.#ports.give(user);
  }

  /** Binds a new public port for a request whose quota is reserved; undefined when none was bound (refused, or the session went away). */
  async #bindNew(s: Session, m: ExposeRequest, user: string, allow: Cidr[], deny: Cidr[]): Promise<Exposure | undefined> {
    const { min, max } = this.#range;
    const free = (p: number): boolean => !this.#exposures.has(keyOf(m.transport, p)) && !this.#binding.has(keyOf(m.transport, p));
    const candidates: number[] = [];
    if (m.port !== undefined) candidates.push(m.port);
    else {
      const span = max - min + 1;
      const start = Math.floor(Math.random() * span);
      for (let i = 0; i < span && candidates.length < 64; i++) if (free(min + ((start + i) % span))) candidates.push(min + ((start + i) % span));
    }
    let errno: string | undefined;
    for (const port of candidates) {
      const key = keyOf(m.transport, port);
      if (this.#binding.has(key)) continue; // another request of this server is binding it now
      this.#binding.add(key);
      const { tcp, udp, error } = await bindPublicPort(m.transport, this.#opts.host, port).finally(() => this.#binding.delete(key));
      if (error !== undefined) errno = error;
      if (tcp === undefined && udp === undefined) continue;
      if (s.closed || this.#exposures.has(key) || this.#closing !== undefined) {
        // The session went away, or another request won the port while binding.
        tcp?.close();
        udp?.close();
        if (s.closed || this.#closing !== undefined) return undefined;
        continue;
      }
      const e: Exposure = {
        key,
        transport: m.transport,
        port,
        user,
        session: undefined,
        allow,
        deny,
        conns: new Set(),
        sources: new ShareCounter(),
        ...(udp ? { flows: new UdpFlowShares(this.#limits.connectionsPerSource) } : {}),
        ...(tcp ? { tcp } : {}),
        ...(udp ? { udp } : {}),
      };
      this.#exposures.set(key, e);
      if (tcp) tcp.on('connection', (c) => this.#inbound(e, c));
      if (udp) udp.on('message', (msg, rinfo) => this.#datagram(e, msg, addressOf(rinfo.address, rinfo.port)));
      this.#attach(e, s, allow, deny);
      this.#grant(s, m, e);
      return e;
    }
    if (m.port === undefined) return void this.#refuse(s, m, 'unavailable', `no free ${m.transport} port in ${min}-${max}`);
    // Bound by the operating system's refusal, or won (or being bound) by another request.
    const r =
      errno !== undefined
        ? bindRefusal(m.transport, m.port, errno)
        : { code: 'taken' as const, message: `${m.transport} port ${m.port} is held by another user of this server` };
    this.#refuse(s, m, r.code, r.message);
    return undefined;
  }

  #grant(s: Session, m: ExposeRequest, e: Exposure): void {
    this.#stats.granted++;
    const host = ipFamily(this.#publicIp) === 'IPv6' ? `[${this.#publicIp}]` : this.#publicIp;
    this.#send(s, { v: EXPOSE_VERSION, type: 'exposed', ref: m.id, transport: e.transport, port: e.port, address: `${host}:${e.port}` });
    this.#log.info({ user: e.user, transport: e.transport, port: e.port }, 'expose: port granted');
  }

  #attach(e: Exposure, s: Session, allow: Cidr[], deny: Cidr[]): void {
    clearTimeout(e.graceTimer);
    e.graceTimer = undefined;
    if (e.session !== undefined && e.session !== s) e.session.exposures.delete(e);
    e.session = s;
    e.allow = allow;
    e.deny = deny;
    s.exposures.add(e);
    if (e.udp !== undefined) this.#openUdpStream(e, s);
  }

  /** The client went away: the port stays bound, for it alone, for the grace period. */
  #hold(e: Exposure): void {
    e.session = undefined;
    e.udpStream = undefined;
    clearTimeout(e.graceTimer);
    e.graceTimer = setTimeout(() => void this.#release(e), this.#limits.graceMs);
    e.graceTimer.unref();
  }

  async #release(e: Exposure): Promise<void> {
    clearTimeout(e.graceTimer);
    if (this.#exposures.get(e.key) === e) {
      this.#exposures.delete(e.key);
      this.#ports.give(e.user);
    }
    e.session?.exposures.delete(e);
    e.session = undefined;
    for (const c of e.conns) c.destroy();
    e.udpStream?.destroy();
    await new Promise<void>((resolve) => {
      if (e.tcp) e.tcp.close(() => resolve());
      else if (e.udp) e.udp.close(() => resolve());
      else resolve();
    });
  }

  #meter(user: string): ((n: number) => number) | undefined {
    const rate = this.#limits.bandwidthPerUser;
    if (rate === 0) return undefined;
    let b = this.#budgets.get(user);
    if (b === undefined) {
      b = new ByteBudget(rate, performance.now());
      this.#budgets.set(user, b);
    }
    const budget = b;
    return (n) => budget.consume(n, performance.now());
  }

  // ---- public side

  #inbound(e: Exposure, socket: Socket): void {
    socket.on('error', () => {});
    const source = addressOf(socket.remoteAddress, socket.remotePort);
    const s = e.session;
    if (s === undefined || s.mux.closed) {
      this.#stats.connectionsWhileHeld++;
      socket.destroy();
      return;
    }
    if (!sourceAllowed(this.#deny, e, source.address)) {
      this.#stats.connectionsDenied++;
      socket.resetAndDestroy();
      return;
    }
    if (e.conns.size >= this.#limits.connectionsPerPort) {
      this.#stats.connectionsOverLimit++;
      socket.resetAndDestroy();
      return;
    }
    const from = sourceKey(source.address);
    if (!e.sources.take(from, this.#limits.connectionsPerSource)) {
      this.#stats.connectionsOverShare++;
      this.#log.debug(
        { port: e.port, source: from, share: this.#limits.connectionsPerSource },
        'expose: inbound connection refused, source over its share of the port',
      );
      socket.resetAndDestroy();
      return;
    }
    e.conns.add(socket);
    socket.on('close', () => {
      e.conns.delete(socket);
      e.sources.give(from);
    });
    socket.setTimeout(this.#limits.idleTimeoutMs, () => {
      this.#stats.idleClosed++;
      socket.destroy();
    });
    let stream: MuxStream;
    try {
      stream = s.mux.open();
    } catch {
      socket.destroy();
      return;
    }
    stream.write(encodeStreamPreamble({ kind: 'tcp', publicPort: e.port, source, destination: addressOf(socket.localAddress, socket.localPort) }));
    const meter = this.#meter(e.user);
    spliceTcp(socket, stream, meter === undefined ? {} : { meterUp: meter, meterDown: meter });
  }

  #openUdpStream(e: Exposure, s: Session): void {
    e.udpStream?.destroy();
    let stream: MuxStream;
    try {
      stream = s.mux.open();
    } catch {
      return;
    }
    e.udpStream = stream;
    stream.on('error', () => {});
    const local = addressOf(this.#opts.host, e.port);
    stream.write(encodeStreamPreamble({ kind: 'udp', publicPort: e.port, source: local, destination: local }));
    const reader = new ExposedDatagramReader();
    stream.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (to, payload) => {
          this.#stats.datagramsOut++;
          const meter = this.#meter(e.user);
          if (meter !== undefined && meter(payload.length) > 0) {
            this.#stats.datagramsDropped++;
            return;
          }
          e.udp?.send(payload, to.port, to.address);
        });
      } catch {
        stream.destroy();
      }
    });
    stream.on('close', () => {
      if (e.udpStream === stream) e.udpStream = undefined;
    });
  }

  #datagram(e: Exposure, msg: Buffer, from: TransportAddress): void {
    const stream = e.udpStream;
    // UDP keeps its semantics: a datagram the client cannot take now is dropped, not queued.
    if (stream === undefined || stream.destroyed || stream.writableNeedDrain || !sourceAllowed(this.#deny, e, from.address)) {
      this.#stats.datagramsDropped++;
      return;
    }
    if (e.flows !== undefined && !e.flows.admit(from.address, from.port, performance.now())) {
      this.#stats.datagramsDropped++;
      this.#stats.datagramsOverShare++;
      return;
    }
    const meter = this.#meter(e.user);
    if (meter !== undefined && meter(msg.length) > 0) {
      this.#stats.datagramsDropped++;
      return;
    }
    this.#stats.datagramsIn++;
    stream.write(encodeExposedDatagram(from, msg));
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
