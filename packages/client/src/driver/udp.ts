import { type Socket, createSocket } from 'node:dgram';
import { type AddressFamily, type StunMessage, type TransportAddress, decodeStunMessage, ipFamily } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import { type RequestOptions, type StunResponse, TransactionRunner } from './runner.js';

/** Options of {@link StunUdpSocket.open}. */
export interface StunUdpSocketInit {
  /** Local IP address to bind. Default: the wildcard address of `family`. */
  readonly localAddress?: string;
  /** Local port to bind. Default 0 (any free port). */
  readonly localPort?: number;
  /** Address family of the socket. Default: the family of `localAddress`, else IPv4. */
  readonly family?: AddressFamily;
  /** Default retransmission timing of the requests made on this socket (RFC 8489 defaults). */
  readonly retransmission?: RetransmissionOptions;
  /** Aborts the bind. */
  readonly signal?: AbortSignal;
}

/** A STUN message received on a socket that answered none of its requests. */
export interface IncomingMessage {
  readonly message: StunMessage;
  readonly from: TransportAddress;
}

/** Options of {@link StunUdpSocket.waitForMessage}. */
export interface WaitOptions {
  /** Give up (resolve `undefined`) after this many milliseconds. */
  readonly timeoutMs: number;
  /** Rejects with code `ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * A UDP socket that runs STUN transactions, many at once, over a {@link TransactionManager}:
 * the thin node:dgram driver of the sans-I/O core. Received datagrams that are STUN responses
 * to its requests settle them; every other STUN message (a request, a stray response) goes to
 * the `onMessage` listeners, which is how hairpinning and binding-lifetime probes are seen.
 */
export class StunUdpSocket {
  readonly #socket: Socket;
  readonly #runner: TransactionRunner;
  readonly #listeners = new Set<(m: IncomingMessage) => void>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #local: TransportAddress;

  private constructor(socket: Socket, retransmission: RetransmissionOptions | undefined) {
    this.#socket = socket;
    const a = socket.address();
    this.#local = { family: a.family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port };
    this.#runner = new TransactionRunner(retransmission, (tx) => {
      const d = tx.destination;
      if (!d) {
        this.#runner.fail(tx.transaction.key, new StunClientError('SOCKET', 'a UDP request needs a destination'));
        return;
      }
      socket.send(tx.bytes, d.port, d.address, (err) => {
        if (err && !this.#closed) {
          this.#runner.fail(tx.transaction.key, new StunClientError('SOCKET', `send to ${d.address}:${d.port} failed: ${err.message}`, { cause: err }));
        }
      });
    });
    socket.on('message', (buf, rinfo) => this.#onDatagram(buf, rinfo));
    socket.on('error', (err) => {
      this.#runner.close(new StunClientError('SOCKET', `UDP socket error: ${err.message}`, { cause: err }));
      void this.close();
    });
  }

  /** Binds a UDP socket. Rejects with code `SOCKET` when the bind fails. */
  static open(init: StunUdpSocketInit = {}): Promise<StunUdpSocket> {
    const family = init.family ?? (init.localAddress ? ipFamily(init.localAddress) : undefined) ?? 'IPv4';
    const { signal } = init;
    if (signal?.aborted) return Promise.reject(abortError(signal, 'UDP bind'));
    return new Promise<StunUdpSocket>((resolve, reject) => {
      const socket = createSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4' });
      const onAbort = (): void => {
        socket.close();
        reject(abortError(signal, 'UDP bind'));
      };
      const onError = (err: Error): void => {
        signal?.removeEventListener('abort', onAbort);
        try {
          socket.close();
        } catch {
          // already closed
        }
        const where = `${init.localAddress ?? (family === 'IPv6' ? '::' : '0.0.0.0')}:${init.localPort ?? 0}`;
        reject(new StunClientError('SOCKET', `cannot bind UDP ${where}: ${err.message}`, { cause: err }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.bind({ port: init.localPort ?? 0, ...(init.localAddress ? { address: init.localAddress } : {}) }, () => {
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        resolve(new StunUdpSocket(socket, init.retransmission));
      });
    });
  }

  /** The address and port the socket is bound to (the wildcard address when bound to it). */
  get localAddress(): TransportAddress {
    return this.#local;
  }

  /** True once {@link close} was called or the socket failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Requests waiting for a response. */
  get pending(): number {
    return this.#runner.size;
  }

  /**
   * Sends an encoded STUN request to `destination`, retransmitting per RFC 8489 section 6.2.1,
   * and resolves with the success response. Rejects with a {@link StunClientError}: `TIMEOUT`,
   * `ABORTED`, `ERROR_RESPONSE` (an error response), or `SOCKET`.
   */
  request(request: Uint8Array, destination: TransportAddress, options?: RequestOptions): Promise<StunResponse> {
    return this.#runner.request(request, destination, options);
  }

  /** Sends bytes once, with no transaction (an indication, a reply to a probe). */
  send(bytes: Uint8Array, destination: TransportAddress): Promise<void> {
    if (this.#closed) return Promise.reject(new StunClientError('SOCKET', 'socket is closed'));
    return new Promise((resolve, reject) => {
      this.#socket.send(bytes, destination.port, destination.address, (err) =>
        err ? reject(new StunClientError('SOCKET', `send failed: ${err.message}`, { cause: err })) : resolve(),
      );
    });
  }

  /** Listens to STUN messages that answer none of this socket's requests. Returns the remover. */
  onMessage(listener: (incoming: IncomingMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with the first unmatched STUN message that satisfies `predicate`, or `undefined`
   * after `timeoutMs`. Rejects with code `ABORTED` when the signal fires or the socket closes.
   */
  waitForMessage(predicate: (incoming: IncomingMessage) => boolean, options: WaitOptions): Promise<IncomingMessage | undefined> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal, 'wait'));
    if (this.#closed) return Promise.reject(new StunClientError('ABORTED', 'socket is closed'));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        remove();
        signal?.removeEventListener('abort', onAbort);
        this.#socket.off('close', onClose);
      };
      const remove = this.onMessage((incoming) => {
        if (!predicate(incoming)) return;
        done();
        resolve(incoming);
      });
      const timer = setTimeout(() => {
        done();
        resolve(undefined);
      }, options.timeoutMs);
      const onAbort = (): void => {
        done();
        reject(abortError(signal, 'wait'));
      };
      const onClose = (): void => {
        done();
        reject(new StunClientError('ABORTED', 'socket closed while waiting'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#socket.once('close', onClose);
    });
  }

  /** Closes the socket; pending requests reject with code `ABORTED`. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#runner.close(new StunClientError('ABORTED', 'socket closed'));
    this.#closing = new Promise<void>((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.#closing;
  }

  /** Closes the socket (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #onDatagram(buf: Buffer, rinfo: { address: string; family: string; port: number }): void {
    let message: StunMessage;
    try {
      message = decodeStunMessage(buf);
    } catch {
      return; // not STUN: RFC 8489 section 6.3 says to discard it
    }
    const from: TransportAddress = { family: rinfo.family === 'IPv6' ? 'IPv6' : 'IPv4', address: rinfo.address, port: rinfo.port };
    if (this.#runner.receive(message, from)) return;
    for (const l of [...this.#listeners]) l({ message, from });
  }
}
