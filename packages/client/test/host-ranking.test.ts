// Host candidate ranking (RFC 8445 section 5.1.2.1, RFC 8421): the address the kernel routes
// from toward the server first, then addresses the internet can reach, then private ones.
import { isGlobalIPv6 } from '../src/ice/family.js';
import { describe, expect, it } from 'vitest';
import { addressPrecedence, isPublicAddress, rankHostAddresses, routeSourceAddress } from '../src/index.js';

describe('isPublicAddress', () => {
  it('tells internet-reachable addresses from special-purpose ones', () => {
    for (const ip of ['198.51.100.2', '203.0.113.7', '8.8.8.8', '2001:db8::1', '2a00:1450::1']) expect(isPublicAddress(ip), ip).toBe(true);
    for (const ip of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '198.18.1.2',
      '100.64.0.1',
      '169.254.1.1',
      '127.0.0.1',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc12::1',
      '::ffff:192.0.2.1',
    ]) {
      expect(isPublicAddress(ip), ip).toBe(false);
    }
  });
});

describe('addressPrecedence (RFC 6724 section 2.1 policy table)', () => {
  it('gives each prefix of the table its precedence', () => {
    const table: [string, number | undefined][] = [
      ['::1', 50],
      ['2001:db8::1', 40],
      ['2a00:1450::1', 40],
      ['203.0.113.1', 35],
      ['::ffff:192.0.2.1', 35],
      ['2002:c000:201::1', 30],
      ['2001:0:4136:e378::1', 5],
      ['fd00::2', 3],
      ['fc00::1', 3],
      ['::192.0.2.1', 1],
      ['fec0::1', 1],
      ['3ffe::1', 1],
      ['not-an-ip', undefined],
    ];
    for (const [ip, precedence] of table) expect(addressPrecedence(ip), ip).toBe(precedence);
  });
});

describe('rankHostAddresses', () => {
  it("puts a public address above a private one listed before it (the lab's open host)", () => {
    expect(rankHostAddresses(['198.18.1.2', '198.51.100.2'], undefined)).toEqual(['198.51.100.2', '198.18.1.2']);
  });

  it('puts the route source first among IPv4 addresses, even a private one (behind a NAT it is what the server saw, mapped)', () => {
    expect(rankHostAddresses(['203.0.113.9', '192.168.1.5', '10.0.0.5'], '10.0.0.5')).toEqual(['10.0.0.5', '203.0.113.9', '192.168.1.5']);
  });

  it('puts a global IPv6 address before IPv4, the IPv4 route source included (RFC 8421 section 4, RFC 6724 precedence)', () => {
    expect(rankHostAddresses(['192.168.1.5', '10.0.0.5', '2001:db8::5'], '10.0.0.5')).toEqual(['2001:db8::5', '10.0.0.5', '192.168.1.5']);
    expect(rankHostAddresses(['198.51.100.2', '198.18.1.2', '2001:db8:a::2'], '198.51.100.2')).toEqual(['2001:db8:a::2', '198.51.100.2', '198.18.1.2']);
    // unique local, Teredo and 6to4 addresses rank below IPv4 in RFC 6724's table
    expect(rankHostAddresses(['fd00::2', '2001:0:4136::1', '2002:cb00:7101::1', '203.0.113.9'], undefined)).toEqual([
      '203.0.113.9',
      '2002:cb00:7101::1',
      '2001:0:4136::1',
      'fd00::2',
    ]);
  });

  it('keeps the interface order within a rank', () => {
    expect(rankHostAddresses(['10.0.0.1', '192.168.0.1', '203.0.113.9', '198.51.100.9'], undefined)).toEqual([
      '203.0.113.9',
      '198.51.100.9',
      '10.0.0.1',
      '192.168.0.1',
    ]);
  });

  it('takes its route source from the kernel (loopback destination: a loopback source)', async () => {
    const src = await routeSourceAddress({ family: 'IPv4', address: '127.0.0.5', port: 3478 });
    expect(src).toMatch(/^127\./);
    expect(rankHostAddresses(['198.51.100.1', src!], src)[0]).toBe(src);
  });
});

describe('isGlobalIPv6: the pairs whose nomination waits for a firewalled first check', () => {
  it('is true for global unicast IPv6 only', () => {
    for (const ip of ['2001:db8:a::2', '2a00:1450::1', '2600::5']) expect(isGlobalIPv6(ip), ip).toBe(true);
    for (const ip of ['fe80::1', 'fd00::1', '::1', '::ffff:192.0.2.1', '2001::1', '2002:c000:201::1', '192.0.2.1', 'not an ip'])
      expect(isGlobalIPv6(ip), ip).toBe(false);
  });
});
