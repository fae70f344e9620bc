import { Duplex } from 'node:stream';
import { PeerLinkError } from './errors.js';
import type { ResumableChannel } from './channel.js';
import { type RecordOpener, type RecordSealer } from './records.js';

/** The two directions' protection of a stream (records.ts). */
export interface StreamProtection {
  readonly sealer: RecordSealer;
  readonly opener: RecordOpener;
  /** Called once when the peer's bytes fail authentication (the stream is then destroyed). */
  readonly onTampered: (error: PeerLinkError) => void;
}

/**
 * A Node duplex over one udx-native stream (a streamx duplex; through a {@link ResumableChannel},
 * which may move the bytes to a new udx stream pair) whose bytes are sealed records
 * (records.ts): writes are sealed and wait for udx's `drain`, reads are opened record by record
 * and pause udx when Node's buffer is full, `end()` sends the authenticated end and half-closes
 * (udx sends its END and keeps reading), and the duplex closes once udx has closed, i.e. once
 * both directions ended and every byte was acknowledged, so a graceful close never drops data in
 * flight. A record that fails authentication, or an end the sender did not seal, destroys the
 * stream with {@link PeerLinkError} `TAMPERED`: no unauthenticated byte is ever delivered.
 */
export class LinkStream extends Duplex {
  /** The udx stream's local id (diagnostics). */
  readonly id: number;
  readonly #raw: ResumableChannel;
  readonly #protection: StreamProtection;
  #rawClosed = false;
  #pendingWrite: ((error?: Error | null) => void) | undefined;

  constructor(raw: ResumableChannel, protection: StreamProtection) {
    super({ allowHalfOpen: true });
    this.id = raw.id;
    this.#raw = raw;
    this.#protection = protection;
    raw.on('data', (chunk) => {
      if (this.destroyed) return;
      let plains: Buffer[];
      try {
        plains = protection.opener.push(chunk);
      } catch (error) {
        this.#tampered(error as PeerLinkError);
        return;
      }
      let more = true;
      for (const p of plains) more = this.push(p);
      if (!more) this.#raw.pause();
    });
    raw.on('end', () => {
      if (this.destroyed) return;
      if (!protection.opener.ended || protection.opener.buffered > 0) {
        this.#tampered(new PeerLinkError('TAMPERED', "the stream ended without its sender's authenticated end (a forged or cut-short END)"));
        return;
      }
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

  #tampered(error: PeerLinkError): void {
    this.#protection.onTampered(error);
    this.destroy(error);
  }

  #drained(error?: Error): void {
    const cb = this.#pendingWrite;
    this.#pendingWrite = undefined;
    cb?.(error ?? null);
  }

  #send(bytes: Buffer, callback: (error?: Error | null) => void): void {
    if (this.#rawClosed) return callback(new Error('stream closed'));
    if (this.#raw.write(bytes)) callback();
    else this.#pendingWrite = callback;
  }

  override _read(): void {
    this.#raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(this.#protection.sealer.seal(chunk), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    const plain = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.#send(this.#protection.sealer.seal(plain), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#rawClosed) return callback();
    this.#raw.once('finish', () => callback());
    this.#raw.write(this.#protection.sealer.seal(Buffer.alloc(0), true));
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
