import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../src/address.js';
import { EncodeError, ParseError } from '../src/errors.js';
import {
  candidateExtension,
  candidateFoundation,
  candidatePriority,
  candidateTransportAddress,
  fnv1a64,
  formatCandidate,
  isMdnsHostname,
  pairPriority,
  parseCandidate,
  recommendedTcpDirectionPreference,
  RECOMMENDED_TYPE_PREFERENCES,
  tcpLocalPreference,
  type IceCandidate,
} from '../src/ice/index.js';

/** Asserts that `fn` throws a ParseError with code BAD_SYNTAX whose message matches `message`. */
function expectParseError(fn: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ParseError);
  expect((thrown as ParseError).code).toBe('BAD_SYNTAX');
  expect((thrown as ParseError).message).toMatch(message);
}

function expectEncodeError(fn: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(EncodeError);
  expect((thrown as EncodeError).code).toBe('BAD_VALUE');
  expect((thrown as EncodeError).message).toMatch(message);
}

describe('candidatePriority (RFC 8445 section 5.1.2.1)', () => {
  it('uses the recommended type preferences 126 / 110 / 100 / 0', () => {
    expect(RECOMMENDED_TYPE_PREFERENCES).toEqual({ host: 126, prflx: 110, srflx: 100, relay: 0 });
  });

  it('computes the textbook values for local preference 65535, component 1', () => {
    // host:  126 * 2^24 + 65535 * 2^8 + 255 = 2113929216 + 16776960 + 255
    expect(candidatePriority('host', 65535, 1)).toBe(2130706431);
    // prflx: 110 * 2^24 + 16776960 + 255 = 1845493760 + 16777215
    expect(candidatePriority('prflx', 65535, 1)).toBe(1862270975);
    // srflx: 100 * 2^24 + 16776960 + 255 = 1677721600 + 16777215
    expect(candidatePriority('srflx', 65535, 1)).toBe(1694498815);
    // relay: 0 + 16776960 + 255
    expect(candidatePriority('relay', 65535, 1)).toBe(16777215);
  });

  it('reproduces the priorities browsers put on the wire', () => {
    // Firefox host: 126 * 2^24 + 32512 * 2^8 + 255 = 2113929216 + 8323072 + 255
    expect(candidatePriority('host', 32512, 1)).toBe(2122252543);
    // Firefox relay: 0 + 32543 * 2^8 + 255 = 8331008 + 255
    expect(candidatePriority('relay', 32543, 1)).toBe(8331263);
    // Chrome srflx seen from a peer: 100 * 2^24 + 30 * 2^8 + 255 = 1677721600 + 7680 + 255
    expect(candidatePriority('srflx', 30, 1)).toBe(1677729535);
    // component 2 (RTCP) is one lower than component 1
    expect(candidatePriority('host', 32512, 2)).toBe(2122252542);
    // Chrome's TCP host candidates use type preference 90: 1509949440 + 32542 * 256 + 255
    expect(candidatePriority('host', 32542, 1, { host: 90 })).toBe(1518280447);
  });

  it('takes the lowest and highest values at the ends of every range', () => {
    expect(candidatePriority('relay', 0, 256)).toBe(0);
    expect(candidatePriority('host', 0, 256)).toBe(126 * 2 ** 24);
    expect(candidatePriority('relay', 65535, 256, { relay: 126 })).toBe(2130706176);
  });

  it('lets an override replace one type preference and keep the others', () => {
    const prefs = { srflx: 120 };
    expect(candidatePriority('srflx', 65535, 1, prefs)).toBe(120 * 2 ** 24 + 16777215);
    expect(candidatePriority('host', 65535, 1, prefs)).toBe(2130706431);
  });

  it('rejects out-of-range arguments with EncodeError BAD_VALUE', () => {
    expectEncodeError(() => candidatePriority('host', 65536, 1), /local preference/);
    expectEncodeError(() => candidatePriority('host', -1, 1), /local preference/);
    expectEncodeError(() => candidatePriority('host', 1.5, 1), /local preference/);
    expectEncodeError(() => candidatePriority('host', 65535, 0), /component ID/);
    expectEncodeError(() => candidatePriority('host', 65535, 257), /component ID/);
    expectEncodeError(() => candidatePriority('host', 65535, 1, { host: 127 }), /type preference of host/);
    expectEncodeError(() => candidatePriority('host', 65535, 1, { host: -1 }), /type preference/);
  });
});

