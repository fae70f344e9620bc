import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError, EncodeError } from '../src/errors.js';
import { type ClusterMessage, MAX_CLUSTER_SCOPE_WRITES, decodeClusterMessage, encodeClusterMessage } from '../src/signalling/cluster.js';

const field = fc.stringMatching(/^[\x21-\x7e]{1,128}$/);

describe('messages between rendezvous nodes', () => {
  it('round-trips every kind, the relayed text byte for byte (newlines and spaces included)', () => {
    const text = '{"v":1,"type":"offer","candidates":["candidate:1 1 udp 1 127.0.0.1 9 typ host"]}\n second line';
    const all: ClusterMessage[] = [
      { type: 'deliver', to: 'abcdefghijklmnopqrstuvwxyz234567', text },
      { type: 'replaced', peerId: 'abcdefghijklmnopqrstuvwxyz234567', seq: 42 },
      {
        type: 'scope',
        origin: 'host:8443~0a1b2c3d',
        writes: [{ op: 'a', peer: 'abcdefghijklmnopqrstuvwxyz234567', ip: '2001:db8::1', arg: 'source', now: 1_796_000_000_000 }],
      },
      {
        type: 'scope',
        origin: 'n1',
        writes: [
          { op: 'a', peer: 'p1', ip: '192.0.2.1', arg: 'relay', now: 5 },
          { op: 'c', peer: 'p1', ip: '198.51.100.7', arg: 'p2', now: 5 },
          { op: 's', peer: 'p2', ip: '::1', arg: '-', now: 6 },
        ],
      },
    ];
    for (const m of all) expect(decodeClusterMessage(encodeClusterMessage(m))).toEqual(m);
    expect(encodeClusterMessage(all[1]!)).toBe('R abcdefghijklmnopqrstuvwxyz234567 42');
    expect(encodeClusterMessage(all[3]!)).toBe('S n1 a p1 192.0.2.1 relay 5\nc p1 198.51.100.7 p2 5\ns p2 ::1 - 6');
  });

  it('reads the single-write line of nodes that did not batch, and writes one write as that line', () => {
    const old = 'S n0 a peer 203.0.113.9 source 1796000000000';
    const m = decodeClusterMessage(old);
    expect(m).toEqual({ type: 'scope', origin: 'n0', writes: [{ op: 'a', peer: 'peer', ip: '203.0.113.9', arg: 'source', now: 1_796_000_000_000 }] });
    expect(encodeClusterMessage(m)).toBe(old);
  });

  it('bounds a batch at MAX_CLUSTER_SCOPE_WRITES writes, both ways', () => {
    const w = { op: 'a', peer: 'p', ip: '192.0.2.1', arg: 'source', now: 1 } as const;
    const full = encodeClusterMessage({ type: 'scope', origin: 'n', writes: Array<typeof w>(MAX_CLUSTER_SCOPE_WRITES).fill(w) });
    expect(decodeClusterMessage(full)).toMatchObject({ type: 'scope', writes: { length: MAX_CLUSTER_SCOPE_WRITES } });
    expect(() => encodeClusterMessage({ type: 'scope', origin: 'n', writes: Array<typeof w>(MAX_CLUSTER_SCOPE_WRITES + 1).fill(w) })).toThrow(EncodeError);
    expect(() => encodeClusterMessage({ type: 'scope', origin: 'n', writes: [] })).toThrow(EncodeError);
    expect(() => decodeClusterMessage(`${full}\na p 192.0.2.1 source 1`)).toThrow(DecodeError);
  });

  it('round-trips any printable fields (property)', () => {
    fc.assert(
      fc.property(field, field, field, field, fc.constantFrom('a', 'c', 's'), fc.nat(), fc.string(), (origin, peer, ip, arg, op, now, text) => {
        const w = { op: op as 'a' | 'c' | 's', peer, ip, arg, now };
        const s: ClusterMessage = { type: 'scope', origin, writes: [w, { ...w, peer: ip, ip: peer }] };
        expect(decodeClusterMessage(encodeClusterMessage(s))).toEqual(s);
        expect(decodeClusterMessage(encodeClusterMessage({ type: 'deliver', to: peer, text }))).toEqual({ type: 'deliver', to: peer, text });
      }),
      { numRuns: 500 },
    );
  });

  it('refuses fields that would not survive, and anything that is not a message, with typed errors', () => {
    expect(() => encodeClusterMessage({ type: 'deliver', to: 'a b', text: '' })).toThrow(EncodeError);
    expect(() => encodeClusterMessage({ type: 'replaced', peerId: 'p', seq: -1 })).toThrow(EncodeError);
    expect(() => encodeClusterMessage({ type: 'replaced', peerId: 'x'.repeat(129), seq: 1 })).toThrow(EncodeError);
    for (const bad of [
      '',
      'X y',
      'D',
      'D a b\nt',
      'R p',
      'R p 1\n',
      'R p 1e3',
      'R p 99999999999999999',
      'S o x p 1.2.3.4 - 1',
      'S o a p 1.2.3.4 source',
      'S o a p 1.2.3.4 source 1\n',
      'S o a p 1.2.3.4 source 1\nx p 1.2.3.4 source 1',
      'S o a p 1.2.3.4 source 1\na p 1.2.3.4 source',
      'S o a p 1.2.3.4 source 1\na p  source 1',
      'D  \nx',
    ]) {
      expect(() => decodeClusterMessage(bad), JSON.stringify(bad)).toThrow(DecodeError);
    }
  });

  it('never throws anything but DecodeError on random text (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          decodeClusterMessage(s);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
