import type { TransportAddress } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import {
  BindingLifetimeSearch,
  type ClassicObservations,
  type FirstTestOutcome,
  NAT_CLASSES,
  type TestOutcome,
  classicNextStep,
  classifyFiltering,
  classifyMapping,
  describeReachability,
  natClassInfo,
  natClassLetter,
} from '../src/index.js';

const addr = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });
const alternate = addr('198.51.100.2', 3479);
const local = addr('198.18.0.10', 40000);
const public1 = addr('203.0.113.5', 50000);
const public2 = addr('203.0.113.5', 50001);

const noNat: FirstTestOutcome = { kind: 'response', mapped: local, sameAsLocal: true, alternate };
const natted: FirstTestOutcome = { kind: 'response', mapped: public1, sameAsLocal: false, alternate };
const noAlternate: FirstTestOutcome = { kind: 'response', mapped: public1, sameAsLocal: false, alternate: undefined };
const answered = (mapped: TransportAddress = public1): TestOutcome => ({ kind: 'response', mapped });
const silent: TestOutcome = { kind: 'no-response' };
const broken: TestOutcome = { kind: 'unusable', reason: 'error response 420' };

describe('classic NAT test decision (the seed document, STEP1-5)', () => {
  const cases: [string, ClassicObservations, string, string | null][] = [
    ['STEP1 a: Test1 unanswered is G, UDP blocked', { test1: { kind: 'no-response' } }, 'STEP1', 'udp-blocked'],
    ['STEP2 b: no NAT and Test2 answered is A, open internet', { test1: noNat, test2: answered(local) }, 'STEP2', 'open-internet'],
    ['STEP2 a: no NAT and Test2 unanswered is E, symmetric UDP firewall', { test1: noNat, test2: silent }, 'STEP2', 'symmetric-udp-firewall'],
    ['STEP3 b: NAT and Test2 answered is B, full cone', { test1: natted, test2: answered() }, 'STEP3', 'full-cone'],
    ['STEP4: Test1#2 port differs is F, symmetric', { test1: natted, test2: silent, test1_2: answered(public2) }, 'STEP4', 'symmetric'],
    ['STEP4: Test1#2 IP differs is F, symmetric', { test1: natted, test2: silent, test1_2: answered(addr('203.0.113.6', 50000)) }, 'STEP4', 'symmetric'],
    ['STEP5: Test3 answered is C, restricted cone', { test1: natted, test2: silent, test1_2: answered(), test3: answered() }, 'STEP5', 'restricted-cone'],
    [
      'STEP5: Test3 unanswered is D, port-restricted cone',
      { test1: natted, test2: silent, test1_2: answered(), test3: silent },
      'STEP5',
      'port-restricted-cone',
    ],
    // where the seed document's assumptions fail, the server cannot tell
    ['Test1 unusable', { test1: { kind: 'unusable', reason: 'error response 500' } }, 'STEP1', null],
    ['no alternate address', { test1: noAlternate }, 'STEP1', null],
    ['Test2 unusable (no NAT)', { test1: noNat, test2: broken }, 'STEP2', null],
    ['Test2 unusable (NAT)', { test1: natted, test2: broken }, 'STEP3', null],
    ['Test1#2 unanswered', { test1: natted, test2: silent, test1_2: silent }, 'STEP4', null],
    ['Test1#2 unusable', { test1: natted, test2: silent, test1_2: broken }, 'STEP4', null],
    ['Test3 unusable', { test1: natted, test2: silent, test1_2: answered(), test3: broken }, 'STEP5', null],
  ];
  for (const [name, obs, step, nat] of cases) {
    it(name, () => {
      const r = classicNextStep(obs);
      expect(r).toMatchObject({ done: true, step, nat });
      if (r.done) expect(r.reason.length).toBeGreaterThan(10);
    });
  }

  it('asks for the tests in the seed document order', () => {
    expect(classicNextStep({})).toEqual({ done: false, step: 'STEP1', next: 'Test1' });
    expect(classicNextStep({ test1: noNat })).toEqual({ done: false, step: 'STEP2', next: 'Test2' });
    expect(classicNextStep({ test1: natted })).toEqual({ done: false, step: 'STEP3', next: 'Test2' });
    expect(classicNextStep({ test1: natted, test2: silent })).toEqual({ done: false, step: 'STEP4', next: 'Test1#2' });
    expect(classicNextStep({ test1: natted, test2: silent, test1_2: answered() })).toEqual({ done: false, step: 'STEP5', next: 'Test3' });
  });

  it('does not look at tests the procedure does not reach', () => {
    // full cone is decided at STEP3 whatever Test1#2 and Test3 say
    expect(classicNextStep({ test1: natted, test2: answered(), test1_2: answered(public2), test3: silent })).toMatchObject({ nat: 'full-cone' });
    // symmetric at STEP4 whatever Test3 says
    expect(classicNextStep({ test1: natted, test2: silent, test1_2: answered(public2), test3: answered() })).toMatchObject({ nat: 'symmetric' });
    // no NAT: STEP2 only
    expect(classicNextStep({ test1: noNat, test2: silent, test1_2: answered(public2), test3: answered() })).toMatchObject({
      nat: 'symmetric-udp-firewall',
    });
  });
});

