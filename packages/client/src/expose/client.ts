import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Socket, connect as tcpConnect } from 'node:net';
import {
  EXPOSE_VERSION,
  type ExposeControlMessage,
  type ExposeRefusal,
  type ExposeTransport,
  ExposedDatagramReader,
  MuxSession,
  type MuxStream,
  type StreamPreamble,
  type TransportAddress,
  decodeStreamPreamble,
  encodeControlMessage,
  encodeExposedDatagram,
  encodeProxyV2Header,
  formatTransportAddress,
  frameWriter,
  ipFamily,
  type OutboundTarget,
  readControlMessages,
  readStreamPrefix,
  spliceTcp,
} from '@nat/protocol';
import { StunClientError } from '../errors.js';
import { type ExposeCredentials, advertiseProof, authOf } from './auth.js';
import { type ExposeTlsOptions, exposeEndpoint, openExposeConnection } from './connect.js';
import { type OutboundConnection, openOutbound } from './outbound.js';

export type { ExposeCredentials } from './auth.js';

/** Options of {@link exposePublic}. */
export interface ExposeInit {
  /** The rendezvous service's URL (ws://, wss://); the expose endpoint is its `expose` sibling path. */
  readonly url: string;
  readonly credentials: ExposeCredentials;
  /** The local service: every public connection or datagram is carried there. */
  readonly target: { readonly host: string; readonly port: number };
  /** Default 'tcp'. */
  readonly transport?: ExposeTransport;
  /** Ask for this public port (e.g. the service's own); default any free one in the server's range. */
  readonly publicPort?: number;
  /** Send a PROXY protocol v2 header to the target first on each TCP connection. Default false. */
  readonly proxyProtocol?: boolean;
  /** Source prefixes allowed / denied by the server on this port. */
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
  /** Keepalive: a ping every interval; no byte from the server for two intervals = dead. Default 15,000 ms. */
  readonly keepaliveMs?: number;
  /** Reconnect with exponential backoff after losing an established connection. Default { minMs: 250, maxMs: 30,000 }; false = never. */
  readonly reconnect?: false | { readonly minMs?: number; readonly maxMs?: number };
  readonly connectTimeoutMs?: number;
  /**
   * Receive window per stream, bytes: how much a public client may have in flight towards the
   * service before the server stops reading from it. Default 1 MiB (the server's own window,
   * towards the public client, is its `limits.window`).
   */
  readonly window?: number;
  readonly tls?: ExposeTlsOptions;
  /** Advertise this identity's peer id as the port's owner (the server's owner lookup tells it). Default: not advertised. */
  readonly advertise?: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
  /** Aborting closes the tunnel. */
  readonly signal?: AbortSignal;
}

/** The public address granted. */
export interface ExposedAddress {
  readonly transport: ExposeTransport;
  /** `ip:port` as the server announces it. */
  readonly address: string;
  readonly port: number;
  /** The authenticated name (user, or `peer:<id>`). */
  readonly user: string;
}

/** Events of an {@link ExposeTunnel}. */
export interface ExposeEvents {
  /** A port was granted (first, and after every reconnect). */
  exposed: [ExposedAddress];
  /** A public connection (TCP) arrived, or a new UDP source. */
  connection: [{ source: TransportAddress; transport: ExposeTransport }];
  /** The control connection was lost; `retryInMs` is undefined when no reconnect follows. */
  disconnected: [{ error: Error; retryInMs: number | undefined }];
  /** The tunnel is over: closed, aborted, or refused for good (the error says why). */
  closed: [{ error: StunClientError | undefined }];
}

/** A running public exposure (see {@link exposePublic}). */
export interface ExposeTunnel extends EventEmitter<ExposeEvents> {
  /** Resolves with the first grant; rejects (StunClientError) when the first attempt fails or is refused. */
  readonly ready: Promise<ExposedAddress>;
  /** The current public address, undefined while disconnected. */
  readonly current: ExposedAddress | undefined;
  /** Inbound TCP connections open now. */
  readonly connections: number;
  /** Asks the server to open a TCP connection from its public address (nat-server --expose-outbound); see `openOutbound`. */
  openOutbound(target: OutboundTarget): Promise<OutboundConnection>;
  /** Stops: releases the port on the server and closes every connection. */
  close(): Promise<void>;
}

