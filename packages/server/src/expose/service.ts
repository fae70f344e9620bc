import { createHmac, createPublicKey, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import type { Socket as UdpSocket } from 'node:dgram';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  EXPOSE_PROTOCOL,
  EXPOSE_VERSION,
  type ExposeControlMessage,
  type ExposeRefusal,
  type ExposeRequest,
  type ExposeTransport,
  ExposedDatagramReader,
  MuxSession,
  type MuxStream,
  PasswordAlgorithm,
  type TransportAddress,
  encodeControlMessage,
  encodeExposedDatagram,
  encodeStreamPreamble,
  exposeSigningPayload,
  frameWriter,
  ipFamily,
  ipToBytes,
  peerIdFromPublicKey,
  readControlMessages,
  spliceTcp,
} from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { anonymousRelayPeer, restApiExpiry } from '../turn/auth.js';
import { type Cidr, cidrContains } from '../turn/cidr.js';
import { bindPublicPort, bindRefusal } from './bind.js';
import { ByteBudget } from './budget.js';
import { type ExposeOptions, type ResolvedExposeLimits, parseCidrs, resolveExposeLimits, resolvePortRange } from './options.js';

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
  /** Upgrades refused because their IP address already had `maxPendingPerIp` unauthenticated connections. */
  pendingRefused: number;
  /** Requests granted / refused. */
  granted: number;
  refused: number;
  /** Inbound connections refused: over the per-port limit, by a source prefix, or while the port was held. */
  connectionsOverLimit: number;
  connectionsDenied: number;
  connectionsWhileHeld: number;
  /** Inbound connections closed for idleness. */
  idleClosed: number;
  /** UDP datagrams carried each way, and dropped (a client not keeping up, or a denied source). */
  datagramsIn: number;
  datagramsOut: number;
  datagramsDropped: number;
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

/** A public port. */
interface Exposure {
  readonly key: string;
  readonly transport: ExposeTransport;
  readonly port: number;
  readonly user: string;
  session: Session | undefined;
  allow: Cidr[];
  deny: Cidr[];
  readonly tcp?: NetServer;
  readonly udp?: UdpSocket;
  udpStream?: MuxStream;
  readonly conns: Set<Socket>;
  graceTimer?: NodeJS.Timeout;
}

