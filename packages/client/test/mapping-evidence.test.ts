// What the ICE checks tell the punch driver about both sides' NAT mappings, from the agent's
// pairs and candidates as a connection behind a symmetric NAT (or facing one) has them.
import type { IceCandidate } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { localMappingEvidence, remoteMappingEvidence } from '../src/connect/mapping-evidence.js';
import type { CandidatePairInfo } from '../src/ice/types.js';

const cand = (type: IceCandidate['type'], address: string, port: number): IceCandidate => ({
  foundation: type,
  component: 1,
  transport: 'udp',
  priority: 1,
  address,
  port,
  type,
  extensions: [],
});

const host = cand('host', '198.18.1.2', 5000);
const srflx = cand('srflx', '203.0.113.254', 5000);
const peerRelay = cand('relay', '203.0.113.1', 50000);

const pair = (mappedLocal: IceCandidate, state: CandidatePairInfo['state'] = 'succeeded'): CandidatePairInfo => ({
  id: 1,
  local: host,
  mappedLocal,
  remote: peerRelay,
  base: 'h0',
  remoteAddress: { family: 'IPv4', address: peerRelay.address, port: peerRelay.port },
  state,
  priority: 1n,
  nominated: false,
  path: 'relay',
  rttMs: 5,
});

describe('localMappingEvidence', () => {
  const locals = [
    { candidate: host, base: 'h0' },
    { candidate: srflx, base: 'h0' },
  ];
  it('a check answered with a mapped address unlike the base srflx: endpoint-dependent', () => {
    const e = localMappingEvidence([pair(cand('prflx', '203.0.113.254', 40001))], locals);
    expect(e?.reason).toMatch(/come from 203\.0\.113\.254:40001, not from our server-reflexive 203\.0\.113\.254:5000/);
  });
  it('the same mapping, a check still in progress, or no srflx of that base: nothing', () => {
    expect(localMappingEvidence([pair(srflx)], locals)).toBeUndefined();
    expect(localMappingEvidence([pair(cand('prflx', '203.0.113.254', 40001), 'in-progress')], locals)).toBeUndefined();
    expect(localMappingEvidence([pair(cand('prflx', '203.0.113.254', 40001))], [{ candidate: host, base: 'h0' }])).toBeUndefined();
  });
});

describe('remoteMappingEvidence', () => {
  const signalled = [cand('host', '198.19.1.2', 6000), cand('srflx', '203.0.113.253', 6000), cand('relay', '203.0.113.1', 51000)];
  it("a peer-reflexive port on the peer's public IP that it never signalled: endpoint-dependent", () => {
    const e = remoteMappingEvidence(signalled, [...signalled, cand('prflx', '203.0.113.253', 31000)]);
    expect(e?.reason).toMatch(/came from 203\.0\.113\.253:31000, a port it did not signal \(it signalled 6000\)/);
  });
  it('a peer-reflexive address elsewhere, or a signalled one: nothing', () => {
    expect(remoteMappingEvidence(signalled, [cand('prflx', '198.51.100.9', 31000)])).toBeUndefined();
    expect(remoteMappingEvidence(signalled, [cand('prflx', '203.0.113.253', 6000)])).toBeUndefined();
  });
});
