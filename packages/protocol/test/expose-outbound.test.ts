/**
 * The outbound request/reply of the expose protocol and the SOCKS5 (RFC 1928) server codec,
 * checked byte for byte.
 */
import { describe, expect, it } from 'vitest';
import {
  ControlMessageReader,
  DecodeError,
  EncodeError,
  ExposeOwnerAnswer,
  encodeControlMessage,
  exposeAdvertisePayload,
  exposeSigningPayload,
  OutboundRefusal,
  SocksReply,
  decodeOutboundReply,
  decodeOutboundRequest,
  encodeOutboundReply,
  encodeOutboundRequest,
  encodeSocksMethod,
  encodeSocksReply,
  parseSocksGreeting,
  parseSocksRequest,
  socksReplyOf,
} from '../src/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('outbound request', () => {
  it('IPv4, IPv6 and host names, byte for byte, and back', () => {
    expect(hex(encodeOutboundRequest({ host: '198.51.100.7', port: 15441 }))).toBe('01033c5101c6336407');
    expect(hex(encodeOutboundRequest({ host: '2001:db8::1', port: 80 }))).toBe('010300500420010db8000000000000000000000001');
    expect(hex(encodeOutboundRequest({ host: 'tracker.example', port: 6969 }))).toBe('01031b39030f' + Buffer.from('tracker.example').toString('hex'));
    for (const t of [
      { host: '198.51.100.7', port: 15441 },
      { host: '2001:db8::1', port: 80 },
      { host: 'tracker.example', port: 6969 },
    ]) {
      const b = encodeOutboundRequest(t);
      expect(decodeOutboundRequest(b)).toEqual({ target: t, length: b.length });
      // every proper prefix asks for more bytes; trailing bytes (the connection's data) are not taken
      for (let i = 0; i < b.length; i++) expect(decodeOutboundRequest(b.subarray(0, i))).toBeUndefined();
      expect(decodeOutboundRequest(Buffer.concat([b, Buffer.from('GET /')]))?.length).toBe(b.length);
    }
  });

  it('refuses what it cannot encode and decodes hostile bytes only into DecodeError', () => {
    expect(() => encodeOutboundRequest({ host: 'a b', port: 80 })).toThrow(EncodeError);
    expect(() => encodeOutboundRequest({ host: 'x'.repeat(256), port: 80 })).toThrow(EncodeError);
    expect(() => encodeOutboundRequest({ host: '127.0.0.1', port: 0 })).toThrow(EncodeError);
    expect(() => decodeOutboundRequest(Buffer.from('0203005001', 'hex'))).toThrow(DecodeError); // version
    expect(() => decodeOutboundRequest(Buffer.from('0101005001', 'hex'))).toThrow(DecodeError); // kind
    expect(() => decodeOutboundRequest(Buffer.from('0103000001', 'hex'))).toThrow(DecodeError); // port 0
    expect(() => decodeOutboundRequest(Buffer.from('0103005002', 'hex'))).toThrow(DecodeError); // address type
    expect(() => decodeOutboundRequest(Buffer.from('010300500300', 'hex'))).toThrow(DecodeError); // empty name
    expect(decodeOutboundRequest(Buffer.from('01030050030261', 'hex'))).toBeUndefined(); // a name still arriving
    expect(() => decodeOutboundRequest(Buffer.from('0103005003022f2f', 'hex'))).toThrow(DecodeError); // not a host name
  });
});

describe('outbound reply', () => {
  it('connected with the bound address; refused with a reason code and message', () => {
    const ok = encodeOutboundReply({ ok: true, bound: { family: 'IPv4', address: '203.0.113.1', port: 40000 } });
    expect(hex(ok)).toBe('010004cb0071019c4000');
    expect(decodeOutboundReply(ok)).toEqual({ reply: { ok: true, bound: { family: 'IPv4', address: '203.0.113.1', port: 40000 } }, length: 10 });
    const refused = encodeOutboundReply({ ok: false, reason: 'forbidden', message: 'no' });
    expect(hex(refused)).toBe('010204000000000000026e6f');
    expect(decodeOutboundReply(refused)).toEqual({ reply: { ok: false, reason: 'forbidden', message: 'no' }, length: 12 });
    for (let i = 0; i < refused.length; i++) expect(decodeOutboundReply(refused.subarray(0, i))).toBeUndefined();
    const v6 = encodeOutboundReply({ ok: true, bound: { family: 'IPv6', address: '2001:db8::2', port: 1 } });
    expect(decodeOutboundReply(v6)?.reply).toEqual({ ok: true, bound: { family: 'IPv6', address: '2001:db8::2', port: 1 } });
    // every reason has its own code and survives the round trip; a long message is cut to 255 bytes
    expect(new Set(Object.values(OutboundRefusal)).size).toBe(Object.keys(OutboundRefusal).length);
    for (const reason of Object.keys(OutboundRefusal) as (keyof typeof OutboundRefusal)[]) {
      const b = encodeOutboundReply({ ok: false, reason, message: 'é'.repeat(200) });
      const r = decodeOutboundReply(b)!.reply;
      expect(r.ok === false && r.reason).toBe(reason);
      expect(r.ok === false && Buffer.byteLength(r.message)).toBeLessThanOrEqual(255);
    }
    expect(() => decodeOutboundReply(Buffer.from('0163040000000000000000', 'hex'))).toThrow(DecodeError); // unknown status
    expect(() => decodeOutboundReply(Buffer.from('0100050000000000000000', 'hex'))).toThrow(DecodeError); // family
  });
});