/** One control connection. */
interface Session {
  readonly socket: Duplex;
  readonly ip: string;
  readonly mux: MuxSession;
  readonly remote: string;
  control: MuxStream | undefined;
  nonce: string;
  user: string | undefined;
  alive: boolean;
  closed: boolean;
  authTimer: NodeJS.Timeout;
  readonly exposures: Set<Exposure>;
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
  readonly #heartbeat: NodeJS.Timeout;
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  #closing: Promise<void> | undefined;
  #pingValue = 0;
  readonly #stats: Omit<ExposeStats, 'sessions' | 'ports' | 'connections'> = {
    authenticated: 0,
    authRefused: 0,
    pendingRefused: 0,
    granted: 0,
    refused: 0,
    connectionsOverLimit: 0,
    connectionsDenied: 0,
    connectionsWhileHeld: 0,
    idleClosed: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    datagramsDropped: 0,
  };

  constructor(http: HttpServer, opts: ExposeOptions) {
    this.path = opts.path ?? '/expose';
    if (!this.path.startsWith('/') || /[?#\s]/.test(this.path)) throw new ServerError('BAD_CONFIG', `expose: bad path ${JSON.stringify(this.path)}`);
    if (ipFamily(opts.host) === undefined) throw new ServerError('BAD_CONFIG', `expose: host must be an IP address, got ${JSON.stringify(opts.host)}`);
    if (opts.peerKeys === true) throw new ServerError('BAD_CONFIG', 'expose: peerKeys: true would let any new key expose public ports; list the peer ids allowed');
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
    this.#heartbeat = setInterval(() => this.#beat(), this.#limits.heartbeatMs);
    this.#heartbeat.unref();
  }

  stats(): ExposeStats {
    let connections = 0;
    for (const e of this.#exposures.values()) connections += e.conns.size;
    return { sessions: this.#sessions.size, ports: this.#exposures.size, connections, ...this.#stats };
  }

  exposures(): ExposureInfo[] {
    return [...this.#exposures.values()].map((e) => ({ transport: e.transport, port: e.port, user: e.user, attached: e.session !== undefined, connections: e.conns.size }));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#http.off('upgrade', this.#onUpgrade);
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
    const reject = (status: string): void => {
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (!upgrade.split(',').some((t) => t.trim() === EXPOSE_PROTOCOL)) return reject('400 Bad Request');
    if (this.#closing !== undefined) return reject('503 Service Unavailable');
    if (this.#sessions.size >= this.#limits.maxSessions) return reject('503 Service Unavailable');
    const ip = req.socket.remoteAddress ?? '?';
    let pending = 0;
    for (const other of this.#sessions) if (other.user === undefined && other.ip === ip) pending++;
    if (pending >= this.#limits.maxPendingPerIp) {
      this.#stats.pendingRefused++;
      return reject('503 Service Unavailable');
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${EXPOSE_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
    const raw = socket as Socket;
    raw.setNoDelay?.(true);
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const s: Session = {
      socket,
      ip,
      remote,
      control: undefined,
      nonce: randomBytes(32).toString('base64url'),
      user: undefined,
      alive: true,
      closed: false,
      exposures: new Set(),
      authTimer: setTimeout(() => {
        if (s.user === undefined) this.#refuseSession(s, 'unauthorized', 'authentication timeout');
      }, this.#limits.authTimeoutMs),
      mux: new MuxSession({
        client: false,
        window: this.#limits.window,
        write: frameWriter(socket),
        onStream: (stream) => this.#incomingStream(s, stream),
        onPong: () => (s.alive = true),
        onClose: () => this.#endSession(s, 'mux closed'),
      }),
    };
    s.authTimer.unref();
    this.#sessions.add(s);
    socket.on('data', (c: Buffer) => {
      s.alive = true;
      s.mux.receive(c);
    });
    socket.on('drain', () => s.mux.drain());
    socket.on('error', () => {});
    socket.on('close', () => this.#endSession(s, 'connection closed'));
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
    clearTimeout(s.authTimer);
    this.#sessions.delete(s);
    s.mux.close();
    s.socket.end();
    setTimeout(() => s.socket.destroy(), 1000).unref();
    for (const e of s.exposures) this.#hold(e);
    s.exposures.clear();
    this.#log.debug({ remote: s.remote, user: s.user, reason }, 'expose: control connection ended');
  }

  #beat(): void {
    for (const s of this.#sessions) {
      if (!s.alive) {
        this.#endSession(s, 'heartbeat: no answer');
        continue;
      }
      s.alive = false;
      s.mux.ping(++this.#pingValue);
    }
  }

  #control(s: Session, m: ExposeControlMessage): void {
    if (s.user === undefined) {
      if (m.type !== 'hello') return this.#refuseSession(s, 'unauthorized', 'authenticate first (hello)');
      if (m.auth.method === 'password' && anonymousRelayPeer(m.auth.username) !== undefined) {
        return this.#refuseSession(s, 'unauthorized', 'these are anonymous relay credentials (handed out by the rendezvous): they relay only and cannot expose ports; use a user of the server operator, or a peer key the operator listed');
      }
      const user = this.#authenticate(s, m);
      if (user === undefined) return this.#refuseSession(s, 'unauthorized', 'bad credentials');
      s.user = user;
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
    let owned = 0;
    for (const e of this.#exposures.values()) if (e.user === user) owned++;
    if (owned >= this.#limits.portsPerUser) return this.#refuse(s, m, 'over-quota', `${user} already holds ${owned} ports (at most ${this.#limits.portsPerUser})`);
    const candidates: number[] = [];
    if (m.port !== undefined) candidates.push(m.port);
    else {
      const span = max - min + 1;
      const start = Math.floor(Math.random() * span);
      for (let i = 0; i < span && candidates.length < 64; i++) {
        const p = min + ((start + i) % span);
        if (!this.#exposures.has(keyOf(m.transport, p))) candidates.push(p);
      }
    }
    let errno: string | undefined;
    for (const port of candidates) {
      const key = keyOf(m.transport, port);
      const { tcp, udp, error } = await bindPublicPort(m.transport, this.#opts.host, port);
      if (error !== undefined) errno = error;
      if (tcp === undefined && udp === undefined) continue;
      if (s.closed || this.#exposures.has(key) || this.#closing !== undefined) {
        // The session went away, or another request won the port while binding.
        tcp?.close();
        udp?.close();
        if (s.closed || this.#closing !== undefined) return;
        continue;
      }
      const e: Exposure = { key, transport: m.transport, port, user, session: undefined, allow, deny, conns: new Set(), ...(tcp ? { tcp } : {}), ...(udp ? { udp } : {}) };
      this.#exposures.set(key, e);
      if (tcp) tcp.on('connection', (c) => this.#inbound(e, c));
      if (udp) udp.on('message', (msg, rinfo) => this.#datagram(e, msg, addressOf(rinfo.address, rinfo.port)));
      this.#attach(e, s, allow, deny);
      return this.#grant(s, m, e);
    }
    if (m.port === undefined) return this.#refuse(s, m, 'unavailable', `no free ${m.transport} port in ${min}-${max}`);
    // Bound by the operating system's refusal, or won by another user's request while binding.
    const r = errno !== undefined ? bindRefusal(m.transport, m.port, errno) : { code: 'taken' as const, message: `${m.transport} port ${m.port} is held by another user of this server` };
    this.#refuse(s, m, r.code, r.message);
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
    if (this.#exposures.get(e.key) === e) this.#exposures.delete(e.key);
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

  #sourceAllowed(e: Exposure, ip: string): boolean {
    if (this.#deny.length === 0 && e.deny.length === 0 && e.allow.length === 0) return true;
    let bytes: Uint8Array;
    try {
      bytes = ipToBytes(ip);
    } catch {
      return false;
    }
    if (this.#deny.some((c) => cidrContains(c, bytes)) || e.deny.some((c) => cidrContains(c, bytes))) return false;
    return e.allow.length === 0 || e.allow.some((c) => cidrContains(c, bytes));
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
    if (!this.#sourceAllowed(e, source.address)) {
      this.#stats.connectionsDenied++;
      socket.resetAndDestroy();
      return;
    }
    if (e.conns.size >= this.#limits.connectionsPerPort) {
      this.#stats.connectionsOverLimit++;
      socket.resetAndDestroy();
      return;
    }
    e.conns.add(socket);
    socket.on('close', () => e.conns.delete(socket));
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
    if (stream === undefined || stream.destroyed || stream.writableNeedDrain || !this.#sourceAllowed(e, from.address)) {
      this.#stats.datagramsDropped++;
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
