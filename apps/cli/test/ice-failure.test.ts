import type { ConnectionDiagnosis } from '@nat/client';
import { describe, expect, it } from 'vitest';
import { explainFailure, hints } from '../src/commands/ice-failure.js';
import { deniedRange } from '../src/commands/peer-ranges.js';

const none = { host: 0, loopbackHost: 0, srflx: 0, prflx: 0, relay: 0 };
const base: ConnectionDiagnosis = {
  iceServers: { stun: ['127.0.0.1:3478'], turn: ['127.0.0.1:3478/udp'] },
  serversOnLoopback: false,
  hostCandidates: true,
  local: { ...none, host: 1, srflx: 1, relay: 1 },
  remote: { ...none, host: 1, srflx: 1, relay: 1 },
  remoteRelaySeenAt: [],
  relay: 'obtained',
  relayErrors: [],
  permissionsRefused: [],
  peerBye: undefined,
  peerEnded: false,
};

describe('explaining an ICE failure', () => {
  it('names no flag when nothing observed points at one', () => {
    expect(hints(base)).toEqual([]);
    // a refusal for a public peer is reported, but --allow-peer would not be the fix for it
    expect(hints({ ...base, permissionsRefused: [{ ip: '198.51.100.7', code: 403, message: 'Forbidden' }] })).toEqual([]);
    expect(
      explainFailure('nat ping: ICE failed: all-pairs-failed', { ...base, permissionsRefused: [{ ip: '198.51.100.7', code: 403, message: 'Forbidden' }] }),
    ).toMatch(/refused permissions toward the peer's addresses: 198\.51\.100\.7 \(403\)/);
  });

  it('--host-address 127.0.0.1 when the rendezvous is on loopback, the TURN server saw the peer on loopback and nobody had a loopback host', () => {
    const d = { ...base, serversOnLoopback: true, remoteRelaySeenAt: ['127.0.0.1'] };
    expect(hints(d).join('\n')).toMatch(/give both sides --host-address 127\.0\.0\.1/);
    // not when a loopback host candidate was there (something else failed), nor without the peer seen on loopback
    expect(hints({ ...d, local: { ...d.local, loopbackHost: 1 } })).toEqual([]);
    expect(hints({ ...d, remoteRelaySeenAt: ['203.0.113.9'] })).toEqual([]);
  });

  it('names the range of a refused loopback or private peer as --allow-peer takes it', () => {
    expect(deniedRange('127.0.13.5')?.cidr).toBe('127.0.0.0/8');
    expect(deniedRange('192.168.1.20')?.cidr).toBe('192.168.0.0/16');
    expect(deniedRange('172.31.0.1')?.cidr).toBe('172.16.0.0/12');
    expect(deniedRange('172.32.0.1')).toBeUndefined();
    expect(deniedRange('fd12::1')?.cidr).toBe('fc00::/7');
    expect(deniedRange('203.0.113.1')).toBeUndefined();
    const d = {
      ...base,
      permissionsRefused: [
        { ip: '10.1.2.3', code: 403, message: 'Forbidden' },
        { ip: '127.0.0.1', code: 403, message: 'Forbidden' },
      ],
    };
    expect(hints(d)[0]).toBe(
      'the relay refuses private/loopback peers by default (403 Forbidden): start nat-server with --allow-peer 10.0.0.0/8 --allow-peer 127.0.0.0/8',
    );
  });

  it('no relay offered: says so with what the rendezvous handed out, and the server flags that offer one', () => {
    const d: ConnectionDiagnosis = { ...base, iceServers: { stun: ['127.0.0.1:3478'], turn: [] }, relay: 'not-offered', local: { ...none, host: 1, srflx: 1 } };
    const text = explainFailure('nat ping: ICE failed: all-pairs-failed', d);
    expect(text).toMatch(/no relay was offered by the rendezvous: the ICE servers it handed out were stun:127\.0\.0\.1:3478/);
    expect(text).toMatch(/--realm and --auth-secret/);
    expect(text).not.toMatch(/--relay-only/);
  });
});
