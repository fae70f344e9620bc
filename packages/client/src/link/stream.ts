import { Duplex } from 'node:stream';
import type { UdxStream } from './native.js';

/** Received bytes are pushed at the latest once this many have gathered. */
const FLUSH_BYTES = 64 * 1024;

/**
 * A Node duplex over one udx-native stream (a streamx duplex): writes wait for udx's `drain`,
 * reads pause udx when Node's buffer is full, `end()` half-closes (udx sends its END and keeps
 * reading), and the duplex closes once udx has closed, i.e. once both directions ended and every
 * byte was acknowledged, so a graceful close never drops data in flight.
 */
export class LinkStream extends Duplex {
  /** The udx stream's local id (diagnostics). */
  readonly id: number;
  readonly #raw: UdxStream;
  #rawClosed = false;
  #pendingWrite: ((error?: Error | null) => void) | undefined;
  #inbox: Buffer[] = [];
  #inboxBytes = 0;
  #flushTimer: NodeJS.Immediate | undefined;
  readonly #flushSoon = (): void => {
    this.#flushTimer = undefined;
    this.#flush();
  };

  constructor(raw: UdxStream) {
    super({ allowHalfOpen: true });
    this.id = raw.id;
    this.#raw = raw;
    // udx hands over one chunk per packet (about 1.2 KB): gather the packets of one event-loop
    // turn and push them as one, so that a pipe writes them with one syscall instead of one each
    raw.on('data', (chunk) => {
      this.#inbox.push(chunk);
      this.#inboxBytes += chunk.length;
      if (this.#inboxBytes >= FLUSH_BYTES) this.#flush();
      else if (this.#flushTimer === undefined) this.#flushTimer = setImmediate(this.#flushSoon);
    });
    raw.on('end', () => {
      this.#flush();
      this.push(null);
    });
    raw.on('drain', () => this.#drained());
    raw.on('error', (error) => this.destroy(error));
    raw.on('close', () => {
      this.#rawClosed = true;
      this.#drained(new Error('stream closed'));
      if (!this.destroyed && !(this.readableEnded && this.writableFinished)) this.destroy(new Error('link stream closed by the peer or the link'));
    });
  }

  /** Round-trip time, congestion window and bytes in flight of the udx stream. */
  get transport(): { rttMs: number; cwnd: number; inflight: number; retransmits: number } {
    return { rttMs: this.#raw.rtt, cwnd: this.#raw.cwnd, inflight: this.#raw.inflight, retransmits: this.#raw.retransmits };
  }

  #flush(): void {
    if (this.#flushTimer !== undefined) {
      clearImmediate(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    if (this.#inboxBytes === 0 || this.destroyed) return;
    const chunk = this.#inbox.length === 1 ? this.#inbox[0]! : Buffer.concat(this.#inbox, this.#inboxBytes);
    this.#inbox = [];
    this.#inboxBytes = 0;
    if (!this.push(chunk)) this.#raw.pause();
  }

  #drained(error?: Error): void {
    const cb = this.#pendingWrite;
    this.#pendingWrite = undefined;
    cb?.(error ?? null);
  }

  override _read(): void {
    this.#raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#rawClosed) return callback(new Error('stream closed'));
    if (this.#raw.write(chunk)) callback();
    else this.#pendingWrite = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#rawClosed) return callback();
    this.#raw.once('finish', () => callback());
    this.#raw.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#flushTimer !== undefined) clearImmediate(this.#flushTimer);
    this.#flushTimer = undefined;
    if (error !== null || this.#rawClosed || !(this.readableEnded && this.writableFinished)) {
      if (!this.#rawClosed) this.#raw.destroy();
      return callback(error);
    }
    // graceful: udx closes by itself once both ends are done and acknowledged
    const timer = setTimeout(() => this.#raw.destroy(), 30_000);
    timer.unref();
    this.#raw.once('close', () => {
      clearTimeout(timer);
      callback(null);
    });
  }
}
