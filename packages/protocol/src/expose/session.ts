import { Duplex } from 'node:stream';
import { DecodeError } from '../errors.js';
import { MUX_INITIAL_WINDOW, MuxFlag, type MuxFrameSink, MuxFrameReader, MuxGoAway, type MuxHeader, MuxType, encodeMuxHeader } from './frame.js';

/** Why a stream or session ended abnormally: `code` is as node:net spells it. */
export class MuxStreamError extends Error {
  override readonly name = 'MuxStreamError';
  constructor(
    readonly code: 'ECONNRESET' | 'ECONNABORTED' | 'EPROTO',
    message: string,
  ) {
    super(message);
  }
}

/** Options of {@link MuxSession}. */
export interface MuxSessionInit {
  /** True on the side that opened the connection: it opens odd stream ids, the other side even ones (yamux). */
  readonly client: boolean;
  /**
   * Sends bytes on the underlying connection (a header, and for Data frames the payload as a
   * second buffer: write both at once, e.g. corked). Returns false when the connection's buffer is
   * full; the driver then calls {@link MuxSession.drain} once it has drained.
   */
  readonly write: (header: Uint8Array, payload?: Uint8Array) => boolean;
  /** A stream the other side opened. Without it, every incoming stream is reset. */
  readonly onStream?: (stream: MuxStream) => void;
  /** The answer to a {@link MuxSession.ping}. */
  readonly onPong?: (value: number) => void;
  /** The session ended: the peer's Go Away, a protocol error, or {@link MuxSession.close}. */
  readonly onClose?: (error: MuxStreamError | undefined) => void;
  /** Receive window per stream, bytes (the most a peer may have in flight). Default 256 KiB. */
  readonly window?: number;
  /** Streams open at once (both sides' together); an incoming one beyond this is reset, {@link MuxSession.open} throws. Default 4096. */
  readonly maxStreams?: number;
  /**
   * Called with every frame header before it is acted on (for a Data frame, before its payload):
   * false ends the session (Go Away, protocol error). A server uses it to accept, before the peer
   * authenticated, only the frames that authentication needs.
   */
  readonly admit?: (header: MuxHeader) => boolean;
}

/**
 * One multiplexed stream: a node Duplex with TCP semantics. `end()` sends FIN (the peer reads
 * end of input and may still write), `destroy()` before both sides ended sends RST (the peer's
 * stream errors with ECONNRESET), and a receive window holds backpressure: the peer stops
 * sending when this side's reader does not read.
 */
export class MuxStream extends Duplex {
  readonly id: number;
  readonly #session: MuxSession;
  #sendWindow: number;
  readonly #window: number;
  #recvWindow: number;
  #unacked = 0;
  #readPaused = false;
  #pending: { chunk: Uint8Array; cb: (error?: Error | null) => void } | undefined;
  #finalCb: ((error?: Error | null) => void) | undefined;
  #localClosed = false;
  #remoteClosed = false;
  #reset = false;
  #gone = false;

  /** @internal */
  constructor(session: MuxSession, id: number, window: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.#session = session;
    this.id = id;
    this.#sendWindow = MUX_INITIAL_WINDOW;
    this.#window = window;
    this.#recvWindow = window;
  }

  /** @internal A window the peer granted. */
  grant(delta: number): void {
    this.#sendWindow += delta;
    this.flush();
  }