describe('RFC 5780 mapping (section 4.3)', () => {
  it('no NAT is endpoint-independent without further tests', () => {
    expect(classifyMapping({ testI: noNat })).toMatchObject({ done: true, behavior: 'endpoint-independent' });
    expect(classifyMapping({ testI: { ...noNat, alternate: undefined } })).toMatchObject({ behavior: 'endpoint-independent' });
  });
  it('Test II = Test I is endpoint-independent', () => {
    expect(classifyMapping({ testI: natted, testII: answered() })).toMatchObject({ behavior: 'endpoint-independent' });
  });
  it('Test III = Test II != Test I is address-dependent', () => {
    expect(classifyMapping({ testI: natted, testII: answered(public2), testIII: answered(public2) })).toMatchObject({ behavior: 'address-dependent' });
  });
  it('Test III != Test II != Test I is address-and-port-dependent', () => {
    expect(classifyMapping({ testI: natted, testII: answered(public2), testIII: answered(addr('203.0.113.5', 50002)) })).toMatchObject({
      behavior: 'address-and-port-dependent',
    });
  });
  it('asks for Test I, II, III as needed', () => {
    expect(classifyMapping({})).toEqual({ done: false, next: 'I' });
    expect(classifyMapping({ testI: natted })).toEqual({ done: false, next: 'II' });
    expect(classifyMapping({ testI: natted, testII: answered(public2) })).toEqual({ done: false, next: 'III' });
  });
  it('is not measurable when a test fails or the server has no OTHER-ADDRESS', () => {
    for (const o of [
      { testI: { kind: 'no-response' } as const },
      { testI: { kind: 'unusable', reason: 'x' } as const },
      { testI: noAlternate },
      { testI: natted, testII: silent },
      { testI: natted, testII: broken },
      { testI: natted, testII: answered(public2), testIII: silent },
      { testI: natted, testII: answered(public2), testIII: broken },
    ]) {
      expect(classifyMapping(o)).toMatchObject({ done: true, behavior: null });
    }
  });
});

describe('RFC 5780 filtering (section 4.4)', () => {
  it('Test II answered is endpoint-independent', () => {
    expect(classifyFiltering({ testI: natted, testII: answered() })).toMatchObject({ behavior: 'endpoint-independent' });
    expect(classifyFiltering({ testI: noNat, testII: answered() })).toMatchObject({ behavior: 'endpoint-independent' });
  });
  it('only Test III answered is address-dependent', () => {
    expect(classifyFiltering({ testI: natted, testII: silent, testIII: answered() })).toMatchObject({ behavior: 'address-dependent' });
  });
  it('neither answered is address-and-port-dependent', () => {
    expect(classifyFiltering({ testI: natted, testII: silent, testIII: silent })).toMatchObject({ behavior: 'address-and-port-dependent' });
    expect(classifyFiltering({ testI: noNat, testII: silent, testIII: silent })).toMatchObject({ behavior: 'address-and-port-dependent' });
  });
  it('asks for tests as needed', () => {
    expect(classifyFiltering({})).toEqual({ done: false, next: 'I' });
    expect(classifyFiltering({ testI: natted })).toEqual({ done: false, next: 'II' });
    expect(classifyFiltering({ testI: natted, testII: silent })).toEqual({ done: false, next: 'III' });
  });
  it('is not measurable when a test is unusable or the server has no OTHER-ADDRESS', () => {
    for (const o of [
      { testI: { kind: 'no-response' } as const },
      { testI: { kind: 'unusable', reason: 'x' } as const },
      { testI: noAlternate, testII: answered() },
      { testI: natted, testII: broken },
      { testI: natted, testII: silent, testIII: broken },
    ]) {
      expect(classifyFiltering(o)).toMatchObject({ done: true, behavior: null });
    }
  });
});

