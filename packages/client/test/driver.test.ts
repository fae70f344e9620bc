import { execFileSync } from 'node:child_process';
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import {
  Attr,
  type AttributeEntry,
  type StunMessage,
  StunClass,
  StunMethod,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  errorCode,
  rawAttribute,
} from '@nat/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StunClientError, StunStreamSocket, StunUdpSocket, encodeBindingRequest, parseBindingResponse, resolveServer, stunBinding } from '../src/index.js';

/** How a scripted responder answers a request: bytes, or nothing. */
type Script = (req: StunMessage, from: TransportAddress, count: number) => Uint8Array | Uint8Array[] | undefined;

function success(req: StunMessage, from: TransportAddress, extra: AttributeEntry[] = []): Uint8Array {
  return encodeStunMessage({
    method: req.method,
    class: StunClass.SuccessResponse,
    transactionId: req.transactionId,
    classic: req.classic,
    attributes: req.classic ? [attr(Attr.MappedAddress, from), ...extra] : [attr(Attr.XorMappedAddress, from), ...extra],
  });
}

let udpServer: UdpSocket;
let udpAddress: TransportAddress;
let script: Script;
const requestsSeen = new Map<string, number>();
const requestLog: StunMessage[] = [];

beforeAll(async () => {
  udpServer = createSocket('udp4');
  await new Promise<void>((r) => udpServer.bind(0, '127.0.0.1', () => r()));
  udpAddress = { family: 'IPv4', address: '127.0.0.1', port: udpServer.address().port };
  udpServer.on('message', (buf, rinfo) => {
    const req = decodeStunMessage(buf);
    requestLog.push(req);
    const n = (requestsSeen.get(req.transactionKey) ?? 0) + 1;
    requestsSeen.set(req.transactionKey, n);
    const from: TransportAddress = { family: 'IPv4', address: rinfo.address, port: rinfo.port };
    const out = script(req, from, n);
    for (const b of out === undefined ? [] : Array.isArray(out) ? out : [out]) udpServer.send(b, rinfo.port, rinfo.address);
  });
});
afterAll(() => udpServer.close());
afterEach(() => {
  requestsSeen.clear();
  requestLog.length = 0;
});