  /** @internal Payload from the peer; false when it overruns the window (a protocol error). */
  receive(piece: Uint8Array): boolean {
    if (piece.length > this.#recvWindow) return false;
    if (this.#remoteClosed || this.destroyed) return true; // late data after FIN/destroy: dropped
    this.#recvWindow -= piece.length;
    this.#unacked += piece.length;
    if (!this.push(piece)) this.#readPaused = true;
    else this.#maybeAck();
    return true;
  }

  /** @internal The peer sent FIN. */
  remoteFin(): void {
    if (this.#remoteClosed) return;
    this.#remoteClosed = true;
    this.push(null);
    this.#maybeGone();
  }

  /** @internal The peer sent RST, or the session died. */
  abort(error: MuxStreamError): void {
    this.#reset = true;
    this.#gone = true;
    this.#session.forget(this.id);
    const p = this.#pending;
    this.#pending = undefined;
    p?.cb(error);
    this.destroy(error);
  }

  override _read(): void {
    this.#readPaused = false;
    this.#maybeAck();
  }

  #maybeAck(): void {
    // Credit goes back once the reader took at least half a window: few Window Update frames,
    // and the peer never stalls while this side reads (yamux's own rule).
    if (this.#readPaused || this.#unacked < this.#window / 2 || this.#gone) return;
    const delta = this.#unacked;
    this.#unacked = 0;
    this.#recvWindow += delta;
    this.#session.send(MuxType.WindowUpdate, 0, this.id, delta);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.#gone || this.#localClosed) return cb(new MuxStreamError('ECONNRESET', 'stream closed'));
    this.#pending = { chunk, cb };
    this.flush();
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.#finalCb = cb;
    this.flush();
  }

  /** @internal Sends what the window and the connection allow. */
  flush(): void {
    while (this.#pending !== undefined && this.#sendWindow > 0 && this.#session.writable && !this.#gone) {
      const p = this.#pending;
      const n = Math.min(this.#sendWindow, p.chunk.length);
      const part = n === p.chunk.length ? p.chunk : p.chunk.subarray(0, n);
      this.#sendWindow -= n;
      this.#session.sendData(this.id, part);
      if (n === p.chunk.length) {
        this.#pending = undefined;
        p.cb();
      } else p.chunk = p.chunk.subarray(n);
    }
    if (this.#pending !== undefined && !this.#session.writable) this.#session.wait(this);
    if (this.#finalCb !== undefined && this.#pending === undefined && !this.#gone) {
      const cb = this.#finalCb;
      this.#finalCb = undefined;
      this.#localClosed = true;
      this.#session.send(MuxType.WindowUpdate, MuxFlag.FIN, this.id, 0);
      this.#maybeGone();
      cb();
    }
  }

  #maybeGone(): void {
    if (this.#localClosed && this.#remoteClosed && !this.#gone) {
      this.#gone = true;
      this.#session.forget(this.id);
    }
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.#gone) {
      this.#gone = true;
      this.#session.forget(this.id);
      if (!this.#reset) this.#session.send(MuxType.WindowUpdate, MuxFlag.RST, this.id, 0);
    }
    const p = this.#pending;
    this.#pending = undefined;
    p?.cb(error ?? new MuxStreamError('ECONNRESET', 'stream destroyed'));
    cb(error);
  }

  /** True once the peer reset the stream (or the session died under it). */
  get wasReset(): boolean {
    return this.#reset;
  }
}

/**
 * A yamux session over one connection, sans-I/O: feed it the connection's bytes
 * ({@link receive}), give it a `write` function, and tell it when the connection drained
 * ({@link drain}). It opens no socket and reads no clock (keepalive timers belong to the driver).
 *
 * Backpressure: a stream writes only within the window its peer granted and only while the
 * connection is writable, so one connection's buffer holds at most one frame per stream beyond
 * the socket's own; received data is held back (no window credit) while the stream's reader is
 * not reading, so the memory per stream is bounded by its window.
 */
export class MuxSession {
  readonly #init: MuxSessionInit;
  readonly #reader = new MuxFrameReader();
  readonly #streams = new Map<number, MuxStream>();
  readonly #waiting = new Set<MuxStream>();
  readonly #window: number;
  readonly #maxStreams: number;
  #nextId: number;
  #writable = true;
  #closed = false;
  readonly #sink: MuxFrameSink;

  constructor(init: MuxSessionInit) {
    this.#init = init;
    this.#window = init.window ?? MUX_INITIAL_WINDOW;
    if (this.#window < MUX_INITIAL_WINDOW) throw new RangeError('mux window below 256 KiB (the yamux initial window)');
    this.#maxStreams = init.maxStreams ?? 4096;
    this.#nextId = init.client ? 1 : 2;
    this.#sink = {
      onHeader: (h) => this.#header(h),
      onData: (id, piece) => {
        const s = this.#streams.get(id);
        if (s !== undefined && !s.receive(piece)) this.#fail('receive window exceeded');
      },
      onDataEnd: (h) => this.#flags(h),
    };
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get writable(): boolean {
    return this.#writable && !this.#closed;
  }

  /** Bytes from the connection. */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#reader.push(chunk, this.#sink);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.#fail(error.message);
    }
  }

  /** The connection drained: streams waiting to write go on. */
  drain(): void {
    this.#writable = true;
    for (const s of this.#waiting) {
      this.#waiting.delete(s);
      s.flush();
      if (!this.#writable) break;
    }
  }

  /** Opens a stream (SYN). Throws MuxStreamError ECONNABORTED once the session is closed or holds `maxStreams` streams. */
  open(): MuxStream {
    if (this.#closed) throw new MuxStreamError('ECONNABORTED', 'mux session closed');
    if (this.#streams.size >= this.#maxStreams)
      throw new MuxStreamError('ECONNABORTED', `mux session holds ${this.#streams.size} streams (at most ${this.#maxStreams})`);
    const id = this.#nextId;
    this.#nextId += 2;
    const s = new MuxStream(this, id, this.#window);
    this.#streams.set(id, s);
    this.send(MuxType.WindowUpdate, MuxFlag.SYN, id, this.#window - MUX_INITIAL_WINDOW);
    return s;
  }

  /** Sends a Ping (SYN) carrying `value`; the answer comes to `onPong`. */
  ping(value: number): void {
    this.send(MuxType.Ping, MuxFlag.SYN, 0, value >>> 0);
  }

  /**
   * Ends the session: Go Away (normal) to the peer when `error` is undefined, and every open
   * stream errors (ECONNABORTED). Idempotent. The driver closes the connection.
   */
  close(error?: MuxStreamError): void {
    if (this.#closed) return;
    this.send(MuxType.GoAway, 0, 0, error === undefined ? MuxGoAway.normal : MuxGoAway.protocolError);
    this.#end(error);
  }

  /** The connection is gone (closed or failed): every open stream errors. Idempotent. */
  lost(message = 'connection lost'): void {
    if (this.#closed) return;
    this.#end(new MuxStreamError('ECONNABORTED', message));
  }

  #end(error: MuxStreamError | undefined): void {
    this.#closed = true;
    const abort = error ?? new MuxStreamError('ECONNABORTED', 'mux session closed');
    for (const s of [...this.#streams.values()]) s.abort(abort);
    this.#streams.clear();
    this.#waiting.clear();
    this.#init.onClose?.(error);
  }

  #fail(message: string): void {
    this.close(new MuxStreamError('EPROTO', `mux protocol error: ${message}`));
  }

  /** @internal */
  send(type: MuxType, flags: number, id: number, length: number): void {
    if (this.#closed) return;
    if (!this.#init.write(encodeMuxHeader(type, flags, id, length))) this.#writable = false;
  }

  /** @internal */
  sendData(id: number, payload: Uint8Array): void {
    if (!this.#init.write(encodeMuxHeader(MuxType.Data, 0, id, payload.length), payload)) this.#writable = false;
  }

  /** @internal */
  wait(s: MuxStream): void {
    this.#waiting.add(s);
  }

  /** @internal */
  forget(id: number): void {
    const s = this.#streams.get(id);
    if (s !== undefined) this.#waiting.delete(s);
    this.#streams.delete(id);
  }

  #header(h: MuxHeader): void {
    if (this.#closed) return;
    if (this.#init.admit !== undefined && !this.#init.admit(h)) return this.#fail(`frame refused (type ${h.type}, flags ${h.flags}, stream ${h.streamId})`);
    switch (h.type) {
      case MuxType.Ping:
        // Answered only while the connection is under its output bound: a peer that pings and
        // does not read gets no answers queued for it.
        if (h.flags & MuxFlag.SYN) {
          if (this.#writable) this.send(MuxType.Ping, MuxFlag.ACK, 0, h.length);
        } else if (h.flags & MuxFlag.ACK) this.#init.onPong?.(h.length);
        return;
      case MuxType.GoAway:
        this.#end(h.length === MuxGoAway.normal ? undefined : new MuxStreamError('ECONNABORTED', `peer went away (code ${h.length})`));
        return;
      case MuxType.WindowUpdate:
        this.#flags(h);
        return;
      case MuxType.Data: {
        if (h.flags & MuxFlag.SYN) this.#incoming(h.streamId);
        return; // FIN/RST after the payload (onDataEnd)
      }
    }
  }

  #incoming(id: number): void {
    if (id === 0 || (id % 2 === 1) === this.#init.client || this.#streams.has(id)) {
      this.#fail(`bad SYN for stream ${id}`);
      return;
    }
    if (this.#init.onStream === undefined || this.#streams.size >= this.#maxStreams) {
      if (this.#writable) this.send(MuxType.WindowUpdate, MuxFlag.RST, id, 0);
      return;
    }
    const s = new MuxStream(this, id, this.#window);
    this.#streams.set(id, s);
    this.send(MuxType.WindowUpdate, MuxFlag.ACK, id, this.#window - MUX_INITIAL_WINDOW);
    this.#init.onStream(s);
  }

  #flags(h: MuxHeader): void {
    if (this.#closed) return;
    if (h.type === MuxType.WindowUpdate && h.flags & MuxFlag.SYN) this.#incoming(h.streamId);
    const s = this.#streams.get(h.streamId);
    if (s === undefined) return; // a stream already forgotten: late frames are dropped
    if (h.type === MuxType.WindowUpdate && h.length > 0) s.grant(h.length);
    if (h.flags & MuxFlag.RST) s.abort(new MuxStreamError('ECONNRESET', 'stream reset by peer'));
    else if (h.flags & MuxFlag.FIN) s.remoteFin();
  }
}