describe('SOCKS5 (RFC 1928)', () => {
  it('method negotiation: no authentication when offered, else 0xFF', () => {
    expect(parseSocksGreeting(Buffer.from('0502', 'hex'))).toBeUndefined();
    expect(parseSocksGreeting(Buffer.from('05020002', 'hex'))).toEqual({ methods: [0, 2], length: 4 });
    expect(hex(encodeSocksMethod([0, 2]))).toBe('0500');
    expect(hex(encodeSocksMethod([2]))).toBe('05ff');
    expect(() => parseSocksGreeting(Buffer.from('0401', 'hex'))).toThrow(DecodeError);
    expect(() => parseSocksGreeting(Buffer.from('0500', 'hex'))).toThrow(DecodeError);
  });

  it('requests with the three address types; an unknown type asks for reply 0x08', () => {
    expect(parseSocksRequest(Buffer.from('05010001c63364071f', 'hex'))).toBeUndefined();
    expect(parseSocksRequest(Buffer.from('05010001c63364071f90', 'hex'))).toEqual({
      ok: true,
      command: 1,
      target: { host: '198.51.100.7', port: 8080 },
      length: 10,
    });
    const name = Buffer.concat([Buffer.from('0501000309', 'hex'), Buffer.from('localhost'), Buffer.from('0050', 'hex')]);
    expect(parseSocksRequest(name)).toEqual({ ok: true, command: 1, target: { host: 'localhost', port: 80 }, length: name.length });
    const v6 = Buffer.from('05030004' + '00'.repeat(15) + '01' + '0035', 'hex');
    expect(parseSocksRequest(v6)).toEqual({ ok: true, command: 3, target: { host: '::1', port: 53 }, length: 22 });
    expect(parseSocksRequest(Buffer.from('0501000500000000', 'hex'))).toMatchObject({ ok: false, reply: SocksReply.addressTypeNotSupported });
    expect(() => parseSocksRequest(Buffer.from('0401000100000000', 'hex'))).toThrow(DecodeError);
  });

  it('replies, and the reply code of every outbound refusal', () => {
    expect(hex(encodeSocksReply(SocksReply.succeeded, { family: 'IPv4', address: '203.0.113.1', port: 40000 }))).toBe('05000001cb0071019c40');
    expect(hex(encodeSocksReply(SocksReply.notAllowed))).toBe('05020001000000000000');
    expect(hex(encodeSocksReply(SocksReply.succeeded, { family: 'IPv6', address: '::1', port: 1 }))).toBe('05000004' + '00'.repeat(15) + '01' + '0001');
    expect(socksReplyOf('disabled')).toBe(0x02);
    expect(socksReplyOf('forbidden')).toBe(0x02);
    expect(socksReplyOf('not-exposed')).toBe(0x02);
    expect(socksReplyOf('session-cap')).toBe(0x02);
    expect(socksReplyOf('rate-limited')).toBe(0x02);
    expect(socksReplyOf('global-cap')).toBe(0x02);
    expect(socksReplyOf('network-unreachable')).toBe(0x03);
    expect(socksReplyOf('host-unreachable')).toBe(0x04);
    expect(socksReplyOf('connection-refused')).toBe(0x05);
    expect(socksReplyOf('timeout')).toBe(0x06);
    expect(socksReplyOf('failed')).toBe(0x01);
  });
});

describe('owner advertise (expose request) and the owner answer', () => {
  const nonce = 'n'.repeat(43);
  it('an expose request may carry an advertise proof; the answer is an owner or not-advertised', () => {
    const key = Buffer.alloc(32, 1).toString('base64url');
    const sig = Buffer.alloc(64, 2).toString('base64url');
    const frame = encodeControlMessage({ v: 1, type: 'expose', id: 1, transport: 'tcp', port: 15441, advertise: { publicKey: key, signature: sig } });
    const [m] = new ControlMessageReader().push(frame);
    expect(m).toEqual({ v: 1, type: 'expose', id: 1, transport: 'tcp', port: 15441, advertise: { publicKey: key, signature: sig } });
    expect(() => encodeControlMessage({ v: 1, type: 'expose', id: 1, transport: 'tcp', advertise: { publicKey: 'short', signature: sig } })).toThrow(
      EncodeError,
    );
    expect(ExposeOwnerAnswer.parse({ v: 1, transport: 'tcp', port: 1, address: '203.0.113.1:1', peer: 'a'.repeat(32) })).toBeTruthy();
    expect(ExposeOwnerAnswer.parse({ v: 1, error: 'not-advertised', message: 'no' })).toBeTruthy();
    expect(ExposeOwnerAnswer.safeParse({ v: 1, transport: 'tcp', port: 1, address: 'x', peer: 'not a peer id' }).success).toBe(false);
  });

  it('the advertise payload is separated from the authentication payload', () => {
    const adv = Buffer.from(exposeAdvertisePayload(nonce, 'a'.repeat(32))).toString();
    expect(adv).toBe(`nat-expose-advertise-v1:${nonce}:${'a'.repeat(32)}`);
    expect(adv).not.toBe(Buffer.from(exposeSigningPayload(nonce, 'a'.repeat(32))).toString());
    expect(() => exposeAdvertisePayload('bad nonce', 'a'.repeat(32))).toThrow(EncodeError);
  });
});
