/**
 * Parsers of the classifiers' output, on output captured from coturn 4.6.1's
 * turnutils_natdiscovery and stun-client 0.97 in this lab (no root needed).
 */
import { describe, expect, it } from 'vitest';
import { classicTypeFromExitCode, parseNatDiscovery, parseStunClient, routerRuleset, BEHAVIOURS } from './index.js';

const PORT_RESTRICTED = `
-= Mapping Behavior Discovery =-

========================================
RFC 5780 response 1
No ALG: Mapped == XOR-Mapped
0: : IPv4. Response origin: : 203.0.113.1:3478
0: : IPv4. Response origin: : 203.0.113.1:3478
0: : IPv4. Other addr: : 203.0.113.2:3479
0: : IPv4. UDP reflexive addr: 203.0.113.254:53677
0: : IPv4. Local addr: : 0.0.0.0:53677

========================================
RFC 5780 response 2
No ALG: Mapped == XOR-Mapped
0: : IPv4. Response origin: : 203.0.113.2:3478
0: : IPv4. Other addr: : 203.0.113.2:3479
0: : IPv4. UDP reflexive addr: 203.0.113.254:53677
0: : IPv4. Local addr: : 0.0.0.0:53677

========================================
NAT with Endpoint Independent Mapping!
========================================

-= Filtering Behavior Discovery =-

========================================
RFC 5780 response 3
No ALG: Mapped == XOR-Mapped
0: : IPv4. Response origin: : 203.0.113.1:3478
0: : IPv4. Other addr: : 203.0.113.2:3479
0: : IPv4. UDP reflexive addr: 203.0.113.254:45864
0: : IPv4. Local addr: : 0.0.0.0:45864
STUN receive timeout..
STUN receive timeout..

========================================
NAT with Address and Port Dependent Filtering!
========================================
`;

describe('parseNatDiscovery', () => {
  it('reads mapping, filtering and reflexive addresses', () => {
    const r = parseNatDiscovery(PORT_RESTRICTED);
    expect(r).toMatchObject({
      nat: true,
      mapping: 'endpoint-independent',
      filtering: 'address-and-port-dependent',
      alg: false,
      timeouts: 2,
    });
    expect(r.reflexive).toEqual([
      { family: 'IPv4', address: '203.0.113.254', port: 53677 },
      { family: 'IPv4', address: '203.0.113.254', port: 53677 },
      { family: 'IPv4', address: '203.0.113.254', port: 45864 },
    ]);
  });

  it('reads the other verdicts', () => {
    expect(parseNatDiscovery('No NAT! (Endpoint Independent Mapping)\nNAT with Endpoint Independent Filtering!')).toMatchObject({
      nat: false,
      mapping: 'endpoint-independent',
      filtering: 'endpoint-independent',
    });
    expect(parseNatDiscovery('NAT with Address and Port Dependent Mapping!\nNAT with Address Dependent Filtering!')).toMatchObject({
      nat: true,
      mapping: 'address-and-port-dependent',
      filtering: 'address-dependent',
    });
    expect(parseNatDiscovery('NAT with Address Dependent Mapping!')).toMatchObject({ mapping: 'address-dependent' });
  });

  it('reports no verdict when nothing answered', () => {
    const r = parseNatDiscovery('\n-= Mapping Behavior Discovery =-\nSTUN receive timeout..\n\n-= Filtering Behavior Discovery =-\nSTUN receive timeout..\n');
    expect(r).toMatchObject({ nat: undefined, mapping: undefined, filtering: undefined, reflexive: [], timeouts: 2 });
  });
});

describe('parseStunClient', () => {
  it('reads the Primary line and the exit code', () => {
    const raw =
      'STUN client version 0.97\nMappedAddress = 203.0.113.254:24560\nPrimary: Independent Mapping, Port Dependent Filter, preserves ports, no hairpin\t\nReturn value is 0x000017\n';
    expect(parseStunClient(raw, 0x17)).toMatchObject({
      type: 'port-restricted-cone',
      typeFromExitCode: 'port-restricted-cone',
      preservesPort: true,
      hairpin: false,
      mappedAddress: { family: 'IPv4', address: '203.0.113.254', port: 24560 },
    });
    expect(parseStunClient('Primary: Dependent Mapping, random port, no hairpin\n', 24)).toMatchObject({
      type: 'symmetric',
      typeFromExitCode: 'symmetric',
      preservesPort: false,
    });
    expect(parseStunClient('Primary: Blocked or could not reach STUN server\n', 28)).toMatchObject({
      type: 'blocked',
      typeFromExitCode: 'blocked',
      mappedAddress: undefined,
    });
    expect(parseStunClient('Primary: Firewall\n', 11).type).toBe('symmetric-udp-firewall');
    expect(parseStunClient('Primary: Open\n', 1).type).toBe('open');
  });

  it('decodes every exit code of stun 0.97 (type in bits 1-3, 0x01 port kept, 0x10 no hairpin)', () => {
    expect([0x01, 0x13, 0x15, 0x17, 0x18, 0x1b, 0x1c, 0x0e].map(classicTypeFromExitCode)).toEqual([
      'open',
      'full-cone',
      'restricted-cone',
      'port-restricted-cone',
      'symmetric',
      'symmetric-udp-firewall',
      'blocked',
      undefined,
    ]);
    expect(classicTypeFromExitCode(null)).toBeUndefined();
  });
});

describe('routerRuleset', () => {
  const params = { wanIf: 'wan0', lanIf: 'lan0', publicAddress: '203.0.113.254', hostAddress: '198.18.0.2', filterTimeoutSeconds: 120 };

  it('drops unsolicited WAN input silently in every behaviour (no reject anywhere)', () => {
    for (const b of BEHAVIOURS) {
      const rs = routerRuleset(b, params);
      expect(rs).toContain('iifname "wan0" drop');
      expect(rs).not.toContain('reject');
    }
  });

  it('translates exactly in the NAT behaviours', () => {
    expect(routerRuleset('open', params)).not.toContain('snat');
    expect(routerRuleset('symmetric-udp-firewall', params)).not.toContain('snat');
    expect(routerRuleset('port-restricted-cone', params)).toMatch(/snat ip to 203\.0\.113\.254\n/);
    expect(routerRuleset('symmetric', params)).toContain('snat ip to 203.0.113.254 fully-random');
    expect(routerRuleset('udp-blocked', params)).toContain('meta l4proto udp drop');
    expect(routerRuleset('full-cone', params)).toContain('udp dport @eim_ports dnat ip to 198.18.0.2');
    expect(routerRuleset('restricted-cone', params)).toContain('ip saddr . udp dport @adf_allow dnat ip to 198.18.0.2');
  });
});
