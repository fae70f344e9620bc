import type { Socket } from 'node:net';
import type { CloseCause, EventTransport } from '../events.js';
import type { StreamGovernor } from './stream.js';

/** What a service tells the governor about one connection. */
export interface StreamHooks {
  /** True while the connection carries something whose own lifetime governs it (no idle cut). */
  carries(): boolean;
  /** Reading resumed after a pause: process what was held back. */
  resumed(): void;
}

/** What kind of bytes {@link StreamLease.send} is given: an answer, an error answer, or relayed data. */
export type StreamOutputKind = 'answer' | 'error' | 'droppable';

/** Socket errors that mean the client went away (reset, or gone while we wrote): a client close. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** One governed connection: from accept to close. */
export class StreamLease {
  readonly source: string;
  readonly raw: Socket;
  readonly transport: EventTransport;
  /** When it was accepted (ms since the epoch). */
  readonly openedAt: number;
  #socket: Socket | undefined;
  #paused = false;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #cause: CloseCause | undefined;
  #errorCode: string | undefined;
  #user: string | undefined;
  readonly #gov: StreamGovernor;

  constructor(gov: StreamGovernor, raw: Socket, source: string, handshake: boolean) {
    this.#gov = gov;
    this.raw = raw;
    this.source = source;
    this.transport = handshake ? 'tls' : 'tcp';
    this.openedAt = Date.now();
    // Only records the error (the service decides what to do with it); see closeCause.
    raw.on('error', (e: NodeJS.ErrnoException) => void (this.#errorCode ??= e.code ?? 'error'));
    if (handshake) {
      this.#handshakeTimer = setTimeout(() => this.#handshakeTimeout(), gov.limits.handshakeTimeoutMs);
      this.#handshakeTimer.unref();
    }
  }

  /** True while reading is paused for queued output: the service stops processing frames. */
  get paused(): boolean {
    return this.#paused;
  }

  /** The user the connection was attributed to ({@link attribute}), if any. */
  get user(): string | undefined {
    return this.#user;
  }

  /** Why the connection ended (or will end): what the governor or service said, else the client or a socket error. */
  get closeCause(): CloseCause {
    if (this.#cause !== undefined) return this.#cause;
    return this.#errorCode === undefined || CLIENT_GONE.has(this.#errorCode) ? 'client' : 'error';
  }

  /** Closes the connection for `cause` (the first cause given is the one reported). */
  close(cause: CloseCause): void {
    this.#cause ??= cause;
    (this.#socket ?? this.raw).destroy();
    if (this.#socket !== undefined && this.#socket !== this.raw) this.raw.destroy();
  }

  /** The TLS handshake did not finish in time: close the connection (counted when it closes). */
  #handshakeTimeout(): void {
    this.#gov.log.debug({ source: this.source, timeoutMs: this.#gov.limits.handshakeTimeoutMs }, 'connection closed: TLS handshake not finished in time');
    this.close('handshake-timeout');
  }

  /**
   * The connection is ready for the service: `socket` is the raw socket (TCP) or the TLS socket
   * once its handshake finished. Arms the idle rule and the backpressure resume.
   */
  serve(socket: Socket, hooks: StreamHooks): void {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#socket = socket;
    const idle = this.#gov.limits.idleTimeoutMs;
    socket.setTimeout(idle, () => {
      if (hooks.carries()) {
        socket.setTimeout(idle); // re-armed: checked again after the next silent period
        return;
      }
      this.#gov.stats.idleClosed++;
      this.#gov.log.debug({ source: this.source, idleMs: idle }, 'connection closed: idle');
      this.close('idle');
    });
    socket.on('drain', () => {
      if (!this.#paused) return;
      this.#paused = false;
      hooks.resumed();
      if (!this.#paused && !socket.destroyed) socket.resume();
    });
  }

  /**
   * Counts the connection against `user`'s share (call it once the service authenticated a
   * request of that user on it). Over the share, the connection is closed (cause 'refused')
   * and false returned. Attributing again is a no-op.
   */
  attribute(user: string): boolean {
    if (this.#user !== undefined) return true;
    if (!this.#gov.takeUserShare(this, user)) {
      this.close('refused');
      return false;
    }
    this.#user = user;
    return true;
  }

  /**
   * Sends bytes with backpressure. `droppable` bytes (relayed data) are dropped rather than
   * queued over `pauseBytes`; `error` answers are rate limited per source, and a connection
   * whose error answer the limit refuses is closed (cause 'protocol-error'): a stream client
   * cannot be spoofed, so it is the one sending bad requests.
   */
  send(bytes: Uint8Array, kind: StreamOutputKind): void {
    const socket = this.#socket;
    if (socket === undefined || socket.destroyed) return;
    const { pauseBytes, maxQueuedBytes } = this.#gov.limits;
    const queued = socket.writableLength;
    if (kind === 'droppable' && queued >= pauseBytes) return void this.#gov.stats.relayDropped++;
    if (kind === 'error' && !this.#gov.allowError(this.source, Date.now())) {
      this.#gov.log.debug({ source: this.source }, 'connection closed: over the error-answer rate');
      return this.close('protocol-error');
    }
    if (queued + bytes.length > maxQueuedBytes) {
      this.#gov.stats.overflowClosed++;
      this.#gov.log.info({ source: this.source, queued }, 'connection closed: output not read by the client');
      return this.close('backpressure');
    }
    socket.write(bytes);
    if (!this.#paused && socket.writableLength > pauseBytes) {
      this.#paused = true;
      this.#gov.stats.paused++;
      socket.pause();
    }
  }

  /** Called once the raw socket closed; a TLS connection closed before its handshake finished is counted. */
  release(): void {
    if (this.#handshakeTimer === undefined) return;
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#gov.stats.handshakeFailed++;
  }
}
