// Host candidate ranking (RFC 8445 section 5.1.2.1, RFC 8421): the address the kernel routes
// from toward the server first, then addresses the internet can reach, then private ones.
import { describe, expect, it } from 'vitest';
import { isPublicAddress, rankHostAddresses, routeSourceAddress } from '../src/index.js';

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

describe('rankHostAddresses', () => {
  it("puts a public address above a private one listed before it (the lab's open host)", () => {
    expect(rankHostAddresses(['198.18.1.2', '198.51.100.2'], undefined)).toEqual(['198.51.100.2', '198.18.1.2']);
  });

  it('puts the route source first, even a private one (behind a NAT it is what the server saw, mapped)', () => {
    expect(rankHostAddresses(['2001:db8::5', '192.168.1.5', '10.0.0.5'], '10.0.0.5')).toEqual(['10.0.0.5', '2001:db8::5', '192.168.1.5']);
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
