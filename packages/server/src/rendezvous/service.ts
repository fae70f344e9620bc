import { type KeyObject, createPublicKey, randomBytes, verify } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  sourceKey,
  RENDEZVOUS_CLOSE_CODES,
  type ClaimNameMessage,
  type ErrorMessage,
  type RegisterMessage,
  type ResolveNameMessage,
  SIGNALLING_DIRECTIONS,
  SIGNALLING_VERSION,
  type SignallingErrorCode,
  type SignallingIceServer,
  type SignallingMessage,
  anonymousRelayCredentials,
  encodeSignallingMessage,
  peerIdFromPublicKey,
  registerSigningPayload,
  tryDecodeSignallingMessage,
} from '@nat/protocol';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { type Logger, silentLogger } from '../logger.js';
import { Admission } from './admission.js';
import { isGateListener } from './gate.js';
import { type ClaimRefusal, NameTable } from './names.js';
import { type RendezvousOptions, type ResolvedLimits, type ResolvedTurn, resolveIceServers, resolveLimits, resolvePath, resolveTurn } from './options.js';
import { type RelayScope, plainIp, recordSignalledCandidates } from './scope.js';
import type { RendezvousStats } from './stats.js';
import { TokenBucket } from './token-bucket.js';

/** An embedded rendezvous service (see {@link attachRendezvous}). */
export interface RendezvousHandle {
  /** The HTTP path it answers WebSocket upgrades on. */
  readonly path: string;
  /** Counters. */
  stats(): RendezvousStats;
  /**
   * Stops answering upgrades, closes every connection (1001) and stops the heartbeat; the HTTP
   * server itself is left alone. Idempotent.
   */
  close(): Promise<void>;
}

/** The ws text of a message the server sends (validated by the protocol's encoder). */
function encode(message: SignallingMessage): string {
  return encodeSignallingMessage(message);
}

const CLAIM_REFUSED: Record<ClaimRefusal, string> = {
  taken: 'belongs to another peer',
  'per-peer': 'cannot be claimed: this key holds the most names it may',
  'per-source': 'cannot be claimed: too many names claimed from this address lately; try later',
  full: 'cannot be claimed: the name table of this rendezvous is full',
};

const RELAYED = new Set(
  Object.entries(SIGNALLING_DIRECTIONS)
    .filter(([, d]) => d === 'relayed')
    .map(([t]) => t),
);

/** One connection, from the upgrade to the close. */
class Connection {
  /** The challenge nonce; single-use: cleared once a `register` has been checked. */
  nonce: string | undefined = randomBytes(32).toString('base64url');
  peerId: string | undefined;
  alive = true;
  dropped = 0;
  closed = false;
  registerTimer: NodeJS.Timeout | undefined;
  readonly bucket: TokenBucket;
  constructor(
    readonly ws: WebSocket,
    readonly ip: string,
    readonly remote: string,
    limits: ResolvedLimits,
  ) {
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.burst, performance.now());
  }
}

