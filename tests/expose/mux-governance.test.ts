/** The yamux session's governance hooks (issue 14, finding 3): admit, pings only under the output bound, maxStreams on open, header coalescing. */
import { Duplex } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { MuxFlag, MuxFrameReader, type MuxHeader, MuxSession, MuxStreamError, MuxType, encodeMuxHeader, frameWriter } from '@nat/protocol';

/** The frame headers in `bytes`. */
function headers(bytes: Uint8Array[]): MuxHeader[] {
  const out: MuxHeader[] = [];
  const r = new MuxFrameReader();
  for (const b of bytes) r.push(b, { onHeader: (h) => out.push(h), onData: () => {}, onDataEnd: () => {} });
  return out;
}

describe('finding 3: yamux session governance', () => {
  test('admit sees each header first: a refused frame ends the session with Go Away (protocol error) and is not acted on', () => {
    const sent: Uint8Array[] = [];
    let closed: MuxStreamError | undefined;
    const seen: MuxHeader[] = [];
    const mux = new MuxSession({
      client: false,
      write: (h) => (sent.push(h), true),
      onStream: (s) => void s.on('error', () => {}),
      admit: (h) => (seen.push(h), h.streamId !== 3),
      onClose: (e) => (closed = e),
    });
    mux.receive(
      Buffer.concat([
        encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 1, 0),
        encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 3, 0),
        encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, 7),
      ]),
    );
    const out = headers(sent);
    expect(out.map((h) => [h.type, h.flags, h.streamId])).toEqual([
      [MuxType.WindowUpdate, MuxFlag.ACK, 1], // stream 1 admitted and acknowledged
      [MuxType.GoAway, 0, 0], // stream 3 refused: no ACK, no RST, the session ends
    ]);
    expect(out[1]!.length).toBe(1); // protocol error
    expect(closed?.code).toBe('EPROTO');
    expect(seen).toHaveLength(2); // nothing after the refused frame is looked at
    expect(mux.closed).toBe(true);
  });

  test('pings are answered only while the connection is under its output bound', () => {
    const sent: Uint8Array[] = [];
    let under = true;
    const mux = new MuxSession({ client: false, write: (h) => (sent.push(h), under) });
    under = false;
    mux.ping(1); // the write reports the bound reached
    mux.receive(encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, 42));
    expect(headers(sent).filter((h) => h.flags === MuxFlag.ACK)).toHaveLength(0);
    under = true;
    mux.drain();
    mux.receive(encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, 43));
    expect(
      headers(sent)
        .filter((h) => h.flags === MuxFlag.ACK)
        .map((h) => h.length),
    ).toEqual([43]);
  });

  test('open() beyond maxStreams throws ECONNABORTED', () => {
    const mux = new MuxSession({ client: false, write: () => true, maxStreams: 2 });
    mux.open();
    mux.open();
    expect(() => mux.open()).toThrow(MuxStreamError);
    expect(mux.size).toBe(2);
  });

  test('frameWriter: 1,000 answered pings leave as a few chunks, and control output counts against the bound', async () => {
    const chunks: number[] = [];
    let release: (() => void) | undefined;
    const sink = new Duplex({
      read() {},
      highWaterMark: 1024,
      writev(list, cb) {
        for (const c of list) chunks.push(c.chunk.length);
        release = cb; // never drained until the test says so: the output piles up
      },
      write(c: Buffer, _e, cb) {
        chunks.push(c.length);
        release = cb;
      },
    });
    const write = frameWriter(sink, 8 * 1024);
    const mux = new MuxSession({ client: false, write });
    const pings = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, i)));
    mux.receive(pings);
    await new Promise((r) => setImmediate(r));
    // 8 KiB of answers pass the bound: the rest go unanswered (about 683 answers of 12 bytes).
    const answered = chunks.reduce((a, b) => a + b, 0) / 12;
    expect(answered).toBeGreaterThan(600);
    expect(answered).toBeLessThan(1000);
    expect(chunks.length).toBeLessThanOrEqual(4); // 4 KiB header blocks, not one chunk per answer
    release?.();
  });
});
