/**
 * RFC 5780 behaviour discovery as pure decision procedures over recorded test outcomes:
 * mapping (section 4.3) and filtering (section 4.4).
 *
 * @module
 */
import { sameTransportAddress } from '@nat/protocol';
import type { NatBehavior } from './nat-class.js';
import type { FirstTestOutcome, TestOutcome } from './outcome.js';

/** A behaviour verdict, or the next test needed to reach one. */
export type BehaviorStep =
  | { readonly done: false; readonly next: 'I' | 'II' | 'III' }
  | {
      readonly done: true;
      /** The behaviour, or null when it is not measurable with this server (see `reason`). */
      readonly behavior: NatBehavior | null;
      /** One line: why. */
      readonly reason: string;
    };

/** RFC 5780 section 4.3 tests, all from one local socket. */
export interface MappingObservations {
  /** Test I: to the primary address {IP-S1:Port-S1}. */
  readonly testI?: FirstTestOutcome;
  /** Test II: to the alternate IP and the primary port {IP-S2:Port-S1}. */
  readonly testII?: TestOutcome;
  /** Test III: to the alternate IP and the alternate port {IP-S2:Port-S2}. */
  readonly testIII?: TestOutcome;
}

/** RFC 5780 section 4.4 tests, all from one local socket, all to the primary address. */
export interface FilteringObservations {
  /** Test I: no attributes. */
  readonly testI?: FirstTestOutcome;
  /** Test II: CHANGE-REQUEST with "change IP" and "change port". */
  readonly testII?: TestOutcome;
  /** Test III: CHANGE-REQUEST with "change port" only. */
  readonly testIII?: TestOutcome;
}

const done = (behavior: NatBehavior | null, reason: string): BehaviorStep => ({ done: true, behavior, reason });

function firstTest(t: FirstTestOutcome | undefined): BehaviorStep | undefined {
  if (!t) return { done: false, next: 'I' };
  if (t.kind === 'no-response') return done(null, 'Test I got no response');
  if (t.kind === 'unusable') return done(null, `Test I is not usable: ${t.reason}`);
  if (!t.alternate) return done(null, 'the server sent no OTHER-ADDRESS: it does not support behaviour discovery');
  return undefined;
}

/**
 * RFC 5780 section 4.3: the mapping behaviour. Test I's mapped address equal to the local
 * address means no NAT (reported endpoint-independent: the address is kept for every
 * destination). Otherwise Test II's mapping equal to Test I's is endpoint-independent; else Test
 * III's equal to Test II's is address-dependent, and different is address-and-port-dependent.
 */
export function classifyMapping(o: MappingObservations): BehaviorStep {
  const t1 = o.testI;
  if (t1?.kind === 'response' && t1.sameAsLocal) {
    return done('endpoint-independent', 'no NAT: the mapped address is the local address');
  }
  const stop = firstTest(t1);
  if (stop) return stop;
  const m1 = (t1 as Extract<FirstTestOutcome, { kind: 'response' }>).mapped;
  const t2 = o.testII;
  if (!t2) return { done: false, next: 'II' };
  if (t2.kind === 'no-response') return done(null, 'Test II (alternate IP, primary port) got no response');
  if (t2.kind === 'unusable') return done(null, `Test II is not usable: ${t2.reason}`);
  if (sameTransportAddress(t2.mapped, m1)) {
    return done('endpoint-independent', 'the alternate IP saw the same mapping as the primary (Test II = Test I)');
  }
  const t3 = o.testIII;
  if (!t3) return { done: false, next: 'III' };
  if (t3.kind === 'no-response') return done(null, 'Test III (alternate IP and port) got no response');
  if (t3.kind === 'unusable') return done(null, `Test III is not usable: ${t3.reason}`);
  return sameTransportAddress(t3.mapped, t2.mapped)
    ? done('address-dependent', 'the mapping changes with the server IP but not its port (Test III = Test II != Test I)')
    : done('address-and-port-dependent', 'the mapping changes with the server port too (Test III != Test II != Test I)');
}

/**
 * RFC 5780 section 4.4: the filtering behaviour. Test II answered (from the other IP and port)
 * is endpoint-independent; else Test III answered (same IP, other port) is address-dependent,
 * and unanswered is address-and-port-dependent.
 */
export function classifyFiltering(o: FilteringObservations): BehaviorStep {
  const stop = firstTest(o.testI);
  if (stop) return stop;
  const t2 = o.testII;
  if (!t2) return { done: false, next: 'II' };
  if (t2.kind === 'unusable') return done(null, `Test II (change IP and port) is not usable: ${t2.reason}`);
  if (t2.kind === 'response') return done('endpoint-independent', 'a response from the other IP and port got in (Test II)');
  const t3 = o.testIII;
  if (!t3) return { done: false, next: 'III' };
  if (t3.kind === 'unusable') return done(null, `Test III (change port) is not usable: ${t3.reason}`);
  return t3.kind === 'response'
    ? done('address-dependent', 'only responses from the same IP got in (Test III answered, Test II not)')
    : done('address-and-port-dependent', 'only responses from the exact IP and port got in (Tests II and III unanswered)');
}
