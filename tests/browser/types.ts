/**
 * What the browser test asks of its namespace runner (run-in-netns.ts) and what the runner prints
 * back: one JSON line on stdout, parsed by browser-turn.test.ts.
 */

/** How the browser authenticates to the TURN server in one run. */
export type BrowserAuth = 'static' | 'rest-api';

/** One WebRTC exchange through a fresh TURN server. */
export interface RunSpec {
  /** Name shown in the test report. */
  readonly name: string;
  /** The `transport` parameter of the `turn:` URI: the browser's transport to the server. */
  readonly transport: 'udp' | 'tcp';
  /** Long-term credentials of a static user, or TURN REST API time-limited credentials. */
  readonly auth: BrowserAuth;
  /**
   * The turn: URI names a first server that answers every Allocate 300 Try Alternate (RFC 8656
   * section 7.2) toward a second one, where the allocations then live (as nat-server --workers
   * sends each user to its worker).
   */
  readonly redirect?: boolean;
}

/** The runner's input, passed as one JSON argument. */
export interface RunnerInput {
  readonly runs: readonly RunSpec[];
  /** The runner gives up (closes the browser and servers, prints what it has) after this long. */
  readonly deadlineMs: number;
}

/** One ICE candidate as RTCPeerConnection reported it (onicecandidate or getStats). */
export interface CandidateInfo {
  readonly candidateType: string | null;
  readonly protocol: string | null;
  readonly address: string | null;
  readonly port: number | null;
  /** For relay candidates: the transport between the browser and the TURN server. */
  readonly relayProtocol: string | null;
  readonly url: string | null;
}

/** The selected candidate pair of one peer connection, from getStats(). */
export interface SelectedPair {
  /** How it was found: the transport's selectedCandidatePairId, or a nominated succeeded pair. */
  readonly via: 'transport' | 'nominated';
  readonly state: string;
  readonly nominated: boolean;
  readonly local: CandidateInfo;
  readonly remote: CandidateInfo;
  readonly currentRoundTripTime: number | null;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** STUN check responses received on this pair (RTCIceCandidatePairStats.responsesReceived). */
  readonly responsesReceived: number;
}

/** An RTCPeerConnectionIceErrorEvent (a TURN or STUN error the browser saw). */
export interface IceErrorInfo {
  readonly pc: 'a' | 'b';
  readonly url: string;
  readonly errorCode: number;
  readonly errorText: string;
}

/** What the page reports for one exchange. */
export interface PageResult {
  /** Candidates each connection gathered (with iceTransportPolicy 'relay': relay only). */
  readonly gathered: { readonly a: readonly CandidateInfo[]; readonly b: readonly CandidateInfo[] };
  readonly iceErrors: readonly IceErrorInfo[];
  /** Final ICE connection state of each connection. */
  readonly iceState: { readonly a: string; readonly b: string };
  /** Small messages received, in order: by b from a, and by a from b. */
  readonly receivedByB: readonly string[];
  readonly receivedByA: readonly string[];
  /** The large messages (one each way) arrived intact. */
  readonly largeLength: number;
  readonly largeOkAtB: boolean;
  readonly largeOkAtA: boolean;
  readonly selected: { readonly a: SelectedPair | null; readonly b: SelectedPair | null };
  /** Milliseconds from the start of the exchange. */
  readonly timings: {
    readonly firstRelayCandidate: number | null;
    readonly iceConnected: number | null;
    readonly channelOpen: number | null;
    readonly messagesDone: number | null;
  };
  /** Median data-channel round trip (a -> b -> a) in milliseconds, over the ping-pong rounds. */
  readonly rttMedianMs: number | null;
  readonly rttRounds: number;
}

/** The server's TURN counters after the exchange (from `server.stats().turn`). */
export interface ServerCounters {
  readonly allocations: number;
  readonly allocationsCreated: number;
  readonly unauthorized: number;
  readonly forbidden: number;
  readonly relayedToPeer: number;
  readonly relayedToClient: number;
  readonly dropped: number;
}

/** The outcome of one run. */
export interface RunResult {
  readonly spec: RunSpec;
  readonly turnUrl: string;
  readonly username: string;
  readonly page: PageResult | null;
  readonly server: ServerCounters | null;
  readonly elapsedMs: number;
  readonly error?: string;
}

/** The runner's output line. */
export interface RunnerOutput {
  readonly browserVersion: string | null;
  readonly runs: readonly RunResult[];
  readonly totalMs: number;
  /** Set when the runner failed outside a run (launch failure, deadline). */
  readonly error?: string;
}
