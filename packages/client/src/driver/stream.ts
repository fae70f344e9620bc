import { type Socket, connect as netConnect } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { StunStreamFramer, type TransportAddress, decodeStunMessage } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import { type RequestOptions, type StunResponse, TransactionRunner } from './runner.js';

/** The stream transports of STUN: TCP, and TLS over TCP (RFC 8489 section 6.2.2). */
export type StreamTransport = 'tcp' | 'tls';

/** Options of {@link StunStreamSocket.connect}. */
export interface StunStreamSocketInit {
  /** `'tcp'` (default) or `'tls'`. */
  readonly transport?: StreamTransport;
  /** Local IP address to connect from. */
  readonly localAddress?: string;
  /** Give up connecting (and the TLS handshake) after this long. Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * TLS settings (certificate authority, `servername`, `rejectUnauthorized`). By default the
   * server certificate is verified against the system's CAs for `servername`.
   */
  readonly tls?: Omit<ConnectionOptions, 'host' | 'port' | 'socket'>;
  /** Timing of requests: Ti (default 39500 ms) applies, there are no retransmissions. */
  readonly retransmission?: RetransmissionOptions;
  /** Aborts the connect. */
  readonly signal?: AbortSignal;
}

const DEFAULT_CONNECT_TIMEOUT = 10_000;

/**
 * A TCP or TLS connection to one STUN server that runs transactions, many at once: requests
 * are sent once (the transport is reliable) and fail after Ti; responses are cut from the byte
 * stream with @nat/protocol's {@link StunStreamFramer} and matched by transaction id.
 */
export class StunStreamSocket {
  readonly #socket: Socket;
  readonly #runner: TransactionRunner;
  readonly #framer = new StunStreamFramer();
  readonly #remote: TransportAddress;
  readonly #local: TransportAddress;
  readonly transport: StreamTransport;
  #closed = false;

  private constructor(socket: Socket, transport: StreamTransport, retransmission: RetransmissionOptions | undefined) {
    this.#socket = socket;
    this.transport = transport;
    const fam = (f: string | undefined): 'IPv4' | 'IPv6' => (f === 'IPv6' ? 'IPv6' : 'IPv4');
    this.#remote = { family: fam(socket.remoteFamily), address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    this.#local = { family: fam(socket.localFamily), address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    this.#runner = new TransactionRunner({ ...retransmission, reliable: true }, (tx) => {
      socket.write(tx.bytes);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new StunClientError('SOCKET', `${transport.toUpperCase()} error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.#fail(new StunClientError('SOCKET', `${transport.toUpperCase()} connection closed by the server`)));
  }

  /** Connects to a STUN server. Rejects with code `SOCKET`, `TIMEOUT` or `ABORTED`. */
  static connect(server: TransportAddress, init: StunStreamSocketInit = {}): Promise<StunStreamSocket> {
    const transport = init.transport ?? 'tcp';
    const { signal } = init;
    if (signal?.aborted) return Promise.reject(abortError(signal, 'connect'));
    return new Promise((resolve, reject) => {
      const base = {
        host: server.address,
        port: server.port,
        ...(init.localAddress ? { localAddress: init.localAddress } : {}),
      };
      const socket: Socket = transport === 'tls' ? tlsConnect({ ...init.tls, ...base }) : netConnect(base);
      const readyEvent = transport === 'tls' ? 'secureConnect' : 'connect';
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        socket.off(readyEvent, onReady);
      };
      const onReady = (): void => {
        finish();
        socket.setNoDelay(true);
        resolve(new StunStreamSocket(socket, transport, init.retransmission));
      };
      const onError = (err: Error): void => {
        finish();
        socket.destroy();
        reject(new StunClientError('SOCKET', `cannot connect ${transport.toUpperCase()} to ${server.address}:${server.port}: ${err.message}`, { cause: err }));
      };
      const onAbort = (): void => {
        finish();
        socket.destroy();
        reject(abortError(signal, 'connect'));
      };
      const timer = setTimeout(() => {
        finish();
        socket.destroy();
        reject(new StunClientError('TIMEOUT', `${transport.toUpperCase()} connect to ${server.address}:${server.port} timed out`));
      }, init.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT);
      socket.once(readyEvent, onReady);
      socket.once('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The server's address (the connection's peer). */
  get remoteAddress(): TransportAddress {
    return this.#remote;
  }

  /** This end of the connection. */
  get localAddress(): TransportAddress {
    return this.#local;
  }

  /**
   * Sends an encoded STUN request and resolves with the success response; rejects like
   * {@link StunUdpSocket.request}. Retransmission settings other than `ti` are ignored.
   */
  request(request: Uint8Array, options?: RequestOptions): Promise<StunResponse> {
    return this.#runner.request(request, undefined, { ...options, reliable: true });
  }

  /** Closes the connection; pending requests reject with code `ABORTED`. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#runner.close(new StunClientError('ABORTED', 'connection closed'));
    }
    return new Promise((resolve) => {
      if (this.#socket.destroyed) {
        resolve();
        return;
      }
      this.#socket.once('close', () => resolve());
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), 1000).unref();
    });
  }

  #onData(chunk: Buffer): void {
    try {
      this.#framer.push(chunk);
      for (const frame of this.#framer) {
        if (frame.kind !== 'stun') continue; // ChannelData has no place on a STUN-only connection
        let message;
        try {
          message = decodeStunMessage(frame.bytes);
        } catch {
          continue; // a framed but malformed message: skip it, the framing still holds
        }
        this.#runner.receive(message, this.#remote);
      }
    } catch (e) {
      this.#fail(new StunClientError('BAD_RESPONSE', `the stream lost its STUN framing: ${(e as Error).message}`, { cause: e }));
      this.#socket.destroy();
    }
  }

  #fail(error: StunClientError): void {
    this.#closed = true;
    this.#runner.close(error);
  }
}
