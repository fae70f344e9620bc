import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  ControlMessageReader,
  DecodeError,
  ExposedDatagramReader,
  MUX_INITIAL_WINDOW,
  MuxFlag,
  MuxFrameReader,
  type MuxHeader,
  MuxSession,
  type MuxStream,
  MuxType,
  decodeStreamPreamble,
  encodeControlMessage,
  encodeExposedDatagram,
  encodeMuxHeader,
  encodeProxyV2Header,
  encodeStreamPreamble,
} from '@nat/protocol';

const require = createRequire(import.meta.url);
const pp = require('proxy-protocol-js') as {
  V2ProxyProtocol: {
    parse(b: Buffer): {
      command: number;
      transportProtocol: number;
      addressFamilyType: number;
      proxyAddress: { sourceAddress: { address: number[] }; sourcePort: number; destinationAddress: { address: number[] }; destinationPort: number };
    };
  };
};

describe('PROXY protocol v2 header (haproxy proxy-protocol.txt section 2.2)', () => {
  test('TCP over IPv4: the exact bytes, and an independent parser reads them back', () => {
    const b = Buffer.from(
      encodeProxyV2Header('tcp', { family: 'IPv4', address: '192.0.2.1', port: 56324 }, { family: 'IPv4', address: '203.0.113.1', port: 443 }),
    );
    // signature | 0x21 v2 PROXY | 0x11 AF_INET STREAM | len 12 | src | dst | sport | dport
    expect(b.toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'c0000201' + 'cb007101' + 'dc04' + '01bb');
    const parsed = pp.V2ProxyProtocol.parse(b);
    expect(parsed.command).toBe(1);
    expect(parsed.transportProtocol).toBe(1);
    expect(parsed.proxyAddress.sourceAddress.address).toEqual([192, 0, 2, 1]);
    expect(parsed.proxyAddress.sourcePort).toBe(56324);
    expect(parsed.proxyAddress.destinationAddress.address).toEqual([203, 0, 113, 1]);
    expect(parsed.proxyAddress.destinationPort).toBe(443);
  });

  test('UDP over IPv6 is 36 address bytes with fam 0x22; LOCAL has no address', () => {
    const b = Buffer.from(encodeProxyV2Header('udp', { family: 'IPv6', address: '2001:db8::1', port: 1 }, { family: 'IPv6', address: '2001:db8::2', port: 2 }));
    expect(b.length).toBe(16 + 36);
    expect(b[12]).toBe(0x21);
    expect(b[13]).toBe(0x22);
    expect(b.readUInt16BE(14)).toBe(36);
    expect(b.subarray(16, 32).toString('hex')).toBe('20010db8000000000000000000000001');
    expect(b.readUInt16BE(48)).toBe(1);
    expect(b.readUInt16BE(50)).toBe(2);
    expect(Buffer.from(encodeProxyV2Header('tcp')).toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '20' + '00' + '0000');
    expect(() => encodeProxyV2Header('tcp', { family: 'IPv4', address: '192.0.2.1', port: 1 }, { family: 'IPv6', address: '::1', port: 1 })).toThrow(
      /different families/,
    );
  });
});

describe('yamux framing', () => {
  test('header bytes as hashicorp/yamux spec.md lays them out', () => {
    expect(Buffer.from(encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 1, 0)).toString('hex')).toBe('00' + '01' + '0001' + '00000001' + '00000000');
    expect(Buffer.from(encodeMuxHeader(MuxType.Data, MuxFlag.FIN | MuxFlag.ACK, 0xfffffffe, 65536)).toString('hex')).toBe(
      '00' + '00' + '0006' + 'fffffffe' + '00010000',
    );
    expect(Buffer.from(encodeMuxHeader(MuxType.GoAway, 0, 0, 1)).toString('hex')).toBe('000300000000000000000001');
  });

  test('the reader gives the same frames however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        (payloads, cuts) => {
          const wire = Buffer.concat(payloads.flatMap((p, i) => [Buffer.from(encodeMuxHeader(MuxType.Data, 0, i * 2 + 1, p.length)), Buffer.from(p)]));
          const got = new Map<number, Buffer[]>();
          const ends: number[] = [];
          const reader = new MuxFrameReader();
          const sink = {
            onHeader: () => {},
            onData: (id: number, piece: Uint8Array) => got.set(id, [...(got.get(id) ?? []), Buffer.from(piece)]),
            onDataEnd: (h: MuxHeader) => ends.push(h.streamId),
          };
          let off = 0;
          for (let i = 0; off < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            reader.push(wire.subarray(off, off + n), sink);
            off += n;
          }
          expect(ends).toEqual(payloads.map((_, i) => i * 2 + 1));
          payloads.forEach((p, i) => expect(Buffer.concat(got.get(i * 2 + 1) ?? []).equals(Buffer.from(p))).toBe(true));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a bad version or type is a DecodeError, and nothing after it is read', () => {
    const r = new MuxFrameReader();
    const sink = { onHeader: () => {}, onData: () => {}, onDataEnd: () => {} };
    expect(() => r.push(Buffer.from('010000000000000100000000', 'hex'), sink)).toThrow(DecodeError);
    expect(() => new MuxFrameReader().push(Buffer.from('000900000000000100000000', 'hex'), sink)).toThrow(/frame type 9/);
  });
});

