/**
 * The public shapes of an {@link IceConnection}: its options (every one has a default), the path
 * it reports, its events and its iterators' options. connection.ts re-exports them.
 */
import type { CandidateType, SignallingIceServer, TransportAddress } from '@nat/protocol';
import type { IceAgentOptions, IceFailureReason, IcePath } from '../ice/types.js';
import type { RendezvousClient } from '../rendezvous/client.js';
import type { TurnClientInit } from '../turn/client.js';
import type { IcePunchOptions } from './punch.js';

/** Options of {@link connectPeer} and {@link acceptOffer}; every one has a default. */
export interface IceConnectionOptions {
  /**
   * Gather host candidates on exactly these IP addresses (one UDP socket each), loopback
   * included. Default: every interface address from node:os, see {@link includeLoopback}.
   */
  readonly hostAddresses?: readonly string[];
  /**
   * With the default host addresses, also use loopback ones. Default: true when the rendezvous
   * service or a STUN/TURN server is on a loopback address, or the offer answered has loopback
   * candidates (the peers then run on one machine, which may have no other address), else false.
   */
  readonly includeLoopback?: boolean;
  /** Gather host (and so server-reflexive) candidates at all. Default true; false leaves only relayed ones. */
  readonly hostCandidates?: boolean;
  /**
   * Once connected, restart ICE on the same session ({@link IceConnection.restart}) when the
   * host's addresses change (not with {@link hostAddresses}), and when consent goes unanswered
   * long enough for the agent to call the path disconnected (a NAT rebinding). Default true.
   */
  readonly restartOnAddressChange?: boolean;
  /**
   * An ICE restart signals through the client this resolves with (a fresh connection to the
   * rendezvous: the old one's TCP connection may have died with the address it was on); the
   * connection then listens there. Default: the one it started with.
   */
  readonly renewRendezvous?: () => Promise<RendezvousClient>;
  /** Ask the STUN servers for server-reflexive candidates. Default true. */
  readonly serverReflexive?: boolean;
  /**
   * Another source of server-reflexive candidates, such as a port mapping the router made on
   * request (UPnP IGD, NAT-PMP, PCP): called once per host candidate with its base (the bound
   * address) while gathering; the address it resolves with (if any, and unless it is the base
   * itself) becomes a server-reflexive candidate of that base, trickled like a STUN one.
   * Rejections are ignored; it is given up on with the rest of gathering. Default: none.
   */
  readonly mappedAddress?: (hostCandidateBase: TransportAddress) => Promise<TransportAddress | undefined>;
  /**
   * Allocate a relayed candidate on the first TURN server that grants one: over UDP, or over
   * TCP/TLS (`turn:...?transport=tcp`, `turns:`) when UDP to the server fails. Default true.
   */
  readonly relay?: boolean;
  /**
   * How long UDP TURN servers get before TCP/TLS ones are tried too, ms; 0 tries all at once.
   * TCP/TLS start at once anyway when every UDP attempt failed, or when the NAT probe found UDP
   * blocked ({@link IcePunchOptions.udpBlocked}). Default 250.
   */
  readonly tcpRelayDelayMs?: number;
  /** TLS options for `turns:` servers (a private CA, say). Default: the system's trust store, checking the server name. */
  readonly turnTls?: TurnClientInit['tls'];
  /** STUN/TURN servers. Default: the rendezvous client's `iceServers`. */
  readonly iceServers?: readonly SignallingIceServer[];
  /** Gathering (server-reflexive and relayed) gives up after this long, ms. Default 5000. */
  readonly gatherTimeoutMs?: number;
  /**
   * Options of the agent. Its `failureTimeout` (default 10,000 ms) bounds the time to connect:
   * the connection fails with {@link IceError} `timeout` when it elapses.
   */
  readonly agent?: IceAgentOptions;
  /** Aborts connecting (rejects with `ABORTED`), and closes the connection once connected. */
  readonly signal?: AbortSignal;
  /**
   * Birthday punching for a peer behind an endpoint-dependent mapping (see `ice/birthday.ts`;
   * `nat ping` and `nat listen` pass `learnPunchOptions` (nat-info.ts)' result unless `--no-punch`): this
   * side's NAT mapping goes in the offer or answer `app` payload (`nat.mapping`, `nat.ports`);
   * when the peer sent its own, one side is hard and the other easy, and the plain checks toward
   * the peer's public address found no direct path within `plainCheckWaitMs`, the hard side
   * opens `options.sockets` extra sockets (at most MAX_PUNCH_SOCKETS, 1024) on the ICE socket's
   * host address and both probe. Absent: no punching, no `app` keys. Punching stops once a
   * direct pair is selected; the relay still comes first.
   */
  readonly punch?: IcePunchOptions;
}

/** One end of the selected pair, as the CLI prints it. */
export interface ConnectionEndpoint {
  readonly type: CandidateType;
  readonly address: TransportAddress;
}

/** The path the connection uses: the selected pair. */
export interface ConnectionPath {
  /** `direct`, or `relay` when either end is a TURN relayed candidate. */
  readonly path: IcePath;
  /** The local end as the peer sees it (a srflx or prflx candidate behind a NAT). */
  readonly localCandidate: ConnectionEndpoint;
  readonly remoteCandidate: ConnectionEndpoint;
  /** RTT of the last connectivity check on the pair, ms. */
  readonly rttMs: number | undefined;
  /** True when the pair is a path birthday punching opened (see {@link IceConnectionOptions.punch}). */
  readonly punched: boolean;
  /** True on the event that starts an ICE restart ({@link IceConnection.restart}): this pair is being replaced. */
  readonly restarting?: boolean;
}

/** Events of {@link IceConnection}. */
export interface IceConnectionEvents {
  /** Application data from the peer (sent with {@link IceConnection.send}). */
  data: (data: Uint8Array) => void;
  /** The selected pair changed (the first one too: relay first, then a direct upgrade). */
  path: (path: ConnectionPath) => void;
  /** The connection ended: `bye` (the peer said so), `closed` (locally), or an ICE failure reason. */
  close: (reason: 'bye' | 'closed' | IceFailureReason) => void;
}

/** One event of {@link IceConnection.events}, in the order they happened. */
export type IceConnectionEvent =
  | { readonly type: 'path'; readonly path: ConnectionPath }
  | { readonly type: 'data'; readonly data: Uint8Array }
  | { readonly type: 'close'; readonly reason: 'bye' | 'closed' | IceFailureReason };

/** Options of the iterators of {@link IceConnection}. */
export interface IceIteratorOptions {
  /** Ends the iteration (not the connection). */
  readonly signal?: AbortSignal;
  /** Items held for a slow reader; beyond this the newest are dropped. Default 1024. */
  readonly bufferSize?: number;
}
