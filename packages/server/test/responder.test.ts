import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage, rawAttribute, verifyFingerprint, type TransportAddress } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { StunResponder, type SocketRole } from '../src/index.js';

const endpoints = { family: 'IPv4' as const, primary: '203.0.113.1', alternate: '203.0.113.2', port: 3478, altPort: 3479 };
const client: TransportAddress = { family: 'IPv4', address: '198.51.100.7', port: 40000 };
const TID = new Uint8Array(12).fill(9);
const pad = (n: number) => attr(Attr.Padding, new Uint8Array(n));

function request(attributes: ReturnType<typeof attr>[] = [], fingerprint = false): Uint8Array {
  return encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: TID, attributes }, { fingerprint });
}

describe('StunResponder (sans I/O)', () => {
  const responder = () => new StunResponder({ endpoints, rateLimit: { perSecond: 0 } });

  it('answers a binding request with XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS', () => {
    const reply = responder().handleDatagram(request([pad(64)]), client, 'PP', 0)!;
    expect(reply.via).toBe('PP');
    expect(reply.to).toEqual(client);
    const m = decodeStunMessage(reply.bytes);
    expect(m.class).toBe(StunClass.SuccessResponse);
    expect(Buffer.from(m.transactionId)).toEqual(Buffer.from(TID));
    expect(m.get(Attr.XorMappedAddress)).toEqual(client);
    expect(m.get(Attr.MappedAddress)).toEqual(client);
    expect(m.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv4', address: '203.0.113.1', port: 3478 });
    expect(m.get(Attr.OtherAddress)).toEqual({ family: 'IPv4', address: '203.0.113.2', port: 3479 });
  });

  it.each<[boolean, boolean, SocketRole, SocketRole, string, number]>([
    [false, false, 'PP', 'PP', '203.0.113.1', 3478],
    [true, false, 'PP', 'AP', '203.0.113.2', 3478],
    [false, true, 'PP', 'PA', '203.0.113.1', 3479],
    [true, true, 'PP', 'AA', '203.0.113.2', 3479],
    [true, true, 'AA', 'PP', '203.0.113.1', 3478],
    [false, true, 'AP', 'AA', '203.0.113.2', 3479],
  ])('CHANGE-REQUEST ip=%s port=%s on %s answers via %s (%s:%s)', (changeIp, changePort, on, via, ip, port) => {
    const reply = responder().handleDatagram(request([attr(Attr.ChangeRequest, { changeIp, changePort })]), client, on, 0)!;
    expect(reply.via).toBe(via);
    const m = decodeStunMessage(reply.bytes);
    expect(m.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv4', address: ip, port });
    // OTHER-ADDRESS names the IP and port that both differ from where the request arrived.
    const other = m.get(Attr.OtherAddress)!;
    expect(other.address).not.toBe(on[0] === 'P' ? '203.0.113.1' : '203.0.113.2');
    expect(other.port).not.toBe(on[1] === 'P' ? 3478 : 3479);
  });

  it('never answers a UDP request with more bytes than it received, beyond what the RFC requires', () => {
    const r = new StunResponder({ endpoints, software: 'nat-server test', rateLimit: { perSecond: 0 } });
    const bare = request();
    const reply = r.handleDatagram(bare, client, 'PP', 0)!;
    const m = decodeStunMessage(reply.bytes);
    // required: XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS; nothing optional fits in 20 bytes
    expect(m.attributes().map((a) => a.type)).toEqual([0x0020, 0x802b, 0x802c]);
    expect(reply.bytes.length).toBe(56);
    // a padded request buys room for FINGERPRINT, MAPPED-ADDRESS and SOFTWARE
    const padded = request([pad(80)], true);
    const big = r.handleDatagram(padded, client, 'PP', 0)!;
    const mb = decodeStunMessage(big.bytes);
    expect(mb.has(Attr.MappedAddress)).toBe(true);
    expect(mb.get(Attr.Software)).toBe('nat-server test');
    expect(verifyFingerprint(mb)).toBe(true);
    expect(big.bytes.length).toBeLessThanOrEqual(padded.length);
  });

  it('sends RESPONSE-PORT answers to the requester IP only', () => {
    const reply = responder().handleDatagram(request([attr(Attr.ResponsePort, 5555)]), client, 'PP', 0)!;
    expect(reply.to).toEqual({ family: 'IPv4', address: client.address, port: 5555 });
  });

  it('answers classic RFC 3489 requests classically', () => {
    const tid = new Uint8Array(16).fill(4);
    const req = encodeStunMessage({ method: 1, class: 0, transactionId: tid, attributes: [attr(Attr.ChangeRequest, { changeIp: true, changePort: true })] });
    const reply = responder().handleDatagram(req, client, 'PP', 0)!;
    expect(reply.via).toBe('AA');
    const m = decodeStunMessage(reply.bytes);
    expect(m.classic).toBe(true);
    expect(Buffer.from(m.transactionId)).toEqual(Buffer.from(tid));
    expect(m.get(Attr.MappedAddress)).toEqual(client);
    expect(m.get(Attr.SourceAddress)).toEqual({ family: 'IPv4', address: '203.0.113.2', port: 3479 });
    expect(m.get(Attr.ChangedAddress)).toEqual({ family: 'IPv4', address: '203.0.113.2', port: 3479 });
    expect(m.has(Attr.XorMappedAddress)).toBe(false);
  });

  it('answers 420 with UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes', () => {
    const reply = responder().handleDatagram(
      request([rawAttribute(0x7abc, new Uint8Array(4)), rawAttribute(0xfabc, new Uint8Array(4)), pad(40)]),
      client,
      'PP',
      0,
    )!;
    const m = decodeStunMessage(reply.bytes);
    expect(m.class).toBe(StunClass.ErrorResponse);
    expect(m.get(Attr.ErrorCode)?.code).toBe(420);
    expect(m.get(Attr.UnknownAttributes)).toEqual([0x7abc]);
  });

  it('answers 420 to change-IP when it has no alternate address (RFC 5780 section 6.1)', () => {
    const r = new StunResponder({ endpoints: { family: 'IPv4', primary: '203.0.113.1', port: 3478, altPort: 3479 }, rateLimit: { perSecond: 0 } });
    const m = decodeStunMessage(r.handleDatagram(request([attr(Attr.ChangeRequest, { changeIp: true, changePort: false })]), client, 'PP', 0)!.bytes);
    expect(m.get(Attr.ErrorCode)?.code).toBe(420);
    expect(m.get(Attr.UnknownAttributes)).toEqual([0x0003]);
    // change-port still works
    const ok = decodeStunMessage(r.handleDatagram(request([attr(Attr.ChangeRequest, { changeIp: false, changePort: true })]), client, 'PP', 0)!.bytes);
    expect(ok.get(Attr.ResponseOrigin)?.port).toBe(3479);
    expect(ok.has(Attr.OtherAddress)).toBe(false);
  });

  it('answers 400 to a request with sound header and broken attributes, and drops non-STUN', () => {
    const r = responder();
    const broken = Uint8Array.from(request([attr(Attr.Software, 'abcd')]));
    broken[22] = 0; // SOFTWARE length 4 -> 0x0004 stays; break it to 0x00ff
    broken[23] = 0xff;
    const reply = r.handleDatagram(broken, client, 'PP', 0)!;
    const m = decodeStunMessage(reply.bytes);
    expect(m.get(Attr.ErrorCode)?.code).toBe(400);
    expect(reply.bytes.length).toBeLessThanOrEqual(broken.length + 8);
    expect(r.handleDatagram(Buffer.from('GET / HTTP/1.1\r\n\r\n'), client, 'PP', 0)).toBeUndefined();
    expect(r.handleDatagram(new Uint8Array(0), client, 'PP', 0)).toBeUndefined();
    expect(r.stats.dropped).toBe(2);
  });

  it('drops a request with a wrong FINGERPRINT, responses and indications', () => {
    const r = responder();
    const bad = Uint8Array.from(request([], true));
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    expect(r.handleDatagram(bad, client, 'PP', 0)).toBeUndefined();
    const resp = encodeStunMessage({ method: 1, class: StunClass.SuccessResponse, transactionId: TID });
    expect(r.handleDatagram(resp, client, 'PP', 0)).toBeUndefined();
    const ind = encodeStunMessage({ method: 1, class: StunClass.Indication, transactionId: TID });
    expect(r.handleDatagram(ind, client, 'PP', 0)).toBeUndefined();
    expect(r.stats).toMatchObject({ dropped: 2, indications: 1, answered: 0 });
  });

  it('rate limits per source IP with a token bucket, independent of other sources', () => {
    const r = new StunResponder({ endpoints, rateLimit: { perSecond: 10, burst: 5 } });
    const req = request();
    let answered = 0;
    for (let i = 0; i < 20; i++) if (r.handleDatagram(req, client, 'PP', 1000)) answered++;
    expect(answered).toBe(5);
    // another host is not affected
    expect(r.handleDatagram(req, { ...client, address: '198.51.100.8' }, 'PP', 1000)).toBeDefined();
    // 500 ms later the first host has 5 tokens again (10/s)
    let later = 0;
    for (let i = 0; i < 20; i++) if (r.handleDatagram(req, client, 'PP', 1500)) later++;
    expect(later).toBe(5);
    expect(r.stats.rateLimited).toBe(30);
  });

  it('keeps the rate limiter bounded under a flood of spoofed sources', () => {
    const r = new StunResponder({ endpoints, rateLimit: { perSecond: 10, maxSources: 1000 } });
    const req = request();
    for (let i = 0; i < 20_000; i++) r.handleDatagram(req, { family: 'IPv4', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1 }, 'PP', i);
    expect(r.trackedSources).toBeLessThanOrEqual(1000);
  });

  it('answers 400 to other methods and to CHANGE-REQUEST over streams', () => {
    const r = responder();
    const alloc = encodeStunMessage({ method: StunMethod.Allocate, class: 0, transactionId: TID, attributes: [pad(60)] });
    expect(decodeStunMessage(r.handleDatagram(alloc, client, 'PP', 0)!.bytes).get(Attr.ErrorCode)?.code).toBe(400);
    const viaTcp = r.handleStreamMessage(request([attr(Attr.ChangeRequest, { changeIp: true, changePort: false })]), client, 'PP', 0)!;
    expect(decodeStunMessage(viaTcp).get(Attr.ErrorCode)).toEqual({ code: 400, reason: 'Bad Request: CHANGE-REQUEST and RESPONSE-PORT are UDP-only' });
    // over a stream, no amplification budget applies
    const full = decodeStunMessage(r.handleStreamMessage(request(), client, 'PP', 0)!);
    expect(full.has(Attr.MappedAddress)).toBe(true);
  });

  it('answers IPv6 clients with IPv6 addresses', () => {
    const r = new StunResponder({
      endpoints: { family: 'IPv6', primary: '2001:db8::1', alternate: '2001:db8::2', port: 3478, altPort: 3479 },
      rateLimit: { perSecond: 0 },
    });
    const c6: TransportAddress = { family: 'IPv6', address: '2001:db8::99', port: 1234 };
    const m = decodeStunMessage(r.handleDatagram(request(), c6, 'PP', 0)!.bytes);
    expect(m.get(Attr.XorMappedAddress)).toEqual(c6);
    expect(m.get(Attr.OtherAddress)).toEqual({ family: 'IPv6', address: '2001:db8::2', port: 3479 });
  });
});
