/** Sans-I/O parts of the expose service's governance (issue 14, findings 3 and 7). */
import { describe, expect, it } from 'vitest';
import { MuxFlag, type MuxHeader, MuxType } from '@nat/protocol';
import { ControlFrameGate } from '../src/expose/preauth.js';
import { sourceKey } from '@nat/protocol';
import { ShareCounter } from '../src/expose/shares.js';
import { UDP_FLOW_IDLE_MS, UdpFlowShares } from '../src/expose/udp-flows.js';

const h = (type: MuxHeader['type'], flags: number, streamId: number, length = 0): MuxHeader => ({ type, flags, streamId, length });

describe('finding 3: the control connection frame gate', () => {
  it('before authenticating: the control stream, its data and window updates, pings; nothing else', () => {
    const gate = new ControlFrameGate({ frames: 16, bytes: 1000 });
    expect(gate.admit(h(MuxType.WindowUpdate, MuxFlag.SYN, 1, 786_432))).toBe(true);
    expect(gate.admit(h(MuxType.Data, 0, 1, 400))).toBe(true);
    expect(gate.admit(h(MuxType.Ping, MuxFlag.SYN, 0, 5))).toBe(true);
    expect(gate.admit(h(MuxType.WindowUpdate, 0, 1, 1000))).toBe(true);
    expect(gate.admit(h(MuxType.Data, 0, 5, 10))).toBe(false);
    expect(gate.reason).toMatch(/other than the control stream/);
  });

  it('before authenticating: a second stream, too many frames, too many bytes are refused', () => {
    const syn = new ControlFrameGate({ frames: 16, bytes: 1000 });
    syn.admit(h(MuxType.WindowUpdate, MuxFlag.SYN, 1));
    expect(syn.admit(h(MuxType.WindowUpdate, MuxFlag.SYN, 3))).toBe(false);
    const frames = new ControlFrameGate({ frames: 4, bytes: 1000 });
    const pings = Array.from({ length: 5 }, () => frames.admit(h(MuxType.Ping, MuxFlag.SYN, 0)));
    expect(pings).toEqual([true, true, true, true, false]);
    const bytes = new ControlFrameGate({ frames: 16, bytes: 1000 });
    bytes.admit(h(MuxType.Data, MuxFlag.SYN, 1, 600));
    expect(bytes.admit(h(MuxType.Data, 0, 1, 401))).toBe(false);
    expect(bytes.reason).toMatch(/more than 1000 bytes/);
  });

  it('after authenticating: anything, further client streams too (outbound requests, answered by the service)', () => {
    const gate = new ControlFrameGate({ frames: 2, bytes: 10 });
    gate.admit(h(MuxType.WindowUpdate, MuxFlag.SYN, 1));
    gate.authenticated = true;
    for (let i = 0; i < 100; i++) expect(gate.admit(h(MuxType.Data, 0, 1, 60_000))).toBe(true);
    expect(gate.admit(h(MuxType.Data, MuxFlag.SYN, 3, 1))).toBe(true);
  });
});

describe('finding 7: shares per source', () => {
  it('an IPv4 address counts alone, an IPv6 address by its /64, an IPv4-mapped address as IPv4', () => {
    expect(sourceKey('192.0.2.1')).toBe('192.0.2.1');
    expect(sourceKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(sourceKey('2001:db8:1:2::1')).toBe(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
    expect(sourceKey('2001:db8:1:2::1')).not.toBe(sourceKey('2001:db8:1:3::1'));
  });

  it('a share is taken up to its limit and given back', () => {
    const c = new ShareCounter();
    expect([c.take('a', 2), c.take('a', 2), c.take('a', 2), c.take('b', 2)]).toEqual([true, true, false, true]);
    c.give('a');
    expect(c.take('a', 2)).toBe(true);
    expect(c.count('a')).toBe(2);
  });

  it('UDP flows: a source gets perSource live flows; idle ones are forgotten and free its share', () => {
    const f = new UdpFlowShares(2);
    expect([f.admit('192.0.2.1', 1, 0), f.admit('192.0.2.1', 2, 0), f.admit('192.0.2.1', 3, 0), f.admit('192.0.2.2', 1, 0)]).toEqual([true, true, false, true]);
    expect(f.admit('192.0.2.1', 1, 1000)).toBe(true); // a live flow keeps passing
    f.sweep(UDP_FLOW_IDLE_MS + 10); // flow 2 (and 192.0.2.2's) idle since 0; flow 1 seen at 1000
    expect(f.size).toBe(1);
    expect(f.admit('192.0.2.1', 3, UDP_FLOW_IDLE_MS + 20)).toBe(true);
  });
});
