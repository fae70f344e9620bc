import { Duplex } from 'node:stream';
import type { UdxStream } from './native.js';

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

  constructor(raw: UdxStream) {
    super({ allowHalfOpen: true });
    this.id = raw.id;
    this.#raw = raw;
    raw.on('data', (chunk) => {
      if (!this.push(chunk)) raw.pause();
    });
    raw.on('end', () => this.push(null));
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