describe('TCP local preference (RFC 6544 section 4.2)', () => {
  it('is 2^13 * direction-pref + other-pref, other-pref 8191 by default', () => {
    expect(tcpLocalPreference(6)).toBe(6 * 8192 + 8191); // 57343
    expect(tcpLocalPreference(7, 8191)).toBe(65535);
    expect(tcpLocalPreference(0, 0)).toBe(0);
    expect(tcpLocalPreference(2, 100)).toBe(16484);
  });

  it('recommends active > passive > so for host and relay, so > active > passive for reflexive', () => {
    expect(recommendedTcpDirectionPreference('host', 'active')).toBe(6);
    expect(recommendedTcpDirectionPreference('host', 'passive')).toBe(4);
    expect(recommendedTcpDirectionPreference('relay', 'so')).toBe(2);
    expect(recommendedTcpDirectionPreference('srflx', 'so')).toBe(6);
    expect(recommendedTcpDirectionPreference('srflx', 'active')).toBe(4);
    expect(recommendedTcpDirectionPreference('prflx', 'passive')).toBe(2);
  });

  it('feeds candidatePriority: host tcp active on a single-address host', () => {
    // 126 * 2^24 + 57343 * 2^8 + 255 = 2113929216 + 14679808 + 255
    expect(candidatePriority('host', tcpLocalPreference(6), 1)).toBe(2128609279);
  });

  it('rejects out-of-range preferences', () => {
    expectEncodeError(() => tcpLocalPreference(8), /direction preference/);
    expectEncodeError(() => tcpLocalPreference(6, 8192), /other preference/);
  });
});