/** Refusals after which retrying cannot help. */
const FATAL: ReadonlySet<ExposeRefusal> = new Set([
  'unauthorized',
  'out-of-range',
  'over-quota',
  'forbidden',
  'bad-message',
  'taken',
  'port-in-use',
  'port-denied',
]);

/** Reads the stream preamble without switching the stream to flowing mode (at most 64 bytes). */
function readPreamble(stream: MuxStream): Promise<StreamPreamble> {
  return readStreamPrefix(
    stream,
    (bytes) => {
      const got = decodeStreamPreamble(bytes);
      return got === undefined ? undefined : { value: got.preamble, length: got.length };
    },
    64,
  );
}

class Tunnel extends EventEmitter<ExposeEvents> implements ExposeTunnel {
  readonly ready: Promise<ExposedAddress>;
  current: ExposedAddress | undefined;
  readonly #init: ExposeInit;
  readonly #endpoint: URL;
  readonly #transport: ExposeTransport;
  #port: number | undefined;
  #resolveReady!: (a: ExposedAddress) => void;
  #rejectReady!: (e: StunClientError) => void;
  #everReady = false;
  #closed = false;
  #socket: Socket | undefined;
  #mux: MuxSession | undefined;
  #control: MuxStream | undefined;
  #keepalive: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  readonly #tcp = new Set<Socket>();
  readonly #udpFlows = new Map<string, { socket: UdpSocket; last: number; connected: boolean; queue: Uint8Array[] }>();
  #udpSweep: NodeJS.Timeout | undefined;
  #closedPromise: Promise<void> | undefined;

