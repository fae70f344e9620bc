/**
 * The classic NAT type test, exactly as the project's seed document describes it (after RFC
 * 3489 section 10.1 and its well-known flow chart), as a pure decision procedure over recorded
 * test outcomes. The tests, sent from one local socket {IP-C1:Port-C1}:
 *
 * - Test1: a Binding request with no attributes to the primary address {IP-S1:Port-S1};
 * - Test2: to {IP-S1:Port-S1} with CHANGE-REQUEST "change IP" and "change port": the server
 *   answers from {IP-S2:Port-S2};
 * - Test1#2: a Binding request with no attributes to {IP-S2:Port-S2} (the alternate address
 *   the Test1 response names in CHANGED-ADDRESS / OTHER-ADDRESS);
 * - Test3: to {IP-S1:Port-S1} with CHANGE-REQUEST "change port": the server answers from
 *   {IP-S1:Port-S2}.
 *
 * And the steps:
 *
 * - STEP1 (Test1): no response at all: G, UDP blocked. A mapped address equal to the local
 *   address: no NAT, go to STEP2. Otherwise a NAT: go to STEP3.
 * - STEP2 (Test2, no NAT): no response: E, symmetric UDP firewall; a response: A, open internet.
 * - STEP3 (Test2, NAT): a response: B, full cone; none: go to STEP4.
 * - STEP4 (Test1#2): a mapped address (IP or port) different from Test1's: F, symmetric NAT;
 *   the same: go to STEP5.
 * - STEP5 (Test3): a response: C, restricted cone; none: D, port-restricted cone.
 *
 * Where the seed document assumes something that may fail (the server names no alternate
 * address, answers a CHANGE-REQUEST with an error or from the wrong address, or Test1#2 goes
 * unanswered although "it must be received"), the result is `null`: not measurable with this
 * server, with the reason said.
 *
 * @module
 */
import { sameTransportAddress } from '@nat/protocol';
import type { NatClass } from './nat-class.js';
import type { FirstTestOutcome, TestOutcome } from './outcome.js';

/** The classic tests, by the seed document's names. */
export type ClassicTestName = 'Test1' | 'Test2' | 'Test1#2' | 'Test3';

/** The seed document's steps. */
export type ClassicStepName = 'STEP1' | 'STEP2' | 'STEP3' | 'STEP4' | 'STEP5';

/** What the classic tests observed so far; a test not (yet) run is absent. */
export interface ClassicObservations {
  readonly test1?: FirstTestOutcome;
  /** Change IP and port. */
  readonly test2?: TestOutcome;
  /** To the alternate address {IP-S2:Port-S2}; compared with Test1's mapped address. */
  readonly test1_2?: TestOutcome;
  /** Change port. */
  readonly test3?: TestOutcome;
}

/** The next thing the classic procedure needs, or its verdict. */
export type ClassicStep =
  | { readonly done: false; readonly step: ClassicStepName; readonly next: ClassicTestName }
  | {
      readonly done: true;
      readonly step: ClassicStepName;
      /** The classic type, or null when this server cannot tell (see `reason`). */
      readonly nat: NatClass | null;
      /** One line: why. */
      readonly reason: string;
    };

const need = (step: ClassicStepName, next: ClassicTestName): ClassicStep => ({ done: false, step, next });
const verdict = (step: ClassicStepName, nat: NatClass | null, reason: string): ClassicStep => ({ done: true, step, nat, reason });

function unusable(step: ClassicStepName, test: ClassicTestName, o: TestOutcome): ClassicStep | undefined {
  return o.kind === 'unusable' ? verdict(step, null, `${test} is not measurable: ${o.reason}`) : undefined;
}

/**
 * The classic decision procedure: given what was observed so far, either the next test to run
 * or the verdict. Pure: run the requested test, add its outcome, call again.
 */
export function classicNextStep(o: ClassicObservations): ClassicStep {
  // STEP1: Test1 tells whether UDP gets through at all, and whether there is a NAT.
  const t1 = o.test1;
  if (!t1) return need('STEP1', 'Test1');
  if (t1.kind === 'no-response') return verdict('STEP1', 'udp-blocked', 'Test1 got no response: UDP is blocked');
  if (t1.kind === 'unusable') return verdict('STEP1', null, `Test1 is not usable: ${t1.reason}`);
  if (!t1.alternate) {
    return verdict('STEP1', null, 'the server named no alternate address (CHANGED-ADDRESS / OTHER-ADDRESS), so it cannot run Test2, Test1#2 or Test3');
  }

  if (t1.sameAsLocal) {
    // STEP2: no NAT; does a firewall stop what comes from another address?
    if (!o.test2) return need('STEP2', 'Test2');
    const bad = unusable('STEP2', 'Test2', o.test2);
    if (bad) return bad;
    return o.test2.kind === 'response'
      ? verdict('STEP2', 'open-internet', 'no NAT (mapped address = local address) and Test2 was answered from the other IP and port')
      : verdict('STEP2', 'symmetric-udp-firewall', 'no NAT (mapped address = local address) but Test2, from the other IP and port, was blocked');
  }

  // STEP3: behind a NAT; full cone when Test2's answer from the other IP and port gets in.
  if (!o.test2) return need('STEP3', 'Test2');
  const bad2 = unusable('STEP3', 'Test2', o.test2);
  if (bad2) return bad2;
  if (o.test2.kind === 'response') {
    return verdict('STEP3', 'full-cone', 'behind a NAT, and Test2 was answered from the other IP and port');
  }

  // STEP4: symmetric when the alternate address sees another mapping.
  if (!o.test1_2) return need('STEP4', 'Test1#2');
  const t12 = o.test1_2;
  if (t12.kind === 'unusable') return verdict('STEP4', null, `Test1#2 is not measurable: ${t12.reason}`);
  if (t12.kind === 'no-response') {
    // The seed document: "it will certainly be received, since STEP1 proved UDP works".
    return verdict('STEP4', null, 'Test1#2 to the alternate address got no response, so the mappings cannot be compared');
  }
  if (!sameTransportAddress(t12.mapped, t1.mapped)) {
    return verdict('STEP4', 'symmetric', 'the alternate address saw a different mapped address than the primary (Test1#2 differs from Test1)');
  }

  // STEP5: restricted cone when an answer from the same IP but another port gets in.
  if (!o.test3) return need('STEP5', 'Test3');
  const bad3 = unusable('STEP5', 'Test3', o.test3);
  if (bad3) return bad3;
  return o.test3.kind === 'response'
    ? verdict('STEP5', 'restricted-cone', 'same mapping for both server addresses; Test3, from the same IP and another port, got in')
    : verdict('STEP5', 'port-restricted-cone', 'same mapping for both server addresses; Test3, from the same IP and another port, was blocked');
}
