import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { DecodeError, type ProxyHeaderResult, canonicalIp, decodeProxyHeader, encodeProxyV2Header, looksLikeProxyHeader } from '@nat/protocol';

// An independent implementation (npm proxy-protocol-js) builds the headers the decoder reads.
const require = createRequire(import.meta.url);
const pp = require('proxy-protocol-js') as {
  INETProtocol: { TCP4: unknown; TCP6: unknown };
  Peer: new (ip: string, port: number) => unknown;
  V1ProxyProtocol: new (p: unknown, src: unknown, dst: unknown) => { build(): string };
  IPv6Address: { createFrom(bytes: number[]): unknown };
  IPv6ProxyAddress: new (src: unknown, sport: number, dst: unknown, dport: number) => unknown;
  V2ProxyProtocol: new (cmd: unknown, transport: unknown, address: unknown, data?: Uint8Array) => { build(): Uint8Array };
  Command: { PROXY: unknown };
  TransportProtocol: { STREAM: unknown };
};

const v4 = (address: string, port: number) => ({ family: 'IPv4' as const, address, port });
const v6 = (address: string, port: number) => ({ family: 'IPv6' as const, address, port });

function header(r: ProxyHeaderResult) {
  if (r.kind !== 'header') throw new Error(`expected a header, got ${r.kind}`);
  return r;
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof DecodeError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('PROXY protocol header decoder (haproxy proxy-protocol.txt sections 2.1, 2.2)', () => {
  test('v2 vector: TCP over IPv4 from the spec layout, with the bytes that follow kept', () => {
    // signature | 0x21 v2 PROXY | 0x11 AF_INET STREAM | len 12 | 192.0.2.1 | 203.0.113.1 | 56324 | 443
    const bytes = Buffer.from('0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'c0000201' + 'cb007101' + 'dc04' + '01bb' + '0001', 'hex');
    const r = header(decodeProxyHeader(bytes));
    expect(r.length).toBe(28);
    expect(Buffer.from(r.rest).toString('hex')).toBe('0001');
    expect(r.header).toEqual({ version: 2, command: 'proxy', transport: 'tcp', source: v4('192.0.2.1', 56324), destination: v4('203.0.113.1', 443) });
  });

  test('v2 built by proxy-protocol-js (IPv6, STREAM) decodes to its addresses', () => {
    const a = new pp.IPv6ProxyAddress(
      pp.IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
      1234,
      pp.IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]),
      443,
    );
    const bytes = new pp.V2ProxyProtocol(pp.Command.PROXY, pp.TransportProtocol.STREAM, a).build();
    const r = header(decodeProxyHeader(bytes));
    expect(r.header).toEqual({ version: 2, command: 'proxy', transport: 'tcp', source: v6('2001:db8::5', 1234), destination: v6('2001:db8::6', 443) });
    expect(r.rest.length).toBe(0);
  });

  test('v1 built by proxy-protocol-js, and the spec examples (TCP6, UNKNOWN)', () => {
    const line = new pp.V1ProxyProtocol(pp.INETProtocol.TCP4, new pp.Peer('192.0.2.7', 4000), new pp.Peer('203.0.113.1', 443)).build();
    const r = header(decodeProxyHeader(Buffer.from(`${line}GET / HTTP/1.1\r\n`)));
    expect(r.header).toEqual({ version: 1, command: 'proxy', transport: 'tcp', source: v4('192.0.2.7', 4000), destination: v4('203.0.113.1', 443) });
    expect(Buffer.from(r.rest).toString()).toBe('GET / HTTP/1.1\r\n');
    const r6 = header(decodeProxyHeader(Buffer.from('PROXY TCP6 2001:DB8::1 2001:db8::2 65535 443\r\n')));
    expect(r6.header.source).toEqual(v6('2001:db8::1', 65535));
    const unknown = header(decodeProxyHeader(Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n')));
    expect(unknown.header).toEqual({ version: 1, command: 'proxy', transport: 'unspec' });
  });

  test('round trip with the encoder: every source and destination, both families, both transports', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.ipV4(),
        fc.ipV4(),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        (six, udp, a, b, p, q) => {
          const src = six ? v6(`2001:db8::${p.toString(16)}`, p) : v4(a, p);
          const dst = six ? v6(`2001:db8:1::${q.toString(16)}`, q) : v4(b, q);
          const r = header(decodeProxyHeader(encodeProxyV2Header(udp ? 'udp' : 'tcp', src, dst)));
          // the decoder gives the canonical text (RFC 5952): 2001:db8:1::0 comes back as 2001:db8:1::
          const canonical = (t: typeof src): typeof src => ({ ...t, address: canonicalIp(t.address) });
          expect(r.header).toEqual({ version: 2, command: 'proxy', transport: udp ? 'udp' : 'tcp', source: canonical(src), destination: canonical(dst) });
        },
      ),
    );
    expect(header(decodeProxyHeader(encodeProxyV2Header('tcp'))).header).toEqual({ version: 2, command: 'local', transport: 'unspec' });
  });

  test('incremental: every prefix of a header is need-more, never an error', () => {
    const v2 = encodeProxyV2Header('tcp', v6('2001:db8::1', 9), v6('2001:db8::2', 443));
    const v1 = Buffer.from('PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\n');
    for (const whole of [v2, v1]) {
      for (let n = 0; n < whole.length; n++) expect(decodeProxyHeader(whole.subarray(0, n)).kind).toBe('need-more');
      expect(decodeProxyHeader(whole).kind).toBe('header');
    }
    expect(looksLikeProxyHeader(v2.subarray(0, 1))).toBe(true);
    expect(looksLikeProxyHeader(Buffer.from('PRO'))).toBe(true);
  });

  test('bad inputs: typed errors with their codes, and a cap on what it waits for', () => {
    const good = Buffer.from(encodeProxyV2Header('tcp', v4('192.0.2.1', 1), v4('192.0.2.2', 2)));
    const with_ = (i: number, v: number) => Buffer.from(good).fill(v, i, i + 1);
    expect(codeOf(() => decodeProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')))).toBe('BAD_SYNTAX');
    expect(codeOf(() => decodeProxyHeader(Buffer.from([0x16, 0x03, 0x01])))).toBe('BAD_SYNTAX'); // a TLS ClientHello
    expect(codeOf(() => decodeProxyHeader(with_(12, 0x11)))).toBe('BAD_VALUE'); // version 1 in a v2 header
    expect(codeOf(() => decodeProxyHeader(with_(12, 0x22)))).toBe('BAD_VALUE'); // command 2
    expect(codeOf(() => decodeProxyHeader(with_(13, 0x41)))).toBe('BAD_VALUE'); // family 4
    expect(codeOf(() => decodeProxyHeader(with_(15, 8)))).toBe('BAD_LENGTH'); // IPv4 needs 12 address bytes
    expect(codeOf(() => decodeProxyHeader(Buffer.from(good).fill(0xff, 14, 16)))).toBe('BAD_LENGTH'); // 65551 bytes: over the cap
    expect(decodeProxyHeader(with_(15, 0x10)).kind).toBe('need-more'); // 16 address bytes announced, 12 given
    expect(codeOf(() => decodeProxyHeader(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)))).toBe('BAD_LENGTH'); // no CRLF in 107 bytes
    expect(codeOf(() => decodeProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 2001:db8::1 1 2\r\n')))).toBe('BAD_SYNTAX');
    expect(codeOf(() => decodeProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n')))).toBe('BAD_SYNTAX');
    expect(codeOf(() => decodeProxyHeader(Buffer.from('PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n')))).toBe('BAD_SYNTAX');
    expect(codeOf(() => decodeProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 2\x00\r\n')))).toBe('BAD_SYNTAX');
  });

  test('fuzz: arbitrary bytes after either signature give need-more, a header or a DecodeError, nothing else', () => {
    const sig2 = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(sig2), fc.constant(Buffer.from('PROXY ')), fc.constant(Buffer.alloc(0))),
        fc.uint8Array({ maxLength: 300 }),
        (sig, tail) => {
          const bytes = Buffer.concat([sig, tail]);
          try {
            const r = decodeProxyHeader(bytes, 256);
            if (r.kind === 'header') expect(r.length + r.rest.length).toBe(bytes.length);
            if (r.kind === 'header') expect(r.length).toBeLessThanOrEqual(256);
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
