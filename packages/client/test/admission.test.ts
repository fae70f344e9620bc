/**
 * Admission of inbound offers (issue 14, finding 5), on a virtual clock: caps at once, per peer,
 * new-session rates, the allow check, and the refusal budget.
 */
import { describe, expect, it } from 'vitest';
import { OfferAdmission, refusalReason } from '../src/index.js';

describe('offer admission', () => {
  it('finding 5: one peer gets at most its share; every peer together at most the cap; releasing frees a slot', () => {
    const a = new OfferAdmission({ maxSessions: 5, maxSessionsPerPeer: 2, sessionsPerSecond: 100 }, 0);
    expect([a.admit('p', 0), a.admit('p', 0), a.admit('p', 0)]).toEqual([true, true, 'peer-sessions']);
    expect([a.admit('q', 0), a.admit('q', 0), a.admit('r', 0), a.admit('s', 0)]).toEqual([true, true, true, 'sessions']);
    expect(a.stats.sessions).toBe(5);
    a.release('q');
    expect(a.admit('s', 0)).toBe(true);
    expect(a.stats.refused).toMatchObject({ 'peer-sessions': 1, sessions: 1 });
  });

  it('limits how fast new sessions start, per peer and overall, and refills with time', () => {
    const a = new OfferAdmission({ maxSessionsPerPeer: 2, sessionsPerPeerPerMinute: 6, peerBurst: 2, sessionsPerSecond: 1 }, 0);
    // per peer: a burst of 2, then one every 10 s
    expect(a.admit('p', 0)).toBe(true);
    a.release('p');
    expect(a.admit('p', 1)).toBe(true);
    a.release('p');
    expect(a.admit('p', 2)).toBe('peer-rate');
    expect(a.admit('p', 10_003)).toBe(true);
    a.release('p');
    // overall: a burst of 4 (2 x per peer), 1 per second after
    const b = new OfferAdmission({ maxSessionsPerPeer: 2, sessionsPerSecond: 1 }, 0);
    const got = ['a', 'b', 'c', 'd', 'e'].map((p) => b.admit(p, 0));
    expect(got).toEqual([true, true, true, true, 'rate']);
    expect(b.admit('e', 1000)).toBe(true);
  });

  it('serves a peer that runs nat ping again and again (eight sessions back to back, one at a time), as the kernel-NAT matrix does', () => {
    const a = new OfferAdmission({}, 0);
    const got: Array<true | string> = [];
    for (let i = 0; i < 8; i++) {
      got.push(a.admit('p', i * 1500));
      a.release('p');
    }
    expect(got).toEqual(Array.from({ length: 8 }, () => true));
  });

  it('refuses a peer that is not allowed before counting anything, and rate limits the refusals it answers', () => {
    const a = new OfferAdmission({ allow: (p) => p === 'friend', refusalsPerSecond: 1 }, 0);
    expect(a.admit('stranger', 0)).toBe('not-allowed');
    expect(a.stats.sessions).toBe(0);
    expect(refusalReason('not-allowed')).toBe('not allowed');
    const answered = Array.from({ length: 20 }, () => a.answerRefusal(0)).filter(Boolean).length;
    expect(answered).toBe(5);
    expect(a.answerRefusal(1000)).toBe(true);
    expect(a.admit('friend', 0)).toBe(true);
  });
});
