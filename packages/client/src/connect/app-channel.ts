/**
 * The application channel of an ICE connection: the datagrams the application exchanges over the
 * selected pair once ICE has one, framed with a 1-byte type (the framing lives in @nat/protocol):
 * data frames (`send`, `data` events), and pings the peer answers by itself (round-trip times).
 * Also the connection's listeners (`data`, `path`, `close`) and the three async iterators over
 * them.
 */
import { FRAME_DATA, FRAME_PING, FRAME_PONG, decodeFrame, encodeDataFrame, encodePingFrame } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import type { IceFailureReason } from '../ice/types.js';
import { eventIterator } from '../event-iterator.js';
import type { ConnectionPath, IceConnectionEvent, IceConnectionEvents, IceIteratorOptions } from './options.js';

type Listeners = { [E in keyof IceConnectionEvents]: Set<IceConnectionEvents[E]> };
type CloseReason = 'bye' | 'closed' | IceFailureReason;

/** What the channel needs of its connection. */
export interface AppChannelHost {
  /** Sends one datagram on the selected pair; false when there is none or the connection is closed. */
  sendSelected(frame: Uint8Array): boolean;
  closed(): boolean;
  /** The selected path now, if any. */
  path(): ConnectionPath | undefined;
}

/** Framing, pings, listeners and iterators of one connection. */
export class AppChannel {
  readonly #host: AppChannelHost;
  readonly #listeners: Listeners = { data: new Set(), path: new Set(), close: new Set() };
  readonly #pings = new Map<number, { sentAt: number; done: (rtt: number | StunClientError) => void }>();
  #nextSeq = 0;

  constructor(host: AppChannelHost) {
    this.#host = host;
  }

  on<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): void {
    (this.#listeners[event] as Set<IceConnectionEvents[E]>).add(listener);
  }

  off<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): void {
    (this.#listeners[event] as Set<IceConnectionEvents[E]>).delete(listener);
  }

  /** Tells the `data` listeners. */
  emitData(payload: Uint8Array): void {
    for (const l of this.#listeners.data) l(payload);
  }

  /** Tells the `path` listeners. */
  emitPath(path: ConnectionPath): void {
    for (const l of this.#listeners.path) l(path);
  }

  /** Fails the pings in flight, then tells the `close` listeners. */
  emitClose(why: CloseReason): void {
    for (const p of [...this.#pings.values()]) p.done(new StunClientError('ABORTED', 'connection closed'));
    for (const l of this.#listeners.close) l(why);
  }

  /** An application frame from a validated pair: data to the listeners, a ping answered through `reply`, a pong to its ping. True for data. */
  receive(bytes: Uint8Array, reply: (bytes: Uint8Array) => void): boolean {
    const frame = decodeFrame(bytes);
    if (frame === undefined) return false;
    if (frame.kind === 'data') {
      this.emitData(frame.payload);
      return true;
    } else if (frame.kind === 'ping') {
      reply(encodePingFrame(FRAME_PONG, frame.seq));
    } else {
      const p = this.#pings.get(frame.seq);
      p?.done(performance.now() - p.sentAt);
    }
    return false;
  }

  send(data: Uint8Array): boolean {
    return this.#host.sendSelected(encodeDataFrame(data));
  }

  sendFrame(frame: Uint8Array): boolean {
    if (frame.length === 0) return false;
    frame[0] = FRAME_DATA;
    return this.#host.sendSelected(frame);
  }

  ping(options: { readonly timeoutMs?: number; readonly signal?: AbortSignal }): Promise<number> {
    const seq = (this.#nextSeq = (this.#nextSeq + 1) >>> 0);
    return new Promise<number>((resolve, reject) => {
      const { signal } = options;
      const done = (r: number | StunClientError): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pings.delete(seq);
        if (typeof r === 'number') resolve(r);
        else reject(r);
      };
      const onAbort = (): void => done(abortError(signal, 'ping'));
      const timer = setTimeout(() => done(new StunClientError('TIMEOUT', `no pong within ${options.timeoutMs ?? 2000} ms`)), options.timeoutMs ?? 2000);
      this.#pings.set(seq, { sentAt: performance.now(), done });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) return onAbort();
      if (!this.#host.sendSelected(encodePingFrame(FRAME_PING, seq))) done(new StunClientError('SOCKET', 'no selected pair to ping on'));
    });
  }

  events(options: IceIteratorOptions): AsyncIterableIterator<IceConnectionEvent> {
    return this.#iterate<IceConnectionEvent>(options, (push, end) => {
      const onPath = (path: ConnectionPath): void => push({ type: 'path', path });
      const onData = (data: Uint8Array): void => push({ type: 'data', data });
      const onClose = (reason: CloseReason): void => {
        push({ type: 'close', reason });
        end();
      };
      this.on('path', onPath);
      this.on('data', onData);
      this.on('close', onClose);
      return () => {
        this.off('path', onPath);
        this.off('data', onData);
        this.off('close', onClose);
      };
    });
  }

  paths(options: IceIteratorOptions): AsyncIterableIterator<ConnectionPath> {
    const current = this.#host.path();
    return this.#iterate<ConnectionPath>(options, (push, end) => {
      if (current !== undefined && !this.#host.closed()) push(current);
      return this.#subscribe('path', push, end);
    });
  }

  data(options: IceIteratorOptions): AsyncIterableIterator<Uint8Array> {
    return this.#iterate<Uint8Array>(options, (push, end) => this.#subscribe('data', push, end));
  }

  #subscribe<E extends 'path' | 'data'>(event: E, push: IceConnectionEvents[E], end: () => void): () => void {
    this.on(event, push);
    this.on('close', end);
    return () => {
      this.off(event, push);
      this.off('close', end);
    };
  }

  /** An iterator over this connection's events that ends with it, `signal` or `break`. */
  #iterate<T>(options: IceIteratorOptions, subscribe: (push: (item: T) => void, end: () => void) => () => void): AsyncIterableIterator<T> {
    return eventIterator<T>({
      ended: this.#host.closed(),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.bufferSize === undefined ? {} : { bufferSize: options.bufferSize }),
      subscribe,
    });
  }
}