describe('vocabulary', () => {
  it('has the seven classes A-G in the seed document order', () => {
    expect(NAT_CLASSES.map((c) => `${c.letter}:${c.id}`)).toEqual([
      'A:open-internet',
      'B:full-cone',
      'C:restricted-cone',
      'D:port-restricted-cone',
      'E:symmetric-udp-firewall',
      'F:symmetric',
      'G:udp-blocked',
    ]);
    expect(natClassLetter('symmetric')).toBe('F');
    for (const c of NAT_CLASSES) {
      expect(natClassInfo(c.id)).toBe(c);
      expect(c.meaning).toMatch(/\.$/);
      expect(c.reachability).toMatch(/\.$/);
    }
  });
  it('describes reachability from the classic type, else from mapping and filtering', () => {
    expect(describeReachability('udp-blocked', null, null)).toBe(natClassInfo('udp-blocked').reachability);
    expect(describeReachability(null, 'endpoint-independent', 'endpoint-independent')).toBe(natClassInfo('full-cone').reachability);
    expect(describeReachability(null, 'endpoint-independent', 'address-dependent')).toBe(natClassInfo('restricted-cone').reachability);
    expect(describeReachability(null, 'endpoint-independent', 'address-and-port-dependent')).toBe(natClassInfo('port-restricted-cone').reachability);
    expect(describeReachability(null, 'address-dependent', null)).toBe(natClassInfo('symmetric').reachability);
    expect(describeReachability(null, 'endpoint-independent', null)).toMatch(/filtering could not be measured/);
    expect(describeReachability(null, null, null)).toMatch(/^Unknown/);
  });
});

describe('BindingLifetimeSearch', () => {
  /** Runs the search against a binding that lives `lifetime` ms; returns the rounds. */
  function simulate(search: BindingLifetimeSearch, lifetime: number): number[][] {
    const rounds: number[][] = [];
    for (let r = search.nextRound(); r.length > 0; r = search.nextRound()) {
      rounds.push(r);
      for (const t of r) search.record(t, t < lifetime);
      if (rounds.length > 50) throw new Error('does not converge');
    }
    return rounds;
  }

  it('starts with a doubling ladder and narrows the bracket to the precision', () => {
    const s = new BindingLifetimeSearch({ minIntervalMs: 5000, maxIntervalMs: 320_000, precisionMs: 5000, parallelProbes: 4 });
    const rounds = simulate(s, 97_000);
    expect(rounds[0]).toEqual([5000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000]);
    expect(rounds[1]).toEqual([96_000, 112_000, 128_000, 144_000]);
    expect(s.aliveMs).toBeLessThan(97_000);
    expect(s.deadMs).toBeGreaterThanOrEqual(97_000);
    expect(s.deadMs! - s.aliveMs).toBeLessThanOrEqual(5000);
    expect(s.done).toBe(true);
  });

  it('reports at least the longest interval when the binding outlives it', () => {
    const s = new BindingLifetimeSearch({ minIntervalMs: 100, maxIntervalMs: 1000 });
    expect(simulate(s, Infinity)).toEqual([[100, 200, 400, 800, 1000]]);
    expect(s.aliveMs).toBe(1000);
    expect(s.deadMs).toBeUndefined();
  });

  it('searches below the shortest interval when even that one fails', () => {
    const s = new BindingLifetimeSearch({ minIntervalMs: 1000, maxIntervalMs: 4000, precisionMs: 100, parallelProbes: 3 });
    simulate(s, 330);
    expect(s.aliveMs).toBeLessThan(330);
    expect(s.deadMs).toBeGreaterThanOrEqual(330);
    expect(s.deadMs! - s.aliveMs).toBeLessThanOrEqual(100);
  });

  it('trusts the shortest dead interval over a contradicting alive one', () => {
    const s = new BindingLifetimeSearch({ minIntervalMs: 100, maxIntervalMs: 800 });
    s.nextRound();
    s.record(400, false);
    s.record(800, true);
    expect(s.deadMs).toBe(400);
    expect(s.aliveMs).toBe(0);
    s.record(200, true);
    expect(s.aliveMs).toBe(200);
  });

  it('rejects impossible settings', () => {
    expect(() => new BindingLifetimeSearch({ minIntervalMs: 0 })).toThrow(RangeError);
    expect(() => new BindingLifetimeSearch({ minIntervalMs: 10, maxIntervalMs: 5 })).toThrow(RangeError);
  });
});
