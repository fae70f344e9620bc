/**
 * What ice-agent.test.ts asks of its namespace runner (ice-run-in-netns.ts) and what the runner
 * prints back: one JSON line on stdout.
 */

/** One offer/answer exchange between Chromium and our IceAgent. */
export interface IceRunSpec {
  /** Name shown in the test report. */
  readonly name: string;
  /**
   * Whether the browser's candidates (from the offer and trickled) reach our agent. When false
   * the agent gets none and must learn the browser's address as peer-reflexive (RFC 8445
   * section 7.3.1.3) from the browser's checks.
   */
  readonly signalCandidates: boolean;
  /**
   * After both sides connected, keep the connection this long before reading the results, so that
   * the agent's consent checks (RFC 7675, every 5 s on average) run against the browser. 0: none.
   */
  readonly holdMs: number;
}

/** The runner's input, passed as one JSON argument. */
export interface IceRunnerInput {
  readonly runs: readonly IceRunSpec[];
  /** The runner gives up (closes the browser, prints what it has) after this long. */
  readonly deadlineMs: number;
}

/** A candidate as getStats() reports it. */
export interface StatsCandidate {
  readonly candidateType: string | null;
  readonly address: string | null;
  readonly port: number | null;
  readonly protocol: string | null;
}

/** The browser's side of one run. */
export interface BrowserIceResult {
  /** Every iceConnectionState the browser went through, with ms since setRemoteDescription. */
  readonly iceStates: readonly { readonly state: string; readonly at: number }[];
  readonly finalIceState: string;
  readonly connectionState: string;
  /** The selected (or else nominated and succeeded) pair from getStats(). */
  readonly selected: {
    readonly state: string | null;
    readonly nominated: boolean | null;
    readonly requestsSent: number | null;
    readonly requestsReceived: number | null;
    readonly responsesSent: number | null;
    readonly responsesReceived: number | null;
    readonly local: StatsCandidate | null;
    readonly remote: StatsCandidate | null;
  } | null;
}

/** A summary of one pair as our agent reported it. */
export interface AgentPair {
  readonly localType: string;
  readonly localAddress: string;
  readonly remoteType: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly state: string;
  readonly nominated: boolean;
  readonly path: string;
  readonly rttMs: number | null;
}

/** What the driver saw on the agent's socket and of the agent. */
export interface AgentSideResult {
  /** Our socket's address. */
  readonly local: { readonly address: string; readonly port: number };
  /** The states the agent went through (ms since the answer was applied), failure reasons included. */
  readonly states: readonly { readonly state: string; readonly at: number; readonly reason?: string }[];
  readonly finalState: string;
  readonly selected: AgentPair | null;
  readonly pairs: readonly AgentPair[];
  readonly remoteCandidates: readonly { readonly type: string; readonly address: string; readonly port: number }[];
  /** Candidates the browser signalled, and how many of them reached the agent (IP addresses). */
  readonly browserCandidates: readonly string[];
  readonly candidatesGivenToAgent: number;
  /**
   * Binding requests from the browser: total, how many named our ufrag first in USERNAME with a
   * MESSAGE-INTEGRITY valid under our password, how many carried USE-CANDIDATE and ICE-CONTROLLING.
   */
  readonly requestsIn: { readonly total: number; readonly validUnderOurPwd: number; readonly useCandidate: number; readonly controlling: number };
  /** Binding responses from the browser: total, success class, MESSAGE-INTEGRITY valid under the browser's password, matching a request our agent sent. */
  readonly responsesIn: { readonly total: number; readonly success: number; readonly validUnderBrowserPwd: number; readonly matchingOurRequests: number };
  /** What our agent sent: requests, success responses, error responses (with codes), indications. */
  readonly sent: { readonly requests: number; readonly successResponses: number; readonly errorResponses: readonly number[]; readonly other: number };
  /** Datagrams that were not STUN Binding (DTLS from the browser, if any). */
  readonly nonStunIn: number;
}

/** One run's result. */
export interface IceRunResult {
  readonly spec: IceRunSpec;
  readonly offer: string;
  readonly answer: string;
  readonly browser: BrowserIceResult | null;
  readonly agent: AgentSideResult | null;
  /** The browser's iceConnectionState after the hold (null without a hold). */
  readonly browserStateAfterHold: string | null;
  readonly elapsedMs: number;
  readonly error?: string;
}

/** The runner's one JSON line. */
export interface IceRunnerOutput {
  readonly browserVersion: string | null;
  readonly runs: readonly IceRunResult[];
  readonly totalMs: number;
  readonly error?: string;
}