  constructor(init: ExposeInit) {
    super();
    this.#init = init;
    this.#endpoint = exposeEndpoint(init.url);
    this.#transport = init.transport ?? 'tcp';
    this.#port = init.publicPort;
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {});
    init.signal?.addEventListener('abort', () => void this.close(), { once: true });
    void this.#connect();
  }

  get connections(): number {
    return this.#tcp.size;
  }

  openOutbound(target: OutboundTarget): Promise<OutboundConnection> {
    return openOutbound(this.#mux, target);
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    let conn: { socket: Socket; head: Buffer };
    try {
      conn = await openExposeConnection(this.#endpoint, {
        timeoutMs: this.#init.connectTimeoutMs ?? 10_000,
        ...(this.#init.tls ? { tls: this.#init.tls } : {}),
      });
    } catch (e) {
      this.#lost(e as Error);
      return;
    }
    if (this.#closed) {
      conn.socket.destroy();
      return;
    }
    const socket = conn.socket;
    socket.setNoDelay(true);
    this.#socket = socket;
    let alive = true;
    const mux = new MuxSession({
      client: true,
      window: this.#init.window ?? 1024 * 1024,
      write: frameWriter(socket),
      onStream: (s) => this.#incoming(s),
      onClose: (err) => {
        // After this tick: the frame writer sends what this tick queued (the Go Away) first.
        if (!socket.destroyed) process.nextTick(() => socket.end());
        if (err !== undefined) socket.destroy();
      },
    });
    this.#mux = mux;
    socket.on('data', (c: Buffer) => {
      alive = true;
      mux.receive(c);
    });
    socket.on('drain', () => mux.drain());
    socket.on('error', () => {});
    socket.on('close', () => {
      mux.lost('control connection lost');
      if (this.#socket === socket) this.#lost(new StunClientError('SOCKET', 'control connection lost'));
    });
    const interval = this.#init.keepaliveMs ?? 15_000;
    let ping = 0;
    this.#keepalive = setInterval(() => {
      if (!alive) {
        socket.destroy(); // no byte for a whole round: the path is dead (a NAT that forgot us)
        return;
      }
      alive = false;
      mux.ping(++ping);
    }, interval);
    this.#keepalive.unref();
    const control = mux.open();
    this.#control = control;
    control.on('error', () => {});
    readControlMessages(
      control,
      (m) => this.#message(m),
      (e) => socket.destroy(e),
    );
    if (conn.head.length > 0) mux.receive(conn.head);
  }

  #send(m: ExposeControlMessage): void {
    if (this.#control !== undefined && !this.#control.destroyed) this.#control.write(encodeControlMessage(m));
  }

  #user = '';
  #nonce = '';

  #message(m: ExposeControlMessage): void {
    switch (m.type) {
      case 'challenge':
        this.#nonce = m.nonce;
        this.#send({ v: EXPOSE_VERSION, type: 'hello', auth: authOf(this.#init.credentials, m.nonce, m.realm) });
        return;
      case 'welcome':
        this.#user = m.user;
        this.#send({
          v: EXPOSE_VERSION,
          type: 'expose',
          id: 1,
          transport: this.#transport,
          ...(this.#port !== undefined ? { port: this.#port } : {}),
          ...(this.#init.allow ? { allow: [...this.#init.allow] } : {}),
          ...(this.#init.deny ? { deny: [...this.#init.deny] } : {}),
          ...(this.#init.advertise ? { advertise: advertiseProof(this.#init.advertise, this.#nonce) } : {}),
        });
        return;
      case 'exposed': {
        this.#attempt = 0;
        this.#port = m.port; // re-requested after a reconnect
        const a: ExposedAddress = { transport: m.transport, address: m.address, port: m.port, user: this.#user };
        this.current = a;
        if (!this.#everReady) {
          this.#everReady = true;
          this.#resolveReady(a);
        }
        this.emit('exposed', a);
        return;
      }
      case 'refused':
      case 'error': {
        const err = new StunClientError('ERROR_RESPONSE', `server refused: ${m.message} (${m.code})`, { reason: m.code });
        if (FATAL.has(m.code)) this.#finish(err);
        else this.#socket?.destroy();
        return;
      }
      case 'revoked':
        this.#socket?.destroy();
        return;
      default:
        return;
    }
  }

  #lost(error: Error): void {
    clearInterval(this.#keepalive);
    this.#socket = undefined;
    this.#mux = undefined;
    this.#control = undefined;
    this.current = undefined;
    if (this.#closed) return;
    const policy = this.#init.reconnect;
    if (!this.#everReady || policy === false) {
      this.emit('disconnected', { error, retryInMs: undefined });
      this.#finish(error instanceof StunClientError ? error : new StunClientError('SOCKET', error.message, { cause: error }));
      return;
    }
    const min = policy?.minMs ?? 250;
    const max = policy?.maxMs ?? 30_000;
    const delay = Math.min(max, min * 2 ** this.#attempt) * (0.75 + Math.random() * 0.5);
    this.#attempt = Math.min(this.#attempt + 1, 20);
    this.emit('disconnected', { error, retryInMs: Math.round(delay) });
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  #finish(error: StunClientError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#keepalive);
    clearInterval(this.#udpSweep);
    if (!this.#everReady) this.#rejectReady(error ?? new StunClientError('ABORTED', 'closed before the port was granted'));
    if (this.#port !== undefined && this.#mux !== undefined && error === undefined) {
      this.#send({ v: EXPOSE_VERSION, type: 'unexpose', transport: this.#transport, port: this.#port });
    }
    this.#mux?.close();
    const socket = this.#socket;
    this.#socket = undefined;
    // The Go Away above (a header without payload) waits in the frame writer's header block until
    // the next tick: end the connection after it, or it never leaves.
    if (socket) process.nextTick(() => socket.end());
    if (socket) setTimeout(() => socket.destroy(), 500).unref();
    for (const c of this.#tcp) c.destroy();
    for (const f of this.#udpFlows.values()) f.socket.close();
    this.#udpFlows.clear();
    this.current = undefined;
    this.emit('closed', { error });
  }

  close(): Promise<void> {
    this.#closedPromise ??= new Promise<void>((resolve) => {
      const socket = this.#socket;
      this.#finish(this.#init.signal?.aborted ? new StunClientError('ABORTED', 'aborted') : undefined);
      if (socket === undefined || socket.destroyed) return resolve();
      socket.once('close', () => resolve());
    });
    return this.#closedPromise;
  }

  // ---- streams from the server

  #incoming(stream: MuxStream): void {
    stream.on('error', () => {});
    readPreamble(stream).then(
      (p) => (p.kind === 'tcp' ? this.#tcpStream(stream, p) : this.#udpStream(stream)),
      () => stream.destroy(),
    );
  }

  #tcpStream(stream: MuxStream, p: StreamPreamble): void {
    if (this.#closed) return void stream.destroy();
    this.emit('connection', { source: p.source, transport: 'tcp' });
    const socket = tcpConnect({ host: this.#init.target.host, port: this.#init.target.port, allowHalfOpen: true, noDelay: true });
    this.#tcp.add(socket);
    socket.on('close', () => this.#tcp.delete(socket));
    if (this.#init.proxyProtocol) socket.write(encodeProxyV2Header('tcp', p.source, p.destination));
    // Until the target accepts, the stream is not read: the server's window holds the rest.
    socket.once('connect', () => spliceTcp(socket, stream));
    socket.once('error', () => {
      if (socket.connecting || !socket.remoteAddress) stream.destroy(); // target refused: the public client sees a reset
    });
  }

  #udpStream(stream: MuxStream): void {
    if (this.#closed) return void stream.destroy();
    const reader = new ExposedDatagramReader();
    const target = this.#init.target;
    this.#udpSweep ??= setInterval(() => {
      const now = performance.now();
      for (const [k, f] of this.#udpFlows)
        if (now - f.last > 120_000) {
          f.socket.close();
          this.#udpFlows.delete(k);
        }
    }, 30_000);
    this.#udpSweep.unref();
    stream.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (from, payload) => {
          const key = formatTransportAddress(from);
          let f = this.#udpFlows.get(key);
          if (f === undefined) {
            if (this.#udpFlows.size >= 4096) return;
            const socket = createSocket(ipFamily(target.host) === 'IPv6' ? 'udp6' : 'udp4');
            socket.on('error', () => {});
            // One local socket per public source: the service sees distinct peers, replies go back to the right one.
            socket.on('message', (reply) => {
              const cur = this.#udpFlows.get(key);
              if (cur) cur.last = performance.now();
              const s = this.#currentUdp;
              if (s !== undefined && !s.destroyed && !s.writableNeedDrain) s.write(encodeExposedDatagram(from, reply));
            });
            const flow = { socket, last: performance.now(), connected: false, queue: [] as Uint8Array[] };
            socket.connect(target.port, target.host, () => {
              flow.connected = true;
              for (const q of flow.queue.splice(0)) socket.send(q);
            });
            f = flow;
            this.#udpFlows.set(key, f);
            this.emit('connection', { source: from, transport: 'udp' });
          }
          f.last = performance.now();
          if (f.connected) f.socket.send(payload);
          else if (f.queue.length < 64) f.queue.push(Buffer.from(payload)); // until connect() resolves the target
        });
      } catch {
        stream.destroy();
      }
    });
    this.#currentUdp = stream;
  }

  #currentUdp: MuxStream | undefined;
}

/**
 * Exposes a local service publicly through a nat-server's expose service (frp/ngrok style):
 * connects to the rendezvous URL's expose endpoint, authenticates, asks for a public TCP or UDP
 * port, and carries every public connection (a multiplexed stream) to `target`, with TCP
 * half-close, resets and backpressure kept. Keeps the connection alive, reconnects with
 * exponential backoff after losing it, and asks for the same port again.
 */
export function exposePublic(init: ExposeInit): ExposeTunnel {
  return new Tunnel(init);
}
