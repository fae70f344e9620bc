import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError, EncodeError } from '../src/errors.js';
import { type ClusterMessage, decodeClusterMessage, encodeClusterMessage } from '../src/signalling/cluster.js';

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
        op: 'a',
        peer: 'abcdefghijklmnopqrstuvwxyz234567',
        ip: '2001:db8::1',
        arg: 'source',
        now: 1_796_000_000_000,
      },
    ];
    for (const m of all) expect(decodeClusterMessage(encodeClusterMessage(m))).toEqual(m);
    expect(encodeClusterMessage(all[1]!)).toBe('R abcdefghijklmnopqrstuvwxyz234567 42');
  });

  it('round-trips any printable fields (property)', () => {
    fc.assert(
      fc.property(field, field, field, field, fc.constantFrom('a', 'c', 's'), fc.nat(), fc.string(), (origin, peer, ip, arg, op, now, text) => {
        const s: ClusterMessage = { type: 'scope', origin, op: op as 'a' | 'c' | 's', peer, ip, arg, now };
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
