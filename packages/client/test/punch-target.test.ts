// punchTarget with two server-reflexive candidates (a host with two addresses behind one carrier
// NAT): both sides must pick the same one whatever order they were trickled in, so the highest
// priority wins (the route-source host address has the highest local preference).
import type { IceCandidate } from '@nat/protocol';
import { candidatePriority } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { punchTarget } from '../src/ice/index.js';

const srflx = (port: number, localPreference: number): IceCandidate => ({
  foundation: `s${port}`,
  component: 1,
  transport: 'udp',
  priority: candidatePriority('srflx', localPreference, 1),
  address: '203.0.113.254',
  port,
  type: 'srflx',
  extensions: [],
});

describe('punchTarget', () => {
  it('takes the server-reflexive candidate of the highest priority, in either order', () => {
    const high = srflx(42316, 65535);
    const low = srflx(60584, 65534);
    const want = { family: 'IPv4', address: '203.0.113.254', port: 42316 };
    expect(punchTarget([low, high])).toEqual(want);
    expect(punchTarget([high, low])).toEqual(want);
  });
});