/** The service behind {@link attachRendezvous}: presence, registration and relaying. */
class RendezvousService implements RendezvousHandle {
  readonly path: string;
  readonly #limits: ResolvedLimits;
  readonly #turn: ResolvedTurn | undefined;
  readonly #iceServers: readonly SignallingIceServer[];
  readonly #log: Logger;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  /** WebSocket connections per source address (IPv6: /64). */
  readonly #perSource = new Map<string, number>();
  /** Live presence. */
  readonly #peers = new Map<string, Connection>();
  /** Claimed names, kept while their owner comes back within `nameTtlMs`; only the owner's key re-claims one. */
  readonly #names: NameTable;
  readonly #admission: Admission;
  readonly #scope: RelayScope | undefined;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #http: HttpServer;
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  #closing: Promise<void> | undefined;
  readonly #stats: Omit<RendezvousStats, 'connections' | 'registered' | 'names'> = {
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
    this.#turn = resolveTurn(options.turn);
    this.#iceServers = resolveIceServers(options.iceServers, this.#turn);
    this.#log = options.logger ?? silentLogger;
    this.#names = new NameTable(this.#limits);
    this.#admission = new Admission(options.admission);
    this.#scope = options.scope;
    this.#http = http;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#limits.maxMessageBytes, perMessageDeflate: false, clientTracking: false });
    this.#onUpgrade = (req, socket, head) => this.#upgrade(req, socket, head);
    http.on('upgrade', this.#onUpgrade);
    this.#heartbeat = setInterval(() => this.#beat(), this.#limits.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  stats(): RendezvousStats {
    return { connections: this.#connections.size, registered: this.#peers.size, names: this.#names.size, ...this.#stats };
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
      if (this.#http.listeners('upgrade').filter((l) => !isGateListener(l)).length === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
      return;
    }
    if (this.#closing !== undefined) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (!this.#admission.tokenOk(req)) {
      this.#stats.admissionRefused++;
      this.#log.info({ remote: req.socket.remoteAddress }, 'rendezvous: upgrade without a valid invite token refused');
      const body = 'this rendezvous needs an invite token (nat: --rendezvous-token or NAT_RENDEZVOUS_TOKEN)\n';
      socket.end(`HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const source = sourceKey(req.socket.remoteAddress ?? '?');
    const fromSource = this.#perSource.get(source) ?? 0;
    if (this.#connections.size >= this.#limits.maxConnections || fromSource >= this.#limits.maxConnectionsPerSource) {
      if (fromSource >= this.#limits.maxConnectionsPerSource) this.#stats.refusedSourceShare++;
      else this.#stats.refusedConnections++;
      ws.on('error', () => {});
      ws.close(1013, fromSource >= this.#limits.maxConnectionsPerSource ? 'too many connections from this address' : 'too many connections');
      return;
    }
    const c = new Connection(ws, plainIp(req.socket.remoteAddress ?? '') ?? '?', remote, this.#limits);
    this.#connections.add(c);
    this.#perSource.set(source, fromSource + 1);
    ws.once('close', () => {
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left <= 0) this.#perSource.delete(source);
      else this.#perSource.set(source, left);
    });
    ws.on('message', (data, isBinary) => this.#message(c, data, isBinary));
    ws.on('pong', () => (c.alive = true));
    ws.on('error', (error) => this.#log.debug({ remote, err: error.message }, 'rendezvous connection error'));
    ws.on('close', () => this.#closed(c));
    c.registerTimer = setTimeout(() => {
      if (c.peerId !== undefined || c.closed) return;
      this.#stats.registerTimeouts++;
      this.#drop(c, RENDEZVOUS_CLOSE_CODES.registerTimeout, 'registration timeout');
    }, this.#limits.registerTimeoutMs);
    c.registerTimer.unref();
    this.#send(c, { v: SIGNALLING_VERSION, type: 'challenge', nonce: c.nonce! });
  }

  /** Ends a connection on the server's initiative: presence goes at once, not after the close handshake. */
  #drop(c: Connection, code: number, reason: string): void {
    this.#closed(c);
    if (code === 0) c.ws.terminate();
    else c.ws.close(code, reason);
  }

  #closed(c: Connection): void {
    c.closed = true;
    clearTimeout(c.registerTimer);
    this.#connections.delete(c);
    if (c.peerId !== undefined && this.#peers.get(c.peerId) === c) {
      this.#peers.delete(c.peerId);
      this.#log.debug({ peerId: c.peerId }, 'rendezvous peer left');
    }
  }

  #beat(): void {
    for (const c of this.#connections) {
      if (!c.alive) {
        this.#stats.heartbeatDrops++;
        this.#log.debug({ remote: c.remote, peerId: c.peerId }, 'rendezvous heartbeat: dropping dead connection');
        this.#drop(c, 0, '');
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  #send(c: Connection, message: SignallingMessage): void {
    if (c.ws.readyState !== c.ws.OPEN) return;
    c.ws.send(encode(message));
  }

  #error(c: Connection, code: SignallingErrorCode, text: string, ref: string | undefined): void {
    const message: ErrorMessage = { v: SIGNALLING_VERSION, type: 'error', code, message: text };
    if (ref !== undefined) message.ref = ref;
    this.#send(c, message);
  }

  #message(c: Connection, data: RawData, isBinary: boolean): void {
    if (c.closed) return;
    c.alive = true;
    if (!c.bucket.take(performance.now())) {
      this.#stats.rateLimited++;
      c.dropped++;
      if (c.dropped === 1) this.#error(c, 'rate-limited', 'too many messages: slow down', undefined);
      if (c.dropped > this.#limits.maxDropped) {
        this.#stats.rateLimitDisconnects++;
        this.#log.info({ remote: c.remote, peerId: c.peerId }, 'rendezvous: closing a connection over its rate limit');
        this.#drop(c, RENDEZVOUS_CLOSE_CODES.rateLimited, 'rate limit');
      }
      return;
    }
    c.dropped = 0;
    if (isBinary) {
      this.#stats.badMessages++;
      this.#error(c, 'bad-message', 'signalling messages are text frames', undefined);
      return;
    }
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    const parsed = tryDecodeSignallingMessage(text, { maxBytes: this.#limits.maxMessageBytes });
    if (!parsed.ok) {
      this.#stats.badMessages++;
      this.#error(c, parsed.code, parsed.error.message.slice(0, 512), parsed.ref);
      return;
    }
    const m = parsed.message;
    const direction = SIGNALLING_DIRECTIONS[m.type];
    if (direction === 'server-to-client') {
      this.#stats.badMessages++;
      this.#error(c, 'bad-message', `a client does not send ${m.type}`, m.id);
      return;
    }
    switch (m.type) {
      case 'ping':
        this.#send(c, m.id === undefined ? { v: SIGNALLING_VERSION, type: 'pong' } : { v: SIGNALLING_VERSION, type: 'pong', ref: m.id });
        return;
      case 'pong':
        return;
      case 'register':
        this.#register(c, m);
        return;
      case 'claim-name':
      case 'resolve-name':
        this.#name(c, m);
        return;
      default:
        if (RELAYED.has(m.type) && 'from' in m) this.#relay(c, m, text);
    }
  }

  #register(c: Connection, m: RegisterMessage): void {
    if (c.peerId !== undefined) {
      this.#stats.badMessages++;
      this.#error(c, 'bad-message', 'already registered', m.id);
      return;
    }
    const nonce = c.nonce;
    c.nonce = undefined; // single use: one attempt per challenge
    const publicKey = Buffer.from(m.publicKey, 'base64url');
    const peerId = peerIdFromPublicKey(publicKey);
    let ok = false;
    if (nonce !== undefined) {
      try {
        const key: KeyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: m.publicKey }, format: 'jwk' });
        ok = verify(null, registerSigningPayload(nonce, peerId), key, Buffer.from(m.signature, 'base64url'));
      } catch {
        ok = false; // a key OpenSSL refuses is as bad as a bad signature
      }
    }
    if (!ok) {
      this.#stats.registrationsRefused++;
      this.#log.debug({ remote: c.remote }, 'rendezvous: register refused');
      this.#error(c, 'unauthorized', 'the signature does not verify for this challenge and key', m.id);
      this.#drop(c, RENDEZVOUS_CLOSE_CODES.unauthorized, 'unauthorized');
      return;
    }
    if (!this.#admission.keyOk(peerId)) {
      this.#stats.admissionRefused++;
      this.#log.info({ remote: c.remote, peerId }, 'rendezvous: a key not on the list tried to register');
      this.#error(c, 'unauthorized', 'this rendezvous admits only the keys its operator listed', m.id);
      this.#drop(c, RENDEZVOUS_CLOSE_CODES.unauthorized, 'unauthorized');
      return;
    }
    clearTimeout(c.registerTimer);
    const previous = this.#peers.get(peerId);
    if (previous !== undefined && previous !== c) {
      // Newest wins: the holder of the key reconnected (a new network, a restart) and the old
      // connection is most likely dead. Only the key's holder can do this.
      this.#stats.replaced++;
      this.#drop(previous, RENDEZVOUS_CLOSE_CODES.replaced, 'replaced by a newer connection');
    }
    c.peerId = peerId;
    this.#peers.set(peerId, c);
    this.#names.touch(peerId, Date.now());
    this.#stats.registrations++;
    this.#log.debug({ peerId, remote: c.remote }, 'rendezvous peer registered');
    this.#send(c, this.#registered(peerId, m.id));
  }

  #name(c: Connection, m: ClaimNameMessage | ResolveNameMessage): void {
    if (c.peerId === undefined) {
      this.#stats.unauthorized++;
      this.#error(c, 'unauthorized', 'register first', m.id);
      return;
    }
    let owner: string | undefined;
    if (m.type === 'claim-name') {
      const refused = this.#names.claim(m.name, c.peerId, c.ip, Date.now());
      if (refused !== undefined) {
        this.#stats.nameClaimsRefused++;
        this.#log.debug({ peerId: c.peerId, remote: c.remote, cause: refused }, 'rendezvous: name claim refused');
        return this.#error(c, 'name-taken', `the name ${m.name} ${CLAIM_REFUSED[refused]}`, m.id);
      }
      owner = c.peerId;
    } else if ((owner = this.#names.ownerOf(m.name, Date.now())) === undefined) {
      return this.#error(c, 'unknown-name', `nobody claimed the name ${m.name}`, m.id);
    }
    const online = this.#peers.get(owner)?.ws.readyState === 1;
    this.#send(c, { v: SIGNALLING_VERSION, type: 'name', ...(m.id === undefined ? {} : { ref: m.id }), name: m.name, peerId: owner, online });
  }

  #registered(peerId: string, ref: string | undefined): SignallingMessage {
    const iceServers: SignallingIceServer[] = [];
    let ttl: number | undefined;
    if (this.#turn !== undefined) {
      const t = this.#turn;
      if (t.stunUrls.length > 0) iceServers.push({ urls: [...t.stunUrls] });
      // The anonymous tier: relay only, toward what this peer's sessions signal (see RelayTiers).
      const cred = anonymousRelayCredentials(t.secret, peerId, t.ttl, Date.now());
      iceServers.push({ urls: [...t.turnUrls], username: cred.username, credential: cred.password });
      ttl = t.ttl;
    }
    iceServers.push(...this.#iceServers);
    return {
      v: SIGNALLING_VERSION,
      type: 'registered',
      ...(ref === undefined ? {} : { ref }),
      peerId,
      ...(iceServers.length > 0 ? { iceServers } : {}),
      ...(ttl === undefined ? {} : { ttl }),
    };
  }

  #relay(c: Connection, m: SignallingMessage & { from: string; to: string }, text: string): void {
    if (c.peerId === undefined) {
      this.#stats.unauthorized++;
      this.#error(c, 'unauthorized', 'register first', m.id);
      return;
    }
    if (m.from !== c.peerId) {
      this.#stats.unauthorized++;
      this.#error(c, 'unauthorized', '`from` is not the peer id this connection registered', m.id);
      return;
    }
    const target = this.#peers.get(m.to);
    if (target === undefined || target.ws.readyState !== target.ws.OPEN) {
      // Nothing is remembered about peers that left, so an unknown and an offline peer look the
      // same: both are answered `peer-offline`.
      this.#stats.peerOffline++;
      this.#error(c, 'peer-offline', 'the peer is not connected', m.id);
      return;
    }
    if (target.ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.#stats.rateLimited++;
      this.#error(c, 'rate-limited', 'the peer is not reading its messages', m.id);
      return;
    }
    // The text passed the strict schema, so it is forwarded exactly as received.
    target.ws.send(text);
    this.#stats.relayed++;
    if (this.#scope !== undefined) recordSignalledCandidates(this.#scope, m, c.ip, Date.now());
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
