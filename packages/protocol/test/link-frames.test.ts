import { describe, expect, it } from 'vitest';
import {
  LinkControl,
  LinkControlReader,
  LinkInner,
  TunnelStatus,
  decodeLinkRoute,
  decodeUdxBatch,
  decodeUdxFragment,
  encodeLinkControl,
  encodeLinkRoute,
  encodeTunnelHeader,
  encodeUdxBatch,
  encodeUdxFragment,
  tunnelHeaderStart,
  tunnelStatusText,
} from '../src/index.js';

const withInner = (inner: number, payload: Uint8Array): Buffer => Buffer.concat([Buffer.from([inner]), payload]);

describe('peer link frames', () => {
  it('control messages: 9 bytes, split and joined across chunks', () => {
    const open = encodeLinkControl(LinkControl.Open, 0x01020304, 0);
    expect([...open]).toEqual([1, 1, 2, 3, 4, 0, 0, 0, 0]);
    const both = Buffer.concat([open, encodeLinkControl(LinkControl.Reset, 7, 0xfffffffe)]);
    const r = new LinkControlReader();
    expect(r.push(both.subarray(0, 5))).toEqual([]);
    expect(r.push(both.subarray(5, 13))).toEqual([{ type: 1, a: 0x01020304, b: 0 }]);
    expect(r.push(both.subarray(13))).toEqual([{ type: 3, a: 7, b: 0xfffffffe }]);
  });

  it('batches: 16-bit lengths; a cut-short packet is reported and left out', () => {
    const a = Buffer.from([1, 2, 3]);
    const b = Buffer.alloc(300, 9);
    const plain = withInner(LinkInner.UdxBatch, encodeUdxBatch([a, b]));
    expect(plain.readUInt16BE(1)).toBe(3);
    expect(decodeUdxBatch(plain)).toEqual({ packets: [a, b], truncated: false });
    expect(decodeUdxBatch(plain.subarray(0, plain.length - 1))).toEqual({ packets: [a], truncated: true });
    expect(decodeUdxBatch(plain.subarray(0, 5))).toEqual({ packets: [], truncated: true });
  });

  it('fragments: packet number, index, count; inconsistent pieces refused', () => {
    const piece = withInner(LinkInner.UdxFragment, encodeUdxFragment(0x1_0005, 1, 3, Buffer.from('xyz')));
    expect(decodeUdxFragment(piece)).toEqual({ id: 5, index: 1, count: 3, bytes: Buffer.from('xyz') });
    expect(decodeUdxFragment(withInner(LinkInner.UdxFragment, encodeUdxFragment(1, 3, 3, Buffer.from('x'))))).toBeUndefined();
    expect(decodeUdxFragment(withInner(LinkInner.UdxFragment, encodeUdxFragment(1, 0, 1, Buffer.from('x'))))).toBeUndefined();
    expect(decodeUdxFragment(piece.subarray(0, 5))).toBeUndefined();
  });

  it('route messages: the direct bit and a 32-bit sequence', () => {
    const m = withInner(LinkInner.Route, encodeLinkRoute(true, 2 ** 32 + 9));
    expect(decodeLinkRoute(m)).toEqual({ direct: true, seq: 9 });
    expect(decodeLinkRoute(m.subarray(0, 5))).toBeUndefined();
  });
});

describe('tunnel stream header', () => {
  it('[1][length][name], answered by a status byte', () => {
    expect([...encodeTunnelHeader('web')]).toEqual([1, 3, 0x77, 0x65, 0x62]);
    expect([...encodeTunnelHeader('')]).toEqual([1, 0]);
    expect(tunnelHeaderStart(Uint8Array.of(1, 3))).toEqual({ nameLength: 3 });
    expect(tunnelHeaderStart(Uint8Array.of(2, 3))).toEqual({ refuse: TunnelStatus.BadHeader });
    expect(tunnelStatusText(TunnelStatus.NotAllowed)).toBe('the peer does not allow this peer id to use the service');
    expect(tunnelStatusText(42)).toBe('status 42');
    expect(() => encodeTunnelHeader('x'.repeat(256))).toThrow(/at most 255/);
  });
});
