/**
 * IP prefixes and a relay's default peer ranges (moved here from the server's turn/cidr.ts and
 * turn/peer-policy.ts so that the CLI and the expose service share them).
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_DENIED_PEERS, ParseError, PeerRanges, cidrContains, embeddedIPv4, ipForms, ipToBytes, parseCidr } from '../src/index.js';

const inside = (cidr: string, ip: string): boolean => cidrContains(parseCidr(cidr), ipToBytes(ip));

describe('parseCidr and cidrContains', () => {
  it('match by prefix, bit by bit, within one family', () => {
    expect(inside('10.0.0.0/8', '10.255.1.2')).toBe(true);
    expect(inside('10.0.0.0/8', '11.0.0.0')).toBe(false);
    expect(inside('100.64.0.0/10', '100.127.255.255')).toBe(true);
    expect(inside('100.64.0.0/10', '100.128.0.0')).toBe(false);
    expect(inside('203.0.113.7', '203.0.113.7')).toBe(true); // a bare address is a /32
    expect(inside('203.0.113.7', '203.0.113.8')).toBe(false);
    expect(inside('0.0.0.0/0', '198.51.100.1')).toBe(true);
    expect(inside('0.0.0.0/0', '::1')).toBe(false); // another family never matches
    expect(inside('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(inside('fe80::/10', 'febf::1')).toBe(true);
    expect(inside('fe80::/10', 'fec0::1')).toBe(false);
    expect(parseCidr('2001:db8::/32')).toMatchObject({ text: '2001:db8::/32', prefix: 32 });
  });

  it('refuse text that is not a prefix with a ParseError naming it', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/8/8', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/1.5', 'example.com/8', '']) {
      expect(() => parseCidr(bad), bad).toThrow(ParseError);
      expect(() => parseCidr(bad), bad).toThrow(JSON.stringify(bad));
    }
  });
});

describe('embeddedIPv4 and ipForms', () => {
  it('find the IPv4 address inside mapped, compatible, NAT64, SIIT, 6to4 and Teredo addresses', () => {
    const v4 = (ip: string): string | undefined => {
      const b = embeddedIPv4(ipToBytes(ip));
      return b === undefined ? undefined : [...b].join('.');
    };
    expect(v4('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(v4('::192.0.2.1')).toBe('192.0.2.1');
    expect(v4('64:ff9b::c000:201')).toBe('192.0.2.1');
    expect(v4('64:ff9b:1:c000:2:100::')).toBe('192.0.2.1');
    expect(v4('::ffff:0:c000:201')).toBe('192.0.2.1');
    expect(v4('2002:c000:201::1')).toBe('192.0.2.1');
    expect(v4('2001:0:4136:e378:8000:63bf:3fff:fdfe')).toBe('192.0.2.1'); // Teredo: inverted
    for (const ip of ['::', '2001:db8::1', '192.0.2.1']) expect(v4(ip), ip).toBeUndefined();
    expect(v4('::1')).toBe('0.0.0.1'); // IPv4-compatible form too: denied either way (::1/128, 0.0.0.0/8)
    expect(ipForms('::ffff:127.0.0.1')).toEqual(['::ffff:127.0.0.1', '127.0.0.1']);
    expect(ipForms('2001:db8::1')).toEqual(['2001:db8::1']);
    expect(ipForms('not an ip')).toEqual([]);
  });
});

describe('PeerRanges', () => {
  it('refuses the default-denied ranges, directly and through every embedded IPv4 form, naming the rule', () => {
    const p = new PeerRanges();
    expect(p.check('127.0.0.1')).toEqual({ allowed: false, rule: '127.0.0.0/8' });
    expect(p.check('192.168.1.1')).toEqual({ allowed: false, rule: '192.168.0.0/16' });
    expect(p.check('::ffff:10.1.2.3')).toEqual({ allowed: false, rule: '10.0.0.0/8' });
    expect(p.check('64:ff9b::7f00:1')).toEqual({ allowed: false, rule: '127.0.0.0/8' });
    expect(p.check('2002:a9fe:a9fe::1')).toEqual({ allowed: false, rule: '169.254.0.0/16' });
    for (const ip of ['::ffff:0:c633:6401', '2001:0:4136:e378:8000:63bf:3fff:fdd2', 'fec0::1', 'fe80::1', 'fd00::1', 'ff02::1', '::1', '::'])
      expect(p.check(ip).allowed, ip).toBe(false);
    for (const ip of ['198.51.100.1', '2001:db8::1', '2a00:1450::1']) expect(p.check(ip), ip).toEqual({ allowed: true });
    expect(p.check('not an ip')).toEqual({ allowed: false, rule: 'not an IP address' });
    expect(DEFAULT_DENIED_PEERS.every((c) => parseCidr(c).text === c)).toBe(true);
  });

  it('lets allow rules win over deny rules, and can drop the defaults', () => {
    const lab = new PeerRanges({ allow: ['127.0.0.0/8'], deny: ['198.51.100.0/24'] });
    expect(lab.check('127.0.0.2')).toEqual({ allowed: true });
    expect(lab.check('::ffff:127.0.0.2')).toEqual({ allowed: true });
    expect(lab.check('198.51.100.9')).toEqual({ allowed: false, rule: '198.51.100.0/24' });
    expect(lab.check('10.0.0.1')).toEqual({ allowed: false, rule: '10.0.0.0/8' });
    const bare = new PeerRanges({ denyDefaults: false, deny: ['127.0.0.0/8'] });
    expect(bare.check('10.0.0.1')).toEqual({ allowed: true });
    expect(bare.check('2001:0:0:0:0:0:80ff:fffe')).toEqual({ allowed: false, rule: '127.0.0.0/8' }); // Teredo of 127.0.0.1
    expect(() => new PeerRanges({ deny: ['10.0.0.0/99'] })).toThrow(ParseError);
  });
});
