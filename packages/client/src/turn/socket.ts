import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Socket as NetSocket, connect as netConnect } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { StunStreamFramer, type TransportAddress, formatTransportAddress } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import type { TurnTransport } from './options.js';

/**
 * Why the TURN client has its own sockets rather than the STUN drivers' `StunUdpSocket` and
 * `StunStreamSocket`: those run their own transactions and keep only STUN responses (they drop
 * ChannelData, and the stream one every unsolicited message), while a TURN allocation is a
 * long-lived conversation whose core runs the transactions itself and must see every Data
 * indication and ChannelData message. This is the minimum: raw messages in, raw messages out.
 */
export interface TurnSocket {
  /** Our end. */
  readonly localAddress: TransportAddress;
  /** The server's end. */
  readonly remoteAddress: TransportAddress;
  /** Sends one message (a datagram, or bytes on the stream). Errors surface through `onError`. */
  send(bytes: Uint8Array): void;
  /** Closes the socket; idempotent. */
  close(): Promise<void>;
}

/** What a {@link TurnSocket} reports. */
export interface TurnSocketHandlers {
  /** One message from the server: a datagram, or one STUN or ChannelData frame of the stream. */
  onMessage(bytes: Uint8Array): void;
  /** The socket failed or the server closed the connection; nothing more will arrive. */
  onError(error: StunClientError): void;
}

/** Options of {@link openTurnSocket}. */
export interface TurnSocketInit {
  readonly transport: TurnTransport;
  /** Local IP address to send from. */
  readonly localAddress?: string;
  /** Give up connecting (TCP, TLS handshake) after this long. Default 10,000 ms. */
  readonly connectTimeoutMs?: number;
  /** TLS settings; `servername` defaults to the server's host name when it was given by name. */
  readonly tls?: Omit<ConnectionOptions, 'host' | 'port' | 'socket'>;
  readonly signal?: AbortSignal;
}

const DEFAULT_CONNECT_TIMEOUT = 10_000;

function family(f: string | undefined): 'IPv4' | 'IPv6' {
  return f === 'IPv6' ? 'IPv6' : 'IPv4';
}

/**
 * Opens a socket to a TURN server: a connected node:dgram socket (only the server's datagrams
 * get in), or a node:net / node:tls connection whose bytes are cut into STUN and ChannelData
 * frames by @nat/protocol's {@link StunStreamFramer}. Rejects with `SOCKET`, `TIMEOUT` or
 * `ABORTED`.
 */
export function openTurnSocket(server: TransportAddress, init: TurnSocketInit, handlers: TurnSocketHandlers): Promise<TurnSocket> {
  return init.transport === 'udp' ? openUdp(server, init, handlers) : openStream(server, init, handlers);
}

function openUdp(server: TransportAddress, init: TurnSocketInit, handlers: TurnSocketHandlers): Promise<TurnSocket> {
  const { signal } = init;
  if (signal?.aborted) return Promise.reject(abortError(signal, 'UDP connect'));
  return new Promise((resolve, reject) => {
    const socket: UdpSocket = createSocket({ type: server.family === 'IPv6' ? 'udp6' : 'udp4' });
    let settled = false;
    const fail = (error: StunClientError): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      reject(error);
    };
    const onAbort = (): void => fail(abortError(signal, 'UDP connect'));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => fail(new StunClientError('SOCKET', `UDP socket toward ${formatTransportAddress(server)}: ${err.message}`, { cause: err })));
    socket.bind({ port: 0, ...(init.localAddress ? { address: init.localAddress } : {}) }, () => {
      socket.connect(server.port, server.address, () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(new UdpTurnSocket(socket, handlers));
      });
    });
  });
}

class UdpTurnSocket implements TurnSocket {
  readonly localAddress: TransportAddress;
  readonly remoteAddress: TransportAddress;
  readonly #socket: UdpSocket;
  #closing: Promise<void> | undefined;