/** Two sessions joined in memory; `pauseBtoA` holds B's bytes (a connection that does not drain). */
function pair(init: { onStreamB?: (s: MuxStream) => void; maxStreams?: number } = {}) {
  const toB: Uint8Array[] = [];
  let b!: MuxSession;
  const deliver = (to: () => MuxSession) => (h: Uint8Array, p?: Uint8Array) => {
    const bytes = p === undefined ? h : Buffer.concat([h, p]);
    queueMicrotask(() => to().receive(bytes));
    return true;
  };
  const a = new MuxSession({ client: true, write: deliver(() => b) });
  b = new MuxSession({
    client: false,
    write: deliver(() => a),
    ...(init.onStreamB ? { onStream: init.onStreamB } : {}),
    ...(init.maxStreams ? { maxStreams: init.maxStreams } : {}),
  });
  return { a, b, toB };
}
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('mux session: TCP semantics', () => {
  test('half-close: FIN one way, data still flows the other way, then FIN back', async () => {
    let far!: MuxStream;
    const { a } = pair({ onStreamB: (s) => (far = s) });
    const near = a.open();
    near.end('request');
    await tick();
    const req: Buffer[] = [];
    far.on('data', (c: Buffer) => req.push(c));
    await new Promise((r) => far.once('end', r));
    expect(Buffer.concat(req).toString()).toBe('request');
    const resp: Buffer[] = [];
    near.on('data', (c: Buffer) => resp.push(c));
    far.end('response after the peer half-closed');
    await new Promise((r) => near.once('end', r));
    expect(Buffer.concat(resp).toString()).toBe('response after the peer half-closed');
    await tick();
    expect(a.size).toBe(0);
  });

  test('destroy before the end is a reset: the peer stream errors with ECONNRESET', async () => {
    let far!: MuxStream;
    const { a } = pair({ onStreamB: (s) => (far = s) });
    const near = a.open();
    near.write('x');
    await tick();
    const err = new Promise<NodeJS.ErrnoException>((r) => far.once('error', r));
    near.destroy();
    expect((await err).code).toBe('ECONNRESET');
    expect(far.wasReset).toBe(true);
  });

  test('backpressure: a reader that does not read stops the writer after one window', async () => {
    let far!: MuxStream;
    const { a } = pair({ onStreamB: (s) => (far = s) });
    const near = a.open();
    let accepted = 0;
    const chunk = randomBytes(16 * 1024);
    for (let i = 0; i < 200; i++) near.write(chunk, () => (accepted += chunk.length));
    await tick(20);
    far.pause();
    await tick(50);
    // The far side holds at most its window (plus nothing: no credit went back while paused).
    expect(accepted).toBeLessThanOrEqual(MUX_INITIAL_WINDOW + 64 * 1024 + chunk.length);
    expect(accepted).toBeGreaterThanOrEqual(MUX_INITIAL_WINDOW / 2);
    let read = 0;
    far.on('data', (c: Buffer) => (read += c.length));
    far.resume();
    await tick(100);
    expect(read).toBe(200 * chunk.length);
  });

  test('a peer overrunning the window is a protocol error; streams beyond maxStreams are reset', async () => {
    const closes: unknown[] = [];
    const s = new MuxSession({ client: false, write: () => true, onStream: (st) => void st.on('error', () => {}), onClose: (e) => closes.push(e) });
    s.receive(encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 1, 0));
    s.receive(Buffer.concat([encodeMuxHeader(MuxType.Data, 0, 1, MUX_INITIAL_WINDOW + 1), Buffer.alloc(MUX_INITIAL_WINDOW + 1)]));
    expect(closes).toHaveLength(1);
    expect(closes[0]).toMatchObject({ code: 'EPROTO' });
    const sent: Buffer[] = [];
    const limited = new MuxSession({ client: false, maxStreams: 1, write: (h) => (sent.push(Buffer.from(h)), true), onStream: () => {} });
    limited.receive(encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 1, 0));
    limited.receive(encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 3, 0));
    expect(sent.map((b) => [b.readUInt16BE(2), b.readUInt32BE(4)])).toEqual([
      [MuxFlag.ACK, 1],
      [MuxFlag.RST, 3],
    ]);
  });

  test('ping is answered with the same value', () => {
    const out: Buffer[] = [];
    const s = new MuxSession({ client: true, write: (h) => (out.push(Buffer.from(h)), true) });
    s.receive(encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, 0xdeadbeef));
    expect(out[0]!.toString('hex')).toBe('0002' + '0002' + '00000000' + 'deadbeef');
  });
});