describe('StunUdpSocket and stunBinding over UDP', () => {
  it('returns the mapped address, origin, alternate and RTT', async () => {
    script = (req, from) =>
      success(req, from, [
        attr(Attr.MappedAddress, from),
        attr(Attr.ResponseOrigin, udpAddress),
        attr(Attr.OtherAddress, { family: 'IPv4', address: '127.0.0.2', port: 3479 }),
        attr(Attr.Software, 'test'),
      ]);
    const r = await stunBinding(udpAddress, { localAddress: '127.0.0.3' });
    expect(r.mappedAddress.address).toBe('127.0.0.3');
    expect(r.mappedAddress).toEqual(r.localAddress);
    expect(r.mappedAddressPlain).toEqual(r.mappedAddress);
    expect(r.responseOrigin).toEqual(udpAddress);
    expect(r.sourceAddress).toEqual(udpAddress);
    expect(r.otherAddress).toEqual({ family: 'IPv4', address: '127.0.0.2', port: 3479 });
    expect(r.software).toBe('test');
    expect(r.transmissions).toBe(1);
    expect(r.rttMs).toBeGreaterThanOrEqual(0);
    expect(r.rttMs).toBeLessThan(1000);
  });

  it('sends CHANGE-REQUEST, RESPONSE-PORT and PADDING as asked', async () => {
    script = (req, from) => success(req, from);
    await stunBinding(udpAddress, { changeIp: true, changePort: false, padding: 10, fingerprint: true, software: 'x' });
    const req = requestLog[0]!;
    expect(req.get(Attr.ChangeRequest)).toEqual({ changeIp: true, changePort: false });
    expect(req.get(Attr.Padding)?.length).toBe(10);
    expect(req.get(Attr.Software)).toBe('x');
    expect(req.fingerprintOffset).toBeGreaterThan(0);
    const bare = decodeStunMessage(encodeBindingRequest());
    expect(bare.attributeCount).toBe(0);
    expect(bare.bytes.length).toBe(20);
    const rp = decodeStunMessage(encodeBindingRequest({ responsePort: 40000, alwaysSendChangeRequest: true }));
    expect(rp.get(Attr.ResponsePort)).toBe(40000);
    expect(rp.get(Attr.ChangeRequest)).toEqual({ changeIp: false, changePort: false });
  });

  it('retransmits with a doubling RTO and gives up after Rc requests', async () => {
    script = () => undefined;
    const t0 = performance.now();
    const err = await stunBinding(udpAddress, { rto: 40, rc: 3, rm: 2 }).catch((e: unknown) => e);
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(StunClientError);
    expect(err).toMatchObject({ code: 'TIMEOUT' });
    expect([...requestsSeen.values()]).toEqual([3]);
    expect(elapsed).toBeGreaterThanOrEqual(40 + 80 + 80 - 5);
    expect(elapsed).toBeLessThan(1000);
  });

  it('is answered after losses: the third copy gets through', async () => {
    script = (req, from, n) => (n < 3 ? undefined : success(req, from));
    // RTO 200 ms: the answer to the third copy (sent at 600 ms) has 800 ms to arrive before a
    // fourth goes out; with 20 ms (80 ms) a loaded machine (test files run at once) sent a fourth.
    const r = await stunBinding(udpAddress, { rto: 200, rc: 5 });
    expect(r.transmissions).toBe(3);
  });

  it('ignores a response with the wrong transaction id and garbage', async () => {
    script = (req, from) => {
      const wrong = encodeStunMessage({
        method: StunMethod.Binding,
        class: StunClass.SuccessResponse,
        attributes: [attr(Attr.XorMappedAddress, { ...from, port: 1 })],
      });
      return [new Uint8Array([1, 2, 3]), wrong, success(req, from)];
    };
    const r = await stunBinding(udpAddress, { rto: 500 });
    expect(r.mappedAddress.port).not.toBe(1);
    expect(r.transmissions).toBe(1);
  });

  it('rejects an error response with its code', async () => {
    script = (req) =>
      encodeStunMessage({
        method: req.method,
        class: StunClass.ErrorResponse,
        transactionId: req.transactionId,
        attributes: [attr(Attr.ErrorCode, errorCode(420)), attr(Attr.UnknownAttributes, [0x0027])],
      });
    await expect(stunBinding(udpAddress, { responsePort: 9 })).rejects.toMatchObject({
      code: 'ERROR_RESPONSE',
      stunErrorCode: 420,
      message: expect.stringMatching(/420.*RESPONSE-PORT/),
    });
  });

  it('rejects a response without a mapped address or with an unknown comprehension-required attribute', async () => {
    script = (req) => encodeStunMessage({ method: req.method, class: StunClass.SuccessResponse, transactionId: req.transactionId });
    await expect(stunBinding(udpAddress)).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringMatching(/neither/) });
    script = (req, from) => success(req, from, [rawAttribute(0x7777, new Uint8Array(4))]);
    await expect(stunBinding(udpAddress)).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringMatching(/0x7777/) });
  });

  it('talks classic RFC 3489 and ignores XOR-MAPPED-ADDRESS in a classic response', async () => {
    script = (req, from) =>
      success(req, from, [
        attr(Attr.SourceAddress, udpAddress),
        attr(Attr.ChangedAddress, { family: 'IPv4', address: '127.0.0.2', port: 3479 }),
        // what Vovida stund sends: an XOR-MAPPED-ADDRESS XORed with other bytes than RFC 8489's
        attr(Attr.XorMappedAddress, { ...from, port: from.port ^ 0x1111 }),
        attr(Attr.Software, 'classic\0\0'),
      ]);
    const r = await stunBinding(udpAddress, { classic: true });
    expect(requestLog[0]!.classic).toBe(true);
    expect(requestLog[0]!.transactionId.length).toBe(16);
    expect(r.response.classic).toBe(true);
    expect(r.mappedAddress).toEqual(r.localAddress);
    expect(r.xorMappedAddress).toBeUndefined();
    expect(r.responseOrigin).toEqual(udpAddress);
    expect(r.otherAddress?.port).toBe(3479);
    expect(r.software).toBe('classic');
  });

  it('runs many transactions at once on one socket', async () => {
    // answer in reverse order of arrival
    const held: [StunMessage, TransportAddress][] = [];
    script = (req, from) => {
      held.push([req, from]);
      if (held.length < 20) return undefined;
      return held.reverse().map(([q, f]) => success(q, f, [attr(Attr.Software, q.transactionKey)]));
    };
    const socket = await StunUdpSocket.open({ localAddress: '127.0.0.1', retransmission: { rto: 2000 } });
    try {
      const requests = Array.from({ length: 20 }, () => encodeBindingRequest());
      const results = await Promise.all(requests.map((q) => socket.request(q, udpAddress)));
      results.forEach((r, i) => expect(r.response.transactionKey).toBe(decodeStunMessage(requests[i]!).transactionKey));
      expect(socket.pending).toBe(0);
    } finally {
      await socket.close();
    }
  });

  it('aborts a request by its signal, and closing rejects the pending ones', async () => {
    script = () => undefined;
    const socket = await StunUdpSocket.open({ localAddress: '127.0.0.1' });
    const ac = new AbortController();
    const p = socket.request(encodeBindingRequest(), udpAddress, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    const q = socket.request(encodeBindingRequest(), udpAddress);
    const w = socket.waitForMessage(() => true, { timeoutMs: 10_000 });
    await socket.close();
    await expect(q).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(w).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(socket.request(encodeBindingRequest(), udpAddress)).rejects.toMatchObject({ code: 'ABORTED' });
    const pre = AbortSignal.abort();
    await expect(stunBinding(udpAddress, { signal: pre })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('hands unmatched STUN messages to listeners', async () => {
    const a = await StunUdpSocket.open({ localAddress: '127.0.0.1' });
    const b = await StunUdpSocket.open({ localAddress: '127.0.0.1' });
    try {
      const request = encodeBindingRequest();
      const seen = a.waitForMessage((m) => m.message.transactionKey === decodeStunMessage(request).transactionKey, { timeoutMs: 2000 });
      await b.send(request, a.localAddress);
      const got = await seen;
      expect(got?.from.port).toBe(b.localAddress.port);
      expect(await a.waitForMessage(() => true, { timeoutMs: 20 })).toBeUndefined();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('reports bind failures and bad addresses', async () => {
    await expect(StunUdpSocket.open({ localAddress: '192.0.2.1' })).rejects.toMatchObject({ code: 'SOCKET' });
    await expect(stunBinding('not an address!')).rejects.toMatchObject({ code: 'BAD_ADDRESS' });
    await expect(resolveServer('127.0.0.1')).resolves.toEqual({ address: { family: 'IPv4', address: '127.0.0.1', port: 3478 }, hostname: undefined });
    await expect(resolveServer('[::1]:5000')).resolves.toMatchObject({ address: { family: 'IPv6', address: '::1', port: 5000 } });
    await expect(resolveServer('localhost:1234', { family: 'IPv4' })).resolves.toEqual({
      address: { family: 'IPv4', address: '127.0.0.1', port: 1234 },
      hostname: 'localhost',
    });
  });

  it('parseBindingResponse reports undecodable attributes as BAD_RESPONSE', () => {
    const req = decodeStunMessage(encodeBindingRequest());
    const bad = encodeStunMessage({
      method: StunMethod.Binding,
      class: StunClass.SuccessResponse,
      transactionId: req.transactionId,
      attributes: [rawAttribute(0x0020, new Uint8Array([0, 9, 0, 0, 0, 0, 0, 0]))],
    });
    const local: TransportAddress = { family: 'IPv4', address: '127.0.0.1', port: 1 };
    expect(() => parseBindingResponse({ response: decodeStunMessage(bad), from: local, rttMs: 1, transmissions: 1 }, local)).toThrow(
      expect.objectContaining({ code: 'BAD_RESPONSE' }),
    );
  });
});

/** A STUN-over-stream responder: answers each request, writing every response byte by byte. */
function streamResponder(onRequest?: (req: StunMessage) => 'answer' | 'ignore' | 'garbage' | 'close') {
  return (conn: Socket): void => {
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    conn.on('error', () => {});
    conn.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 20) {
        const len = 20 + buffered.readUInt16BE(2);
        if (buffered.length < len) break;
        const req = decodeStunMessage(buffered.subarray(0, len));
        buffered = buffered.subarray(len);
        const action = onRequest?.(req) ?? 'answer';
        if (action === 'ignore') continue;
        if (action === 'close') {
          conn.destroy();
          return;
        }
        if (action === 'garbage') {
          conn.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
          continue;
        }
        const from: TransportAddress = { family: 'IPv4', address: conn.remoteAddress!, port: conn.remotePort! };
        const bytes = success(req, from);
        // one response after the other, each in 7-byte pieces on separate ticks
        queue = queue.then(async () => {
          for (let i = 0; i < bytes.length && !conn.destroyed; i += 7) {
            conn.write(bytes.subarray(i, i + 7));
            await new Promise((r) => setImmediate(r));
          }
        });
      }
    });
  };
}

describe('StunStreamSocket over TCP', () => {
  let server: Server;
  let address: TransportAddress;
  let action: 'answer' | 'ignore' | 'garbage' | 'close' = 'answer';
  beforeAll(async () => {
    server = createServer(streamResponder(() => action));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = { family: 'IPv4', address: '127.0.0.1', port: (server.address() as { port: number }).port };
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('binds over TCP, reassembling a response cut into pieces', async () => {
    action = 'answer';
    const r = await stunBinding(address, { transport: 'tcp', localAddress: '127.0.0.4' });
    expect(r.mappedAddress.address).toBe('127.0.0.4');
    expect(r.mappedAddress).toEqual(r.localAddress);
    expect(r.sourceAddress).toEqual(address);
  });

  it('runs concurrent transactions on one connection', async () => {
    action = 'answer';
    const conn = await StunStreamSocket.connect(address);
    try {
      const rs = await Promise.all(Array.from({ length: 10 }, () => conn.request(encodeBindingRequest())));
      expect(new Set(rs.map((r) => r.response.transactionKey)).size).toBe(10);
    } finally {
      await conn.close();
    }
  });

  it('times out after Ti without retransmitting', async () => {
    action = 'ignore';
    const t0 = performance.now();
    await expect(stunBinding(address, { transport: 'tcp', ti: 150 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('fails on a stream that loses its framing, and on a closed connection', async () => {
    action = 'garbage';
    await expect(stunBinding(address, { transport: 'tcp', ti: 5000 })).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
    action = 'close';
    await expect(stunBinding(address, { transport: 'tcp', ti: 5000 })).rejects.toMatchObject({ code: 'SOCKET' });
  });

  it('reports a refused connection', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    await expect(stunBinding({ family: 'IPv4', address: '127.0.0.1', port }, { transport: 'tcp' })).rejects.toMatchObject({ code: 'SOCKET' });
  });
});

const haveOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!haveOpenssl) console.warn('skipping the TLS tests: no openssl to make a certificate');

describe.skipIf(!haveOpenssl)('StunStreamSocket over TLS', () => {
  let server: ReturnType<typeof createTlsServer>;
  let address: TransportAddress;
  let cert: Buffer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nat-client-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'));
    server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, streamResponder());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = { family: 'IPv4', address: '127.0.0.1', port: (server.address() as { port: number }).port };
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('binds over TLS, verifying the certificate by host name', async () => {
    const r = await stunBinding(`localhost:${address.port}`, { transport: 'tls', tls: { ca: cert } });
    expect(r.mappedAddress.address).toBe('127.0.0.1');
  });

  it('refuses an untrusted certificate', async () => {
    await expect(stunBinding(address, { transport: 'tls' })).rejects.toMatchObject({ code: 'SOCKET' });
  });
});