describe('pairPriority (RFC 8445 section 6.1.2.3)', () => {
  it('computes 2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0) as a bigint', () => {
    // G = 2130706431 (host), D = 1694498815 (srflx):
    //   2^32 * 1694498815 = 7277816993535754240
    //   2 * 2130706431   =          4261412862
    //   G > D            =                   1
    //   sum              = 7277816997797167103
    expect(pairPriority(2130706431, 1694498815)).toBe(7277816997797167103n);
    // The same two candidates with the roles swapped lose the tie-break bit.
    expect(pairPriority(1694498815, 2130706431)).toBe(7277816997797167102n);
    // Equal priorities: 2^32 * 16777215 + 2 * 16777215 = 72057589742960640 + 33554430
    expect(pairPriority(16777215, 16777215)).toBe(72057589776515070n);
    // The largest RFC 8445 priority is 2^31-1: 2^32 * (2^31-1) + 2 * (2^31-1) = 2^63 - 2^32 + 2^32 - 2
    expect(pairPriority(0x7fffffff, 0x7fffffff)).toBe(2n ** 63n - 2n);
    // Full uint32 inputs overflow 64 bits: 2^32 * (2^32-1) + 2 * (2^32-1) = 2^64 + 2^32 - 2
    expect(pairPriority(0xffffffff, 0xffffffff)).toBe(2n ** 64n + 2n ** 32n - 2n);
    expect(pairPriority(0, 0)).toBe(0n);
  });

  it('exceeds Number.MAX_SAFE_INTEGER for ordinary candidates', () => {
    expect(pairPriority(2130706431, 2130706431) > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('ranks pairs by their weaker candidate first (property)', () => {
    // RFC 8445 section 5.1.2.1: a candidate priority is 1..2^31-1. Above that, 2*MAX reaches into
    // the MIN term of the pair formula (a random run found [2^31+17, 16] over [17, 17]).
    const prio = fc.integer({ min: 1, max: 0x7fffffff });
    fc.assert(
      fc.property(prio, prio, prio, prio, (g1, d1, g2, d2) => {
        const min1 = Math.min(g1, d1);
        const min2 = Math.min(g2, d2);
        if (min1 < min2) expect(pairPriority(g1, d1) < pairPriority(g2, d2)).toBe(true);
        const swapped = pairPriority(g1, d1) - pairPriority(d1, g1);
        expect(swapped).toBe(g1 > d1 ? 1n : g1 < d1 ? -1n : 0n);
      }),
    );
  });

  it('rejects priorities that are not uint32', () => {
    expectEncodeError(() => pairPriority(2 ** 32, 1), /controlling priority/);
    expectEncodeError(() => pairPriority(1, -1), /controlled priority/);
  });
});

describe('candidateFoundation (RFC 8445 section 5.1.1.3)', () => {
  it('hashes with 64-bit FNV-1a (reference vectors)', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
    expect(fnv1a64(enc(''))).toBe(0xcbf29ce484222325n);
    expect(fnv1a64(enc('a'))).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64(enc('foobar'))).toBe(0x85944171f73967e8n);
  });

  const srflx = { type: 'srflx', baseAddress: '198.18.0.2', serverAddress: '203.0.113.1', transport: 'udp' } as const;

  it('is 1-13 base-36 characters, stable across calls', () => {
    const f = candidateFoundation(srflx);
    expect(f).toMatch(/^[0-9a-z]{1,13}$/);
    expect(candidateFoundation({ ...srflx })).toBe(f);
    // pinned: the key "host udp 198.18.0.2 " hashed and printed in base 36
    expect(candidateFoundation({ type: 'host', baseAddress: '198.18.0.2', transport: 'udp' })).toBe(
      fnv1a64(new TextEncoder().encode('host udp 198.18.0.2 ')).toString(36),
    );
  });

  it('is the same for the same type, base IP, server IP and transport, however written', () => {
    const a = candidateFoundation({ type: 'srflx', baseAddress: '2001:db8::1', serverAddress: '2001:db8::f', transport: 'udp' });
    const b = candidateFoundation({
      type: 'srflx',
      baseAddress: '2001:DB8:0:0:0:0:0:1',
      serverAddress: '2001:db8:0::F',
      transport: 'udp',
    });
    expect(b).toBe(a);
  });

  it('differs when any one of the four facts differs', () => {
    const base = candidateFoundation(srflx);
    const variants = [
      candidateFoundation({ ...srflx, type: 'relay' }),
      candidateFoundation({ ...srflx, type: 'prflx' }),
      candidateFoundation({ ...srflx, baseAddress: '198.18.0.3' }),
      candidateFoundation({ ...srflx, serverAddress: '203.0.113.2' }),
      candidateFoundation({ ...srflx, transport: 'tcp' }),
      candidateFoundation({ type: 'srflx', baseAddress: '198.18.0.2', transport: 'udp' }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });

  it('ignores the server address of a host candidate', () => {
    const host = { type: 'host', baseAddress: '198.18.0.2', transport: 'udp' } as const;
    expect(candidateFoundation({ ...host, serverAddress: '203.0.113.1' })).toBe(candidateFoundation(host));
  });

  it('produces a foundation that survives the SDP grammar', () => {
    const foundation = candidateFoundation(srflx);
    const line = `candidate:${foundation} 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 198.18.0.2 rport 40000`;
    expect(parseCandidate(line).foundation).toBe(foundation);
  });

  it('rejects an address that is not an IP', () => {
    expectEncodeError(() => candidateFoundation({ ...srflx, baseAddress: 'x.local' }), /base address/);
    expectEncodeError(() => candidateFoundation({ ...srflx, serverAddress: 'stun.example.org' }), /server address/);
  });
});

describe('parseCandidate / formatCandidate (RFC 8839 section 5.1)', () => {
  // Canonical lines: format(parse(line)) === line.
  const canonical: Array<[string, string, IceCandidate]> = [
    [
      'Chrome srflx with generation/ufrag/network-id/network-cost',
      'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 198.18.0.2 rport 46154 generation 0 ufrag EEtu network-id 3 network-cost 10',
      {
        foundation: '842163049',
        component: 1,
        transport: 'udp',
        priority: 1677729535,
        address: '203.0.113.7',
        port: 46154,
        type: 'srflx',
        relatedAddress: '198.18.0.2',
        relatedPort: 46154,
        extensions: [
          ['generation', '0'],
          ['ufrag', 'EEtu'],
          ['network-id', '3'],
          ['network-cost', '10'],
        ],
      },
    ],
    [
      'Chrome mDNS host candidate',
      'candidate:3442447574 1 udp 2122260223 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54400 typ host generation 0 ufrag EEtu network-id 1 network-cost 10',
      {
        foundation: '3442447574',
        component: 1,
        transport: 'udp',
        priority: 2122260223,
        address: '1f4712db-ea17-4bcf-a596-105139dfd8bf.local',
        port: 54400,
        type: 'host',
        extensions: [
          ['generation', '0'],
          ['ufrag', 'EEtu'],
          ['network-id', '1'],
          ['network-cost', '10'],
        ],
      },
    ],
    [
      'Chrome TCP passive host candidate',
      'candidate:2999745851 1 tcp 1518214911 198.18.0.2 51234 typ host tcptype passive generation 0 ufrag EEtu network-id 1',
      {
        foundation: '2999745851',
        component: 1,
        transport: 'tcp',
        priority: 1518214911,
        address: '198.18.0.2',
        port: 51234,
        type: 'host',
        tcpType: 'passive',
        extensions: [
          ['generation', '0'],
          ['ufrag', 'EEtu'],
          ['network-id', '1'],
        ],
      },
    ],
    [
      'Chrome TCP active host candidate (discard port 9)',
      'candidate:1467250027 1 tcp 1518280447 198.18.0.2 9 typ host tcptype active generation 0 network-id 1',
      {
        foundation: '1467250027',
        component: 1,
        transport: 'tcp',
        priority: 1518280447,
        address: '198.18.0.2',
        port: 9,
        type: 'host',
        tcpType: 'active',
        extensions: [
          ['generation', '0'],
          ['network-id', '1'],
        ],
      },
    ],
    [
      'Chrome IPv6 host candidate',
      'candidate:2162486046 1 udp 2122262783 2001:db8:85a3::8a2e:370:7334 58481 typ host generation 0 ufrag EEtu network-id 2',
      {
        foundation: '2162486046',
        component: 1,
        transport: 'udp',
        priority: 2122262783,
        address: '2001:db8:85a3::8a2e:370:7334',
        port: 58481,
        type: 'host',
        extensions: [
          ['generation', '0'],
          ['ufrag', 'EEtu'],
          ['network-id', '2'],
        ],
      },
    ],
    [
      'Chrome srflx with the host address hidden (raddr 0.0.0.0 rport 0)',
      'candidate:1853887674 1 udp 1685987071 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0',
      {
        foundation: '1853887674',
        component: 1,
        transport: 'udp',
        priority: 1685987071,
        address: '203.0.113.7',
        port: 46154,
        type: 'srflx',
        relatedAddress: '0.0.0.0',
        relatedPort: 0,
        extensions: [['generation', '0']],
      },
    ],
    [
      'RTCP component, base64-ish foundation with + and /',
      'candidate:a+b/C9 2 udp 2130706430 198.51.100.4 3479 typ host',
      {
        foundation: 'a+b/C9',
        component: 2,
        transport: 'udp',
        priority: 2130706430,
        address: '198.51.100.4',
        port: 3479,
        type: 'host',
        extensions: [],
      },
    ],
  ];

  for (const [name, line, expected] of canonical) {
    it(`parses and prints back: ${name}`, () => {
      const parsed = parseCandidate(line);
      expect(parsed).toStrictEqual(expected);
      expect(formatCandidate(parsed)).toBe(line);
      expect(parseCandidate(`a=${line}\r\n`)).toStrictEqual(expected);
    });
  }

  it('parses Firefox lines (upper-case transport) and prints them canonically', () => {
    const host = parseCandidate('candidate:1 1 UDP 2122252543 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54400 typ host');
    expect(host).toStrictEqual({
      foundation: '1',
      component: 1,
      transport: 'udp',
      priority: 2122252543,
      address: '1f4712db-ea17-4bcf-a596-105139dfd8bf.local',
      port: 54400,
      type: 'host',
      extensions: [],
    });
    expect(formatCandidate(host)).toBe('candidate:1 1 udp 2122252543 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54400 typ host');
    expect(isMdnsHostname(host.address)).toBe(true);
    expect(candidateTransportAddress(host)).toBeUndefined();

    const relay = parseCandidate('a=candidate:4 1 UDP 8331263 203.0.113.9 55000 typ relay raddr 203.0.113.7 rport 46154');
    expect(relay.type).toBe('relay');
    expect(relay.priority).toBe(candidatePriority('relay', 32543, 1));
    expect(relay.relatedAddress).toBe('203.0.113.7');
    expect(relay.relatedPort).toBe(46154);
    expect(candidateTransportAddress(relay)).toEqual({ family: 'IPv4', address: '203.0.113.9', port: 55000 });

    const tcp = parseCandidate('candidate:2 1 TCP 2105524479 198.18.0.2 9 typ host tcptype active');
    expect(tcp.transport).toBe('tcp');
    expect(tcp.tcpType).toBe('active');
    expect(formatCandidate(tcp)).toBe('candidate:2 1 tcp 2105524479 198.18.0.2 9 typ host tcptype active');
  });

  it('canonicalises IPv6 text and keyword case, keeps extension case', () => {
    const c = parseCandidate('candidate:7 1 udp 2122262783 2001:DB8:0:0:0:0:0:1 5000 TYP SRFLX RADDR FE80:0:0:0:0:0:0:1 RPORT 5000 Ufrag AbC');
    expect(c.address).toBe('2001:db8::1');
    expect(c.relatedAddress).toBe('fe80::1');
    expect(candidateExtension(c, 'ufrag')).toBe('AbC');
    expect(formatCandidate(c)).toBe('candidate:7 1 udp 2122262783 2001:db8::1 5000 typ srflx raddr fe80::1 rport 5000 Ufrag AbC');
    expect(candidateTransportAddress(c)).toEqual({ family: 'IPv6', address: '2001:db8::1', port: 5000 });
  });

  it('accepts tcptype after other extensions, and extra spaces between fields', () => {
    const c = parseCandidate('candidate:5  1 tcp 1518214911 198.18.0.2 51234 typ host generation 0 tcptype so');
    expect(c.tcpType).toBe('so');
    expect(c.extensions).toEqual([['generation', '0']]);
    expect(formatCandidate(c)).toBe('candidate:5 1 tcp 1518214911 198.18.0.2 51234 typ host tcptype so generation 0');
  });

  it('accepts the edges of every numeric range', () => {
    const c = parseCandidate('candidate:1 256 udp 4294967295 10.0.0.1 65535 typ relay raddr 10.0.0.2 rport 0');
    expect([c.component, c.priority, c.port, c.relatedPort]).toEqual([256, 4294967295, 65535, 0]);
    expect(parseCandidate('candidate:1 1 udp 0 10.0.0.1 0 typ host').priority).toBe(0);
    expect(parseCandidate(`candidate:${'f'.repeat(32)} 1 udp 1 10.0.0.1 1 typ host`).foundation).toHaveLength(32);
  });

  const rejections: Array<[string, string, RegExp]> = [
    ['missing typ', 'candidate:1 1 udp 2122252543 198.18.0.2 54400', /missing "typ/],
    ['missing candidate type', 'candidate:1 1 udp 2122252543 198.18.0.2 54400 typ', /missing candidate type/],
    ['something other than typ', 'candidate:1 1 udp 2122252543 198.18.0.2 54400 type host', /expected "typ"/],
    ['port 70000', 'candidate:1 1 udp 2122252543 198.18.0.2 70000 typ host', /port 70000 is outside 0..65535/],
    ['priority 2^32', 'candidate:1 1 udp 4294967296 198.18.0.2 54400 typ host', /priority 4294967296 is outside/],
    ['priority of 11 digits', 'candidate:1 1 udp 02122252543 198.18.0.2 54400 typ host', /priority must be 1 to 10 digits/],
    ['33-char foundation', `candidate:${'a'.repeat(33)} 1 udp 1 198.18.0.2 1 typ host`, /foundation must be 1 to 32/],
    ['foundation with "-"', 'candidate:ab-c 1 udp 1 198.18.0.2 1 typ host', /foundation/],
    ['empty foundation', 'candidate: 1 udp 1 198.18.0.2 1 typ host', /foundation must be 1 to 32 .* not ""/],
    ['unknown candidate type', 'candidate:1 1 udp 1 198.18.0.2 1 typ turn', /unknown candidate type "turn"/],
    ['component 0', 'candidate:1 0 udp 1 198.18.0.2 1 typ host', /component-id 0 is outside 1..256/],
    ['component 257', 'candidate:1 257 udp 1 198.18.0.2 1 typ host', /component-id 257 is outside/],
    ['component of 6 digits', 'candidate:1 000001 udp 1 198.18.0.2 1 typ host', /component-id must be 1 to 5 digits/],
    ['unsupported transport', 'candidate:1 1 sctp 1 198.18.0.2 1 typ host', /unsupported transport "sctp"/],
    ['bad IPv4', 'candidate:1 1 udp 1 10.0.0.256 1 typ host', /neither an IP address nor a host name/],
    ['bad IPv6', 'candidate:1 1 udp 1 2001:db8:::1 1 typ host', /is not an IPv6 address/],
    ['IPv6 zone', 'candidate:1 1 udp 1 fe80::1%eth0 1 typ host', /is not an IPv6 address/],
    ['bad raddr', 'candidate:1 1 udp 1 10.0.0.1 1 typ srflx raddr 1.2.3 rport 1', /raddr "1.2.3"/],
    ['raddr without value', 'candidate:1 1 udp 1 10.0.0.1 1 typ srflx raddr', /missing raddr/],
    ['rport 65536', 'candidate:1 1 udp 1 10.0.0.1 1 typ srflx raddr 10.0.0.2 rport 65536', /rport 65536/],
    ['rport before raddr', 'candidate:1 1 udp 1 10.0.0.1 1 typ srflx rport 1 raddr 10.0.0.2', /"raddr" out of place/],
    ['extension without value', 'candidate:1 1 udp 1 10.0.0.1 1 typ host generation', /extension "generation" has no value/],
    ['tcptype on udp', 'candidate:1 1 udp 1 10.0.0.1 1 typ host tcptype active', /tcptype" on a udp candidate/],
    ['unknown tcptype', 'candidate:1 1 tcp 1 10.0.0.1 1 typ host tcptype sideways', /unknown tcptype "sideways"/],
    ['tcptype twice', 'candidate:1 1 tcp 1 10.0.0.1 1 typ host tcptype so tcptype so', /appears twice/],
    ['no candidate: prefix', '1 1 udp 1 10.0.0.1 1 typ host', /expected "candidate:"/],
    ['wrong attribute', 'a=ice-ufrag:EEtu', /expected "candidate:"/],
    ['too few fields', 'candidate:1 1 udp 1 10.0.0.1', /expected "<foundation>/],
    ['non-token extension name', 'candidate:1 1 udp 1 10.0.0.1 1 typ host gen(0) 1', /not a token/],
    ['control character in value', 'candidate:1 1 udp 1 10.0.0.1 1 typ host ufrag a\u0007b', /outside VCHAR/],
  ];

  for (const [name, line, message] of rejections) {
    it(`rejects ${name}`, () => expectParseError(() => parseCandidate(line), message));
  }

  it('refuses to format what it could not parse back', () => {
    const ok: IceCandidate = parseCandidate('candidate:1 1 udp 1 10.0.0.1 1 typ host');
    expectEncodeError(() => formatCandidate({ ...ok, foundation: 'a b' }), /foundation/);
    expectEncodeError(() => formatCandidate({ ...ok, component: 0 }), /component/);
    expectEncodeError(() => formatCandidate({ ...ok, priority: 2 ** 32 }), /priority/);
    expectEncodeError(() => formatCandidate({ ...ok, port: 65536 }), /port/);
    expectEncodeError(() => formatCandidate({ ...ok, address: 'not an address' }), /address/);
    expectEncodeError(() => formatCandidate({ ...ok, tcpType: 'active' }), /tcpType on a udp/);
    expectEncodeError(() => formatCandidate({ ...ok, extensions: [['raddr', '1.2.3.4']] }), /reserved/);
    expectEncodeError(() => formatCandidate({ ...ok, extensions: [['ufrag', '']] }), /VCHAR/);
    expectEncodeError(() => formatCandidate({ ...ok, extensions: [['a b', 'c']] }), /not a token/);
  });
});

describe('properties', () => {
  const tokenName = fc.stringMatching(/^[A-Za-z0-9\-.!%*_+`'~]{1,12}$/).filter((n) => !['typ', 'raddr', 'rport', 'tcptype'].includes(n.toLowerCase()));
  const address = fc.oneof(
    fc.ipV4(),
    fc.ipV6().map(canonicalIp),
    fc.uuid().map((u) => `${u}.local`),
    fc.domain(),
  );
  const port = fc.integer({ min: 0, max: 65535 });
  const candidate: fc.Arbitrary<IceCandidate> = fc
    .record(
      {
        foundation: fc.stringMatching(/^[A-Za-z0-9+/]{1,32}$/),
        component: fc.integer({ min: 1, max: 256 }),
        transport: fc.constantFrom('udp' as const, 'tcp' as const),
        priority: fc.integer({ min: 0, max: 0xffffffff }),
        address,
        port,
        type: fc.constantFrom('host' as const, 'srflx' as const, 'prflx' as const, 'relay' as const),
        relatedAddress: address,
        relatedPort: port,
        tcpType: fc.constantFrom('active' as const, 'passive' as const, 'so' as const),
        extensions: fc.array(fc.tuple(tokenName, fc.stringMatching(/^[\x21-\x7e]{1,12}$/)), { maxLength: 5 }),
      },
      {
        requiredKeys: ['foundation', 'component', 'transport', 'priority', 'address', 'port', 'type', 'extensions'],
        noNullPrototype: true,
      },
    )
    .map((c) => {
      if (c.transport === 'udp' && c.tcpType !== undefined) {
        const { tcpType: _dropped, ...rest } = c;
        return rest;
      }
      return c;
    });

  it('parse(format(c)) equals c for random valid candidates', () => {
    fc.assert(
      fc.property(candidate, (c) => {
        const line = formatCandidate(c);
        expect(parseCandidate(line)).toStrictEqual(c);
        expect(formatCandidate(parseCandidate(`a=${line}\r\n`))).toBe(line);
      }),
      { numRuns: 500 },
    );
  });

  const onlyParseErrors = (line: string): void => {
    try {
      const c = parseCandidate(line);
      // whatever parses must print and parse back to the same candidate
      expect(parseCandidate(formatCandidate(c))).toStrictEqual(c);
    } catch (err) {
      if (!(err instanceof ParseError) || err.code !== 'BAD_SYNTAX') throw err;
    }
  };

  it('random strings only ever make parseCandidate throw ParseError', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), onlyParseErrors), { numRuns: 1000 });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => onlyParseErrors(`candidate:${s}`)),
      { numRuns: 1000 },
    );
  });

  it('token soups near the grammar only ever throw ParseError', () => {
    const word = fc.constantFrom(
      '1',
      '0',
      '256',
      '257',
      '99999',
      '4294967295',
      '4294967296',
      'udp',
      'TCP',
      'sctp',
      'typ',
      'host',
      'srflx',
      'relay',
      'raddr',
      'rport',
      'tcptype',
      'so',
      'active',
      'generation',
      '10.0.0.1',
      '::1',
      '1.2.3',
      'x.local',
      '',
      ':',
      '%',
      'a/b+c',
      '\u00e9',
      '\r',
      '\t',
    );
    fc.assert(
      fc.property(fc.array(word, { maxLength: 16 }), (words) => onlyParseErrors(`candidate:${words.join(' ')}`)),
      { numRuns: 2000 },
    );
  });

  it('mutating one character of a real line only ever throws ParseError', () => {
    const line = 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 198.18.0.2 rport 46154 generation 0 ufrag EEtu';
    fc.assert(
      fc.property(fc.nat({ max: line.length - 1 }), fc.string({ unit: 'binary-ascii', maxLength: 3 }), (at, s) =>
        onlyParseErrors(line.slice(0, at) + s + line.slice(at + 1)),
      ),
      { numRuns: 2000 },
    );
  });
});