  constructor(socket: UdpSocket, handlers: TurnSocketHandlers) {
    this.#socket = socket;
    const l = socket.address();
    const r = socket.remoteAddress();
    this.localAddress = { family: family(l.family), address: l.address, port: l.port };
    this.remoteAddress = { family: family(r.family), address: r.address, port: r.port };
    socket.on('message', (msg) => handlers.onMessage(msg));
    socket.on('error', (err) => {
      if (this.#closing) return;
      handlers.onError(new StunClientError('SOCKET', `UDP socket error: ${err.message}`, { cause: err }));
    });
  }

  send(bytes: Uint8Array): void {
    if (this.#closing) return;
    // A connected socket: no address, and a failure is reported as an 'error' event.
    this.#socket.send(bytes);
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.#closing;
  }
}

function openStream(server: TransportAddress, init: TurnSocketInit, handlers: TurnSocketHandlers): Promise<TurnSocket> {
  const { signal } = init;
  const name = init.transport.toUpperCase();
  if (signal?.aborted) return Promise.reject(abortError(signal, `${name} connect`));
  return new Promise((resolve, reject) => {
    const base = { host: server.address, port: server.port, ...(init.localAddress ? { localAddress: init.localAddress } : {}) };
    const socket: NetSocket = init.transport === 'tls' ? tlsConnect({ ...init.tls, ...base }) : netConnect(base);
    const ready = init.transport === 'tls' ? 'secureConnect' : 'connect';
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off(ready, onReady);
    };
    const fail = (error: StunClientError): void => {
      done();
      socket.destroy();
      reject(error);
    };
    const onReady = (): void => {
      done();
      socket.setNoDelay(true);
      resolve(new StreamTurnSocket(socket, name, handlers));
    };
    const onError = (err: Error): void =>
      fail(new StunClientError('SOCKET', `cannot connect ${name} to ${formatTransportAddress(server)}: ${err.message}`, { cause: err }));
    const onAbort = (): void => fail(abortError(signal, `${name} connect`));
    const timer = setTimeout(
      () => fail(new StunClientError('TIMEOUT', `${name} connect to ${formatTransportAddress(server)} timed out`)),
      init.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT,
    );
    socket.once(ready, onReady);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class StreamTurnSocket implements TurnSocket {
  readonly localAddress: TransportAddress;
  readonly remoteAddress: TransportAddress;
  readonly #socket: NetSocket;
  readonly #framer = new StunStreamFramer();
  #closing: Promise<void> | undefined;
  #failed = false;

  constructor(socket: NetSocket, name: string, handlers: TurnSocketHandlers) {
    this.#socket = socket;
    this.localAddress = { family: family(socket.localFamily), address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    this.remoteAddress = { family: family(socket.remoteFamily), address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const fail = (error: StunClientError): void => {
      if (this.#failed || this.#closing) return;
      this.#failed = true;
      handlers.onError(error);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#framer.push(chunk);
        for (let f = this.#framer.next(); f !== undefined; f = this.#framer.next()) handlers.onMessage(f.bytes);
      } catch (e) {
        // RFC 8489 section 6.2.2 / RFC 8656 section 12.5: once the framing is lost it cannot be regained.
        fail(new StunClientError('BAD_RESPONSE', `the ${name} stream lost its framing: ${(e as Error).message}`, { cause: e }));
        socket.destroy();
      }
    });
    socket.on('error', (err) => fail(new StunClientError('SOCKET', `${name} error: ${err.message}`, { cause: err })));
    socket.on('close', () => fail(new StunClientError('SOCKET', `${name} connection closed by the server`)));
  }

  send(bytes: Uint8Array): void {
    if (this.#closing || this.#failed) return;
    this.#socket.write(bytes);
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (this.#socket.destroyed) {
        resolve();
        return;
      }
      this.#socket.once('close', () => resolve());
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), 1000).unref();
    });
    return this.#closing;
  }
}