describe('stream preamble, datagrams and control messages', () => {
  test('preamble round trip, incomplete input waits', () => {
    const p = {
      kind: 'tcp' as const,
      publicPort: 15441,
      source: { family: 'IPv4' as const, address: '198.51.100.7', port: 40000 },
      destination: { family: 'IPv6' as const, address: '2001:db8::1', port: 15441 },
    };
    const b = Buffer.from(encodeStreamPreamble(p));
    for (let i = 0; i < b.length; i++) expect(decodeStreamPreamble(b.subarray(0, i))).toBeUndefined();
    expect(decodeStreamPreamble(Buffer.concat([b, Buffer.from('rest')]))).toEqual({ preamble: p, length: b.length });
    expect(() => decodeStreamPreamble(Buffer.from('0201000004', 'hex'))).toThrow(DecodeError);
  });

  test('datagrams keep their addresses across any split', () => {
    const d1 = encodeExposedDatagram({ family: 'IPv4', address: '203.0.113.9', port: 9 }, Buffer.from('one'));
    const d2 = encodeExposedDatagram({ family: 'IPv6', address: '2001:db8::9', port: 99 }, Buffer.alloc(0));
    const wire = Buffer.concat([d1, d2]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = new ExposedDatagramReader();
      const got: string[] = [];
      const on = (a: { address: string; port: number }, p: Uint8Array): void => void got.push(`${a.address}:${a.port}=${Buffer.from(p).toString()}`);
      r.push(wire.subarray(0, cut), on);
      r.push(wire.subarray(cut), on);
      expect(got).toEqual(['203.0.113.9:9=one', '2001:db8::9:99=']);
    }
  });

  test('control frames: a length over 64 KiB is refused before buffering; bad JSON and unknown fields are DecodeErrors', () => {
    const ok = encodeControlMessage({ v: 1, type: 'expose', id: 1, transport: 'tcp', port: 15441 });
    expect(new ControlMessageReader().push(ok)).toEqual([{ v: 1, type: 'expose', id: 1, transport: 'tcp', port: 15441 }]);
    expect(() => new ControlMessageReader().push(Buffer.from('00010001', 'hex'))).toThrow(/at most 65536/);
    const frame = (s: string): Buffer => {
      const body = Buffer.from(s);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(body.length);
      return Buffer.concat([h, body]);
    };
    expect(() => new ControlMessageReader().push(frame('{nope'))).toThrow(DecodeError);
    expect(() => new ControlMessageReader().push(frame('{"v":1,"type":"expose","id":1,"transport":"tcp","port":70000}'))).toThrow(DecodeError);
    expect(() => new ControlMessageReader().push(frame('{"v":1,"type":"expose","id":1,"transport":"tcp","admin":true}'))).toThrow(DecodeError);
    expect(() => encodeControlMessage({ v: 1, type: 'expose', id: -1, transport: 'tcp' })).toThrow(/expose control message/);
  });
});
