/** The simulator's NAT boxes behave as RFC 4787 describes, and its links are deterministic. */
import { describe, expect, it } from 'vitest';
import { type NatConfig, SimNetwork, type SimPacket, addr } from './network.js';

function setup(config: NatConfig, link = {}) {
  const net = new SimNetwork({ seed: 9, link });
  const s1 = net.addHost('203.0.113.1').bind(3478);
  const s2 = net.addHost('203.0.113.2').bind(3478);
  const s1b = s1.host.bind(3479);
  const nat = net.addNat('198.51.100.1', config);
  const client = nat.addHost('198.18.0.2').bind(5000);
  const seen: { at: string; p: SimPacket }[] = [];
  for (const [name, s] of [
    ['s1', s1],
    ['s2', s2],
    ['s1b', s1b],
    ['client', client],
  ] as const)
    s.onPacket = (p) => seen.push({ at: name, p });
  return { net, s1, s2, s1b, nat, client, seen };
}

describe('SimNat', () => {
  it('endpoint-independent mapping reuses one external address; address-and-port-dependent does not', () => {
    const eim = setup({ mapping: 'endpoint-independent', filtering: 'none' as const });
    eim.client.send(eim.s1.address, new Uint8Array(1));
    eim.client.send(eim.s2.address, new Uint8Array(1));
    eim.client.send(eim.s1b.address, new Uint8Array(1));
    eim.net.clock.runFor(100);
    const srcs = new Set(eim.seen.map((x) => `${x.p.src.address}:${x.p.src.port}`));
    expect([...srcs]).toEqual(['198.51.100.1:5000']); // port preserved
    const apdm = setup({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', portAllocation: 'random' });
    apdm.client.send(apdm.s1.address, new Uint8Array(1));
    apdm.client.send(apdm.s2.address, new Uint8Array(1));
    apdm.client.send(apdm.s1b.address, new Uint8Array(1));
    apdm.net.clock.runFor(100);
    expect(new Set(apdm.seen.map((x) => x.p.src.port)).size).toBe(3);
    expect(apdm.nat.mappingsCreated).toBe(3);
    const adm = setup({ mapping: 'address-dependent', filtering: 'none', portAllocation: 'sequential' });
    adm.client.send(adm.s1.address, new Uint8Array(1));
    adm.client.send(adm.s1b.address, new Uint8Array(1));
    adm.client.send(adm.s2.address, new Uint8Array(1));
    adm.net.clock.runFor(100);
    const ports = adm.seen.map((x) => x.p.src.port);
    expect(ports[0]).toBe(ports[1]);
    expect(ports[2]).toBe(ports[0]! + 1);
  });

  it.each([
    ['endpoint-independent', [true, true, true]],
    ['address-dependent', [true, true, false]],
    ['address-and-port-dependent', [true, false, false]],
  ] as const)('%s filtering lets in what it should', (filtering, expected) => {
    const t = setup({ mapping: 'endpoint-independent', filtering });
    t.client.send(t.s1.address, new Uint8Array(1));
    t.net.clock.runFor(50);
    const external = addr('198.51.100.1', 5000);
    t.s1.send(external, new Uint8Array([1])); // the contacted endpoint
    t.s1b.send(external, new Uint8Array([2])); // same address, other port
    t.s2.send(external, new Uint8Array([3])); // other address
    t.net.clock.runFor(50);
    const got = t.seen.filter((x) => x.at === 'client').map((x) => x.p.bytes[0]);
    expect([1, 2, 3].map((b) => got.includes(b))).toEqual(expected);
  });

  it('mappings expire after the timeout, and a new mapping gets a new port', () => {
    const t = setup({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', mappingTimeout: 1000, portAllocation: 'random' });
    t.client.send(t.s1.address, new Uint8Array(1));
    t.net.clock.runFor(1500);
    const first = t.seen[0]!.p.src;
    t.s1.send(first, new Uint8Array([7]));
    t.net.clock.runFor(50);
    expect(t.seen.some((x) => x.at === 'client')).toBe(false);
    t.client.send(t.s1.address, new Uint8Array(1));
    t.net.clock.runFor(50);
    expect(t.seen[1]!.p.src.port).not.toBe(first.port);
  });

  it('hairpinning: two hosts behind one NAT reach each other through its public address only when on', () => {
    for (const hairpinning of [true, false]) {
      const net = new SimNetwork();
      const nat = net.addNat('198.51.100.1', { mapping: 'endpoint-independent', filtering: 'endpoint-independent', hairpinning });
      const a = nat.addHost('198.18.0.2').bind(5000);
      const b = nat.addHost('198.18.0.3').bind(6000);
      const got: SimPacket[] = [];
      b.onPacket = (p) => got.push(p);
      b.send(addr('203.0.113.9', 1), new Uint8Array(1)); // opens b's mapping 198.51.100.1:6000
      a.send(addr('198.51.100.1', 6000), new Uint8Array([1]));
      net.clock.runFor(100);
      expect(got.length).toBe(hairpinning ? 1 : 0);
      if (hairpinning) expect(got[0]!.src).toEqual(addr('198.51.100.1', 5000)); // RFC 4787 REQ-9: the external source
    }
  });

  it('loss and jitter are deterministic for a seed, and jitter reorders', () => {
    const run = (seed: number) => {
      const net = new SimNetwork({ seed, link: { loss: 0.2, delay: 10, jitter: 30 } });
      const a = net.addHost('203.0.113.1').bind(1);
      const b = net.addHost('203.0.113.2').bind(2);
      const got: number[] = [];
      b.onPacket = (p) => got.push(p.bytes[0]!);
      for (let i = 0; i < 100; i++) a.send(b.address, new Uint8Array([i]));
      net.clock.runFor(100);
      return got;
    };
    const x = run(5);
    expect(run(5)).toEqual(x);
    expect(x.length).toBeGreaterThan(65);
    expect(x.length).toBeLessThan(95);
    expect(x).not.toEqual([...x].sort((p, q) => p - q));
  });

  it('UDP blocked: only the allowed address gets through', () => {
    const t = setup({ mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', allowOnly: [addr('203.0.113.2', 3478)] });
    t.client.send(t.s1.address, new Uint8Array(1));
    t.client.send(t.s2.address, new Uint8Array(1));
    t.net.clock.runFor(50);
    expect(t.seen.map((x) => x.at)).toEqual(['s2']);
  });
});
