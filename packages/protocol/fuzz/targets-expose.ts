/**
 * Fuzz targets of the expose protocol: the yamux frame reader, a whole yamux session (whose
 * streams are never read, so every byte a peer sends must stay within the receive window), and
 * the control message reader (a length above 64 KiB must fail before its bytes are waited for).
 */
import {
  ControlMessageReader,
  DecodeError,
  MAX_CONTROL_MESSAGE_BYTES,
  MUX_HEADER_BYTES,
  MUX_INITIAL_WINDOW,
  MuxFlag,
  MuxFrameReader,
  type MuxHeader,
  MuxSession,
  type MuxStream,
  MuxType,
  encodeControlMessage,
  encodeMuxHeader,
} from '../src/index.js';
import fc from 'fast-check';
import { type FuzzTarget, inChunks, loadCorpus } from './harness.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const isDecodeError = (e: unknown): boolean => e instanceof DecodeError;

export const yamuxReaderTarget: FuzzTarget = {
  name: 'yamux-reader',
  corpus: loadCorpus(CORPUS, 'yamux-reader'),
  typed: isDecodeError,
  run(input, cuts) {
    const reader = new MuxFrameReader();
    const headers: MuxHeader[] = [];
    let payload = 0;
    let open: MuxHeader | undefined;
    let openLeft = 0;
    const sink = {
      onHeader: (h: MuxHeader) => {
        if (open !== undefined) throw new Error('a header inside a Data frame');
        headers.push(h);
        if (h.type === MuxType.Data && h.length > 0) [open, openLeft] = [h, h.length];
      },
      onData: (id: number, piece: Uint8Array) => {
        if (open === undefined || id !== open.streamId || piece.length === 0 || piece.length > openLeft) throw new Error('a payload piece outside its frame');
        openLeft -= piece.length;
        payload += piece.length;
      },
      onDataEnd: (h: MuxHeader) => {
        if (h.length > 0 && (open !== h || openLeft !== 0)) throw new Error('Data frame ended before its payload');
        open = undefined;
      },
    };
    let failed: Error | undefined;
    inChunks(input, cuts, (chunk) => {
      try {
        reader.push(chunk, sink);
      } catch (error) {
        failed ??= error instanceof Error ? error : new Error(String(error));
      }
    });
    if (failed !== undefined) throw failed;
    // every byte is a header or payload, but for the start of a header not yet complete
    const left = input.length - (headers.length * MUX_HEADER_BYTES + payload);
    if (left < 0 || left >= MUX_HEADER_BYTES || (open !== undefined && left !== 0)) throw new Error(`yamux reader left ${left} of ${input.length} bytes`);
    return headers;
  },
  roundTrip(seed) {
    const out: Uint8Array[] = [];
    new MuxFrameReader().push(seed, {
      onHeader: (h) => out.push(encodeMuxHeader(h.type, h.flags, h.streamId, h.length)),
      onData: (_id, piece) => out.push(piece),
      onDataEnd: () => undefined,
    });
    if (Buffer.compare(Buffer.concat(out), seed) !== 0) throw new Error('yamux frames do not re-encode to the same bytes');
  },
};

/** A peer (client: odd stream id, server: even) opening a stream and sending up to 400 KB on it, more than the 256 KiB window it was granted. */
const windowFlood = fc
  .tuple(fc.constantFrom(1, 2), fc.array(fc.tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(0, MuxFlag.FIN)), { minLength: 1, maxLength: 4 }))
  .map(([id, frames]) =>
    Uint8Array.from(
      Buffer.concat([
        encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, id, 0),
        ...frames.flatMap(([length, flags]) => [encodeMuxHeader(MuxType.Data, flags, id, length), new Uint8Array(length)]),
      ]),
    ),
  );

export const yamuxSessionTarget: FuzzTarget = {
  name: 'yamux-session',
  corpus: loadCorpus(CORPUS, 'yamux-session'),
  generated: windowFlood,
  // the session turns every protocol error into a Go Away: receive() throws nothing at all
  typed: () => false,
  run(input, cuts) {
    const streams: MuxStream[] = [];
    let writes = 0;
    const session = new MuxSession({
      client: (cuts[0] ?? 0) % 2 === 1, // either side: the chunking decides, so mutations of the first byte need not
      maxStreams: 16,
      write: () => ++writes % 5 !== 0,
      onStream: (s) => {
        s.on('error', () => undefined);
        streams.push(s);
      },
    });
    // a flood (generated, up to 400 KB) in chunks 64 times larger: still split across frames, in far fewer pushes
    const scaled = input.length > 20_000 ? cuts.map((c) => c * 64) : cuts;
    inChunks(input, scaled, (chunk) => {
      session.receive(chunk);
      if (session.size > 16) throw new Error(`yamux session holds ${session.size} streams (limit 16)`);
      for (const s of streams) {
        if (s.readableLength > MUX_INITIAL_WINDOW) throw new Error(`an unread yamux stream buffers ${s.readableLength} bytes (window ${MUX_INITIAL_WINDOW})`);
      }
    });
    // the streams' 'close' events wait for a tick that a synchronous fuzz loop never gives:
    // empty their buffers now, or every case's data stays reachable until the run ends
    for (const s of streams) while (s.read() !== null);
    session.lost();
    return [streams.length, session.closed];
  },
};

export const exposeControlTarget: FuzzTarget = {
  name: 'expose-control',
  corpus: loadCorpus(CORPUS, 'expose-control'),
  typed: isDecodeError,
  run(input, cuts) {
    const reader = new ControlMessageReader();
    const messages: unknown[] = [];
    let pushed = 0;
    let consumed = 0;
    inChunks(input, cuts, (chunk) => {
      pushed += chunk.length;
      const got = reader.push(chunk);
      for (const m of got) {
        messages.push(m);
        consumed += 4 + Buffer.from(input.buffer, input.byteOffset + consumed, 4).readUInt32BE(0);
      }
      // what the reader still holds: a length it accepted must be within the limit
      if (pushed - consumed >= 4) {
        const declared = Buffer.from(input.buffer, input.byteOffset + consumed, 4).readUInt32BE(0);
        if (declared > MAX_CONTROL_MESSAGE_BYTES) throw new Error(`control reader waits for a ${declared}-byte message (limit ${MAX_CONTROL_MESSAGE_BYTES})`);
      }
    });
    return messages;
  },
  roundTrip(seed) {
    const [message, ...rest] = new ControlMessageReader().push(seed);
    if (message === undefined || rest.length > 0) throw new Error('a control seed is not one message');
    if (Buffer.compare(Buffer.from(encodeControlMessage(message)), seed) !== 0) throw new Error('a control message does not re-encode to the same bytes');
  },
};
