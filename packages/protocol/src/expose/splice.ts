import type { Duplex } from 'node:stream';
import type { DecodeError } from '../errors.js';
import { ControlMessageReader, type ExposeControlMessage } from './control.js';

/**
 * Counts bytes moved by {@link spliceTcp} and may slow it down: returns how many milliseconds
 * the source should pause after a chunk (0 = go on).
 */
export type ByteMeter = (bytes: number) => number;

/** A TCP socket as node:net has it (only what splicing needs). */
export interface ResettableSocket extends Duplex {
  resetAndDestroy(): unknown;
}

/** How a splice ended (passed to `onClose`). */
export interface SpliceResult {
  /** Bytes socket -> stream and stream -> socket. */
  readonly up: number;
  readonly down: number;
  /** Why it ended abnormally, or undefined when both directions ended with FIN. */
  readonly error?: Error;
}

function pump(src: Duplex, dst: Duplex, meter: ByteMeter | undefined, count: (n: number) => void): void {
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    const ok = dst.write(chunk);
    const wait = meter === undefined ? 0 : meter(chunk.length);
    if (ok && wait <= 0) return;
    src.pause();
    let holds = (ok ? 0 : 1) + (wait > 0 ? 1 : 0);
    const release = (): void => {
      if (--holds === 0 && !src.destroyed) src.resume();
    };
    if (!ok) dst.once('drain', release);
    if (wait > 0) setTimeout(release, wait).unref();
  });
  // A FIN from one side is a FIN to the other: TCP half-close kept end to end.
  src.on('end', () => {
    if (!dst.destroyed && !dst.writableEnded) dst.end();
  });
}

/**
 * Joins a TCP socket and a multiplexed stream with TCP semantics: bytes both ways with
 * backpressure (a side that does not read pauses the other's source), end of input passed on as
 * end of input (half-close), an error or reset on one side as a reset of the other
 * (`resetAndDestroy()` on the socket: the TCP peer sees RST), and an optional meter per
 * direction for bandwidth limits. The socket must allow half-open connections.
 */
export function spliceTcp(
  socket: ResettableSocket,
  stream: Duplex,
  options: { readonly meterUp?: ByteMeter; readonly meterDown?: ByteMeter; readonly onClose?: (result: SpliceResult) => void } = {},
): void {
  let up = 0;
  let down = 0;
  let error: Error | undefined;
  let closed = 0;
  const done = (): void => {
    if (++closed === 2) options.onClose?.({ up, down, ...(error === undefined ? {} : { error }) });
  };
  pump(socket, stream, options.meterUp, (n) => (up += n));
  pump(stream, socket, options.meterDown, (n) => (down += n));
  socket.on('error', (e) => {
    error ??= e;
    if (!stream.destroyed) stream.destroy(); // -> RST on the stream
  });
  stream.on('error', (e) => {
    error ??= e;
    if (!socket.destroyed) socket.resetAndDestroy(); // -> TCP RST
  });
  socket.on('close', () => {
    if (!stream.destroyed && !(socket.writableFinished && socket.readableEnded)) {
      error ??= new Error('socket closed before both directions ended');
      stream.destroy();
    }
    done();
  });
  stream.on('close', () => {
    if (!socket.destroyed && !(stream.writableFinished && stream.readableEnded)) {
      error ??= new Error('stream closed before both directions ended');
      socket.resetAndDestroy();
    }
    done();
  });
}

/** Frame headers written in one turn of the event loop are copied into slices of a block this large. */
const HEADER_BLOCK = 4096;

/**
 * The `write` of a {@link MuxSession} over a socket: the frames written in one turn of the event
 * loop leave in one writev (the socket is corked until the next tick; a new connection costs a
 * SYN, a preamble and data: one syscall instead of three), and consecutive headers are copied into
 * one buffer (a flood of pings answered costs one queued chunk per 4 KiB, not one per 12-byte
 * answer). Returns false, so that streams wait for 'drain' and pings go unanswered, once more
 * than `maxBuffered` bytes (default 1 MiB) wait in the socket.
 */
export function frameWriter(socket: Duplex, maxBuffered = 1 << 20): (header: Uint8Array, payload?: Uint8Array) => boolean {
  let corked = false;
  let block = Buffer.allocUnsafe(HEADER_BLOCK);
  let start = 0; // headers not yet written: block[start, end)
  let end = 0;
  const flush = (): void => {
    if (end === start) return;
    socket.write(block.subarray(start, end));
    start = end;
  };
  const uncork = (): void => {
    corked = false;
    flush();
    socket.uncork();
  };
  return (header, payload) => {
    if (socket.destroyed) return true;
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    if (block.length - end < header.length) {
      flush();
      block = Buffer.allocUnsafe(HEADER_BLOCK);
      start = end = 0;
    }
    block.set(header, end);
    end += header.length;
    if (payload !== undefined) {
      flush();
      socket.write(payload);
    }
    return socket.writableLength + (end - start) < maxBuffered;
  };
}

/**
 * Reads framed control messages from a stream: `onMessage` per message, in order; the first
 * undecodable frame calls `onError` (with the DecodeError) and nothing after it is read.
 */
export function readControlMessages(stream: Duplex, onMessage: (m: ExposeControlMessage) => void, onError: (e: DecodeError) => void): void {
  const reader = new ControlMessageReader();
  let failed = false;
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    let messages: ExposeControlMessage[];
    try {
      messages = reader.push(chunk);
    } catch (e) {
      failed = true;
      onError(e as DecodeError);
      return;
    }
    for (const m of messages) onMessage(m);
  });
}
