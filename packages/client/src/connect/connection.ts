/**
 * The UDP socket driver (udx-native sockets, host-socket.ts) of the sans-I/O {@link IceAgent}, with a rendezvous service as the
 * signalling channel: {@link connectPeer} (the caller, controlling) and {@link acceptOffer}
 * (the callee, controlled) gather host, server-reflexive and relayed candidates, trickle them
 * (RFC 8838), run the agent's checks on real sockets and timers, and then carry application
 * datagrams and pings over the selected pair.
 */
import { randomBytes } from 'node:crypto';
import {
  Attr,
  type CandidateType,
  type IceCandidate,
  type OfferMessage,
  type SignallingIceServer,
  StunClass,
  type TransportAddress,
  canonicalIp,
  candidateFoundation,
  candidatePriority,
  decodeStunMessage,
  formatCandidate,
  ipFamily,
  looksLikeStun,
  parseCandidate,
} from '@nat/protocol';
import { encodeBindingRequest } from '../binding.js';
import { StunClientError, abortError } from '../errors.js';
import { IceAgent } from '../ice/agent.js';
import type { BaseId, CandidatePairInfo, IceAgentOptions, IceFailureReason, IcePath, IceRole } from '../ice/types.js';
import { punchInfoFromApp } from '../ice/birthday.js';
import { isRelayBase, relayBase, relayLocalPreference } from '../ice/family.js';
import type { RendezvousClient, RendezvousInbound } from '../rendezvous/client.js';
import { resolveServer, routeSourceAddress } from '../resolve.js';
import type { TurnClient, TurnClientInit } from '../turn/client.js';
import { connectDualStack } from '../turn/dual-stack.js';
import type { TurnPeerData } from '../turn/events.js';
import { FRAME_DATA, FRAME_PING, FRAME_PONG, decodeFrame, encodeDataFrame, encodePingFrame } from '@nat/protocol';
import { explicitHostAddresses, hostInterfaceAddresses, rankHostAddresses } from './hosts.js';
import type { UdxRoute } from '../link/link.js';
import type { UdxSocket } from '../link/native.js';
import { type DatagramSocket, UdxHostSocket } from './host-socket.js';
import { type IcePunchOptions, type PunchReport, SocketPunch } from './punch.js';
import { type TurnServerRef, iceServerRefs } from './servers.js';
import { type ConnectionDiagnosis, ConnectionObservations, IceConnectError, isLoopbackIp, serversOnLoopback } from './diagnosis.js';
import { WakeTimer } from '../driver/wake-timer.js';
import { eventIterator } from '../event-iterator.js';
import { IceRestart, type RestartContext, type RestartHost, watchHostAddresses } from './restart.js';

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
   * the connection fails with {@link StunClientError} `TIMEOUT` when it elapses.
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

type Listeners = { [E in keyof IceConnectionEvents]: Set<IceConnectionEvents[E]> };

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

const SRFLX_TRIES = 4;
const SRFLX_RTO = 200;

/** base64 of random bytes: ice-chars only (RFC 8445 section 5.3) when the length is a multiple of 3. */
const iceChars = (bytes: number): string => randomBytes(bytes).toString('base64');
const addressKey = (base: BaseId, a: TransportAddress): string => `${base}|${a.address}|${a.port}`;

function toEndpoint(c: IceCandidate): ConnectionEndpoint {
  const family = ipFamily(c.address) ?? 'IPv4';
  return { type: c.type, address: { family, address: c.address, port: c.port } };
}

function pathOfPair(p: CandidatePairInfo, punched: boolean): ConnectionPath {
  return { path: p.path, localCandidate: toEndpoint(p.mappedLocal), remoteCandidate: toEndpoint(p.remote), rttMs: p.rttMs, punched };
}

function candidate(
  type: 'host' | 'srflx' | 'relay',
  address: TransportAddress,
  base: TransportAddress,
  related: TransportAddress | undefined,
  localPreference: number,
  server?: string,
): IceCandidate {
  return {
    foundation: candidateFoundation({ type, baseAddress: base.address, transport: 'udp', ...(server === undefined ? {} : { serverAddress: server }) }),
    component: 1,
    transport: 'udp',
    priority: candidatePriority(type, localPreference, 1),
    address: address.address,
    port: address.port,
    type,
    ...(related === undefined ? {} : { relatedAddress: related.address, relatedPort: related.port }),
    extensions: [],
  };
}

interface Init {
  readonly rv: RendezvousClient;
  readonly peerId: string;
  readonly sessionId: string;
  readonly role: IceRole;
  readonly offer?: OfferMessage;
  readonly options: IceConnectionOptions;
}

/**
 * A connection to one peer over ICE. Made by {@link connectPeer} or {@link acceptOffer}; `ready`
 * settles when the agent has a selected pair (or fails). Application datagrams go over the
 * selected pair with a 1-byte type prefix (see `framing.ts`): {@link send} and `data` events,
 * {@link ping} for round-trip times (the peer answers pings by itself).
 */
export class IceConnection {
  /** The peer's id. */
  readonly peerId: string;
  /** The signalling session id. */
  readonly sessionId: string;
  /** Our initial role: the caller is controlling. */
  readonly role: IceRole;
  /** Resolves with the first selected pair; rejects with StunClientError (and the connection closes). */
  readonly ready: Promise<ConnectionPath>;
  /** `performance.now()` when the connection started. */
  readonly startedAt: number;
  /** `performance.now()` when a pair was first selected. */
  connectedAt: number | undefined;
  /** `performance.now()` when a direct pair was first selected. */
  directAt: number | undefined;

  #rv: RendezvousClient;
  readonly #agent: IceAgent;
  readonly #options: IceConnectionOptions;
  readonly #sockets = new Map<BaseId, { socket: DatagramSocket; address: TransportAddress }>();
  readonly #stunPending = new Map<string, (mapped: TransportAddress | undefined) => void>();
  readonly #valid = new Set<string>();
  readonly #permitted = new Set<string>();
  readonly #pings = new Map<number, { sentAt: number; done: (rtt: number | StunClientError) => void }>();
  readonly #listeners: Listeners = { data: new Set(), path: new Set(), close: new Set() };
  /**
   * The source (base, address as the socket reported it, port) of the last data frame accepted
   * on a validated pair: later data frames from it skip the address parsing and pair lookup
   * (pairs never lose their validation, so this needs no invalidation).
   */
  #lastDataFrom: { base: BaseId; ip: string; port: number } | undefined;
  #pathIsLoopback = false;
  readonly #gather = new AbortController();
  readonly #onMessage = (m: RendezvousInbound): void => this.#signal(m);
  readonly #onAbort = (): void => void this.#end('closed', abortError(this.#options.signal, 'ICE connect'));
  readonly #punch: SocketPunch | undefined;
  readonly #observed = new ConnectionObservations();
  #diagnosis: ConnectionDiagnosis | undefined;
  #gathering = true;
  /** The offer answered had a loopback candidate. */
  readonly #offerLoopback: boolean;
  #turn: TurnClient | undefined;
  readonly #timer = new WakeTimer(
    () => {
      if (this.#closed) return;
      this.#agent.handleTimeout(performance.now());
      this.#flush();
    },
    () => performance.now(),
  );
  #offerRef: string | undefined;
  #answered: boolean;
  readonly #restart: IceRestart;
  #includeLoopback = false;
  #stopWatch: (() => void) | undefined;
  #path: ConnectionPath | undefined;
  #nextSeq = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  #resolveReady!: (p: ConnectionPath) => void;
  #rejectReady!: (e: StunClientError) => void;
  #readySettled = false;

  /** @internal use {@link connectPeer} or {@link acceptOffer} */
  constructor(init: Init) {
    this.#rv = init.rv;
    this.peerId = init.peerId;
    this.sessionId = init.sessionId;
    this.role = init.role;
    this.#options = init.options;
    this.startedAt = performance.now();
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed through connectPeer or by the caller
    this.#agent = new IceAgent({
      role: init.role,
      tieBreaker: randomBytes(8).readBigUInt64BE(),
      ufrag: iceChars(6),
      pwd: iceChars(18),
      ...(init.options.agent === undefined ? {} : { options: init.options.agent }),
    });
    this.#answered = init.offer !== undefined;
    this.#offerLoopback = init.offer?.candidates.some((l) => / (127\.\d+\.\d+\.\d+|::1) \d+ typ host/.test(l)) ?? false;
    this.#punch = init.options.punch === undefined ? undefined : this.#makePunch(init.options.punch);
    this.#restart = new IceRestart(this.#restartContext(), init.offer?.ufrag);
    init.rv.on('message', this.#onMessage);
    if (init.offer !== undefined) {
      this.#agent.setRemoteCredentials(init.offer.ufrag, init.offer.pwd);
      this.#setPunchRemote(init.offer.app, init.offer.ufrag, init.offer.pwd);
      for (const line of init.offer.candidates) this.#addRemote(line);
    }
    const signal = init.options.signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (signal?.aborted) this.#onAbort();
  }

  /** The current path (the selected pair), once connected. */
  get path(): ConnectionPath | undefined {
    return this.#path;
  }

  /**
   * The selected pair as a udx route, when it is direct on one of the host sockets (all udx-native
   * sockets of the process's udx instance): the socket and the peer's address. A peer link runs
   * its streams there. Undefined while nothing is selected, and for relayed pairs and pairs on
   * birthday punching's extra sockets.
   */
  get udxRoute(): UdxRoute | undefined {
    const pair = this.#closed ? undefined : this.#agent.selectedPair();
    // a relayed pair (either end a TURN relay): the datagrams must go through TURN as frames
    if (pair === undefined || isRelayBase(pair.base) || pair.path !== 'direct') return undefined;
    const socket = this.#sockets.get(pair.base)?.socket;
    if (!(socket instanceof UdxHostSocket)) return undefined;
    return { socket: socket.udx, host: pair.remoteAddress.address, port: pair.remoteAddress.port };
  }

  /** The udx socket of the selected direct pair, else the first (best-ranked) host socket. */
  get udxHome(): UdxSocket | undefined {
    if (this.#closed) return undefined;
    const route = this.udxRoute;
    if (route !== undefined) return route.socket;
    // host sockets are bound in their ranking order, and are the only udx sockets of the map
    for (const { socket } of this.#sockets.values()) if (socket instanceof UdxHostSocket) return socket.udx;
    return undefined;
  }

  /**
   * True when every hop of the selected pair stays on this host: both candidates' addresses, and
   * the related address of a relayed one (the TURN server saw its client there), are loopback.
   * Such a path carries datagrams of up to 64 KiB (loopback MTU); a real network's does not.
   */
  get pathIsLoopback(): boolean {
    return this.#pathIsLoopback;
  }

  /** True once closed (locally, by the peer's `bye`, or by an ICE failure). */
  get closed(): boolean {
    return this.#closed;
  }

  /** The agent's state. */
  get state(): IceAgent['state'] {
    return this.#agent.state;
  }

  /**
   * True while a relayed connection may still be upgraded to a direct path: a direct pair is
   * still being checked (or succeeded and awaits nomination), or birthday punching runs.
   */
  get upgrading(): boolean {
    if (this.#closed) return false;
    const selected = this.#agent.selectedPair();
    if (selected === undefined || selected.path === 'direct') return false;
    const p = this.#punch?.report();
    if (p !== undefined && (p.role === 'hard' || p.role === 'easy') && p.outcome === undefined) return true;
    return this.#agent
      .pairs()
      .some(
        (q) => q.path === 'direct' && (q.state === 'frozen' || q.state === 'waiting' || q.state === 'in-progress' || (q.state === 'succeeded' && !q.nominated)),
      );
  }

  /** What birthday punching did, when {@link IceConnectionOptions.punch} asked for it. */
  get punch(): PunchReport | undefined {
    return this.#punch?.report();
  }

  /** What this connection observed (candidates, servers, relay, refused permissions): frozen when it closed. */
  get diagnosis(): ConnectionDiagnosis {
    if (this.#diagnosis !== undefined) return this.#diagnosis;
    const o = this.#options;
    const iceServers = o.iceServers ?? this.#rv.iceServers;
    return this.#observed.snapshot({
      iceServers,
      serversOnLoopback: serversOnLoopback(this.#rv.url, iceServers),
      hostCandidates: o.hostCandidates !== false,
      relayOption: o.relay !== false,
      gathering: this.#gathering,
      local: this.#agent.localCandidates().map((l) => l.candidate),
      remote: this.#agent.remoteCandidates(),
    });
  }

  #makePunch(options: IcePunchOptions): SocketPunch {
    return new SocketPunch(
      {
        agent: this.#agent,
        addBase: (base, socket, address) => void this.#sockets.set(base, { socket, address }),
        removeBase: (base) => void this.#sockets.delete(base),
        deliver: (base, socket, bytes, from) => this.#onDatagram(base, socket, bytes, from.address, from.port),
        flush: () => this.#flush(),
        socketOf: (base) => (base === undefined ? undefined : this.#sockets.get(base)?.socket),
      },
      options,
    );
  }

  #setPunchRemote(app: Readonly<Record<string, string>> | undefined, ufrag: string, pwd: string): void {
    const local = this.#agent.localCredentials;
    this.#punch?.setRemote(punchInfoFromApp(app), { localUfrag: local.ufrag, localPwd: local.pwd, remoteUfrag: ufrag, remotePwd: pwd });
  }

  /** Adds a listener. */
  on<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): this {
    (this.#listeners[event] as Set<IceConnectionEvents[E]>).add(listener);
    return this;
  }

  /** Removes a listener. */
  off<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): this {
    (this.#listeners[event] as Set<IceConnectionEvents[E]>).delete(listener);
    return this;
  }

  /**
   * Every event from now on (`path`, `data`, then a last `close`) as an async iterator; it ends
   * after `close`, when `signal` fires, or on `break`. Ended at once on a closed connection.
   */
  events(options: IceIteratorOptions = {}): AsyncIterableIterator<IceConnectionEvent> {
    return this.#iterate<IceConnectionEvent>(options, (push, end) => {
      const onPath = (path: ConnectionPath): void => push({ type: 'path', path });
      const onData = (data: Uint8Array): void => push({ type: 'data', data });
      const onClose = (reason: 'bye' | 'closed' | IceFailureReason): void => {
        push({ type: 'close', reason });
        end();
      };
      this.on('path', onPath).on('data', onData).on('close', onClose);
      return () => void this.off('path', onPath).off('data', onData).off('close', onClose);
    });
  }

  /**
   * The selected path and each change of it (relay first, then a direct upgrade), starting with
   * the current one when there is one; ends when the connection closes or `signal` fires.
   */
  paths(options: IceIteratorOptions = {}): AsyncIterableIterator<ConnectionPath> {
    const current = this.#path;
    return this.#iterate<ConnectionPath>(options, (push, end) => {
      if (current !== undefined && !this.#closed) push(current);
      this.on('path', push).on('close', end);
      return () => void this.off('path', push).off('close', end);
    });
  }

  /** Application datagrams from the peer as an async iterator; ends when the connection closes or `signal` fires. */
  data(options: IceIteratorOptions = {}): AsyncIterableIterator<Uint8Array> {
    return this.#iterate<Uint8Array>(options, (push, end) => {
      this.on('data', push).on('close', end);
      return () => void this.off('data', push).off('close', end);
    });
  }

  /** An iterator over this connection's events that ends with it, `signal` or `break`. */
  #iterate<T>(options: IceIteratorOptions, subscribe: (push: (item: T) => void, end: () => void) => () => void): AsyncIterableIterator<T> {
    return eventIterator<T>({
      ended: this.#closed,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.bufferSize === undefined ? {} : { bufferSize: options.bufferSize }),
      subscribe,
    });
  }

  /** Sends one application datagram on the selected pair; false when there is none (yet) or the connection is closed. */
  send(data: Uint8Array): boolean {
    return this.#sendFrame(encodeDataFrame(data));
  }

  /**
   * {@link send} without a copy: `frame[0]` is left free by the caller and overwritten with the
   * data frame type; the datagram sent is `frame` itself (its payload is `frame.subarray(1)`).
   */
  sendFrame(frame: Uint8Array): boolean {
    if (frame.length === 0) return false;
    frame[0] = FRAME_DATA;
    return this.#sendFrame(frame);
  }

  /**
   * Sends a ping on the selected pair and resolves with the round-trip time in ms when the
   * answer comes. Rejects with StunClientError `TIMEOUT` (default 2000 ms), `ABORTED` (signal or
   * close) or `SOCKET` when there is no selected pair.
   */
  ping(options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {}): Promise<number> {
    const seq = (this.#nextSeq = (this.#nextSeq + 1) >>> 0);
    return new Promise<number>((resolve, reject) => {
      const { signal } = options;
      const done = (r: number | StunClientError): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pings.delete(seq);
        if (typeof r === 'number') resolve(r);
        else reject(r);
      };
      const onAbort = (): void => done(abortError(signal, 'ping'));
      const timer = setTimeout(() => done(new StunClientError('TIMEOUT', `no pong within ${options.timeoutMs ?? 2000} ms`)), options.timeoutMs ?? 2000);
      this.#pings.set(seq, { sentAt: performance.now(), done });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) return onAbort();
      if (!this.#sendFrame(encodePingFrame(FRAME_PING, seq))) done(new StunClientError('SOCKET', 'no selected pair to ping on'));
    });
  }

  /** Sends `bye` to the peer, closes the sockets and the TURN allocation. Idempotent; never rejects. */
  close(reason?: string): Promise<void> {
    return this.#end('closed', new StunClientError('ABORTED', 'connection closed before it connected'), reason);
  }

  // -------------------------------------------------------------------------------------------
  // ICE restart (RFC 8445 section 9; restart.ts)

  /**
   * Restarts ICE on this session: new credentials; host sockets for the host's addresses now
   * (those on vanished addresses close, after a `path` event with `restarting` let a peer link
   * move its streams off them); host and server-reflexive candidates signalled to the peer,
   * which restarts too. The selected pair carries data until a new one is selected (a `path`
   * event). Runs by itself when the host's addresses change ({@link IceConnectionOptions.restartOnAddressChange}).
   */
  async restart(): Promise<void> {
    if (!this.#closed && this.#readySettled) await this.#restart.run();
  }

  #restartContext(): RestartContext {
    const o = this.#options;
    const hosts = (): (RestartHost & { socket: DatagramSocket })[] =>
      [...this.#sockets].flatMap(([base, v]) => (typeof base === 'string' && base.startsWith('host:') ? [{ base, ...v }] : []));
    return {
      agent: this.#agent,
      peerId: this.peerId,
      sessionId: this.sessionId,
      closed: () => this.#closed,
      addresses: () => (o.hostAddresses === undefined && o.hostCandidates !== false ? hostInterfaceAddresses(this.#includeLoopback) : undefined),
      hosts,
      bind: (ip) => this.#bind(ip),
      forget: (base) => void this.#sockets.delete(base),
      announce: () => {
        const path = this.#path;
        if (path !== undefined) for (const l of this.#listeners.path) l({ ...path, restarting: true });
      },
      renewSignalling: async () => {
        const rv = await o.renewRendezvous?.().catch(() => undefined);
        if (rv === undefined || rv === this.#rv || this.#closed) return;
        this.#rv.off('message', this.#onMessage);
        this.#rv = rv;
        rv.on('message', this.#onMessage);
      },
      addHost: (h, pref) => this.#agent.addLocalCandidate(candidate('host', h.address, h.address, undefined, pref), h.base),
      gatherReflexive: async () => {
        const signal = AbortSignal.any([this.#gather.signal, AbortSignal.timeout(o.gatherTimeoutMs ?? 5000)]);
        const stun = o.serverReflexive === false ? [] : iceServerRefs(o.iceServers ?? this.#rv.iceServers).stun;
        await Promise.all(hosts().flatMap((h, i) => stun.map((s) => this.#reflexive(h, s.server, 65535 - i, signal).catch(() => {}))));
      },
      usable: (base) => (isRelayBase(base) ? this.#turn !== undefined : this.#sockets.has(base)),
      addRemote: (line) => this.#addRemote(line),
      send: (m) => {
        try {
          this.#rv.send(m);
        } catch {
          // the rendezvous connection is gone: the restart's checks find no peer, and consent ends the path
        }
      },
      flush: () => this.#flush(),
    };
  }

  #watchHosts(): void {
    const o = this.#options;
    if (o.hostAddresses !== undefined || o.hostCandidates === false || o.restartOnAddressChange === false) return;
    this.#stopWatch = watchHostAddresses({ current: () => hostInterfaceAddresses(this.#includeLoopback), onChange: () => void this.restart() });
  }

  // -------------------------------------------------------------------------------------------
  // Start: host candidates, offer or answer, then trickled srflx and relayed candidates

  /** @internal */
  async start(): Promise<void> {
    try {
      const hosts = await this.#bindHosts();
      if (this.#closed) return;
      const lines: string[] = [];
      for (const [i, h] of hosts.entries()) {
        const c = candidate('host', h.address, h.address, undefined, 65535 - i);
        this.#agent.addLocalCandidate(c, h.base);
        lines.push(formatCandidate(c));
      }
      const description = {
        to: this.peerId,
        sessionId: this.sessionId,
        ufrag: this.#agent.localCredentials.ufrag,
        pwd: this.#agent.localCredentials.pwd,
        candidates: lines,
        ...(this.#punch === undefined ? {} : { app: this.#punch.app() }),
      };
      if (this.role === 'controlling') this.#offerRef = this.#rv.send({ type: 'offer', ...description });
      else this.#rv.send({ type: 'answer', ...description });
      const primary = hosts.find((h) => h.address.family === 'IPv4');
      if (primary !== undefined) this.#punch?.setPrimary(primary.base, primary.address);
      this.#flush();
      await this.#gatherServers(hosts);
      this.#gathering = false;
      if (this.#closed) return;
      if (this.#agent.localCandidates().length === 0) {
        // no socket at all: neither a signalled nor a peer-reflexive pair can ever form
        await this.#end('no-local-candidates', new StunClientError('TIMEOUT', 'ICE failed: no-local-candidates', { reason: 'no-local-candidates' }));
        return;
      }
      this.#agent.endOfLocalCandidates();
      this.#rv.send({ type: 'end-of-candidates', to: this.peerId, sessionId: this.sessionId });
      this.#flush();
    } catch (e) {
      if (this.#closed) return;
      const error = e instanceof StunClientError ? e : new StunClientError('SOCKET', `ICE connect: ${(e as Error).message}`, { cause: e });
      await this.#end('closed', error);
    }
  }

  async #bindHosts(): Promise<{ base: string; address: TransportAddress; socket: DatagramSocket }[]> {
    const o = this.#options;
    if (o.hostCandidates === false) return [];
    // Explicit addresses keep the caller's order; the interfaces' are ranked (rankHostAddresses).
    const loopback = o.includeLoopback ?? (this.#offerLoopback || serversOnLoopback(this.#rv.url, o.iceServers ?? this.#rv.iceServers));
    this.#includeLoopback = loopback;
    const addresses =
      o.hostAddresses !== undefined ? explicitHostAddresses(o.hostAddresses) : rankHostAddresses(hostInterfaceAddresses(loopback), await this.#routeSource());
    const bound = await Promise.all(addresses.map((ip) => this.#bind(ip).catch(() => undefined)));
    const out: { base: string; address: TransportAddress; socket: DatagramSocket }[] = [];
    for (const b of bound) if (b !== undefined) out.push(b);
    return out;
  }

  /**
   * The local IP the kernel sends from toward the first STUN (else TURN) server, without sending
   * anything ({@link routeSourceAddress}); undefined when there is none or it takes over 200 ms
   * (a DNS name that resolves slowly).
   */
  async #routeSource(): Promise<string | undefined> {
    const refs = iceServerRefs(this.#options.iceServers ?? this.#rv.iceServers);
    const server = refs.stun[0]?.server ?? refs.turn[0]?.server;
    if (server === undefined) return undefined;
    const lookup = resolveServer(server).then(({ address }) => routeSourceAddress(address));
    lookup.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, 200, undefined)));
    try {
      return await Promise.race([lookup, late]);
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A host socket: a udx-native one, so a peer link's streams can run on it (host-socket.ts). */
  async #bind(ip: string): Promise<{ base: string; address: TransportAddress; socket: DatagramSocket }> {
    if (this.#closed) throw new StunClientError('ABORTED', 'closed');
    const family = ipFamily(ip) ?? 'IPv4';
    const base = `host:${ip}`;
    const socket: UdxHostSocket = new UdxHostSocket(ip, (msg, fromIp, fromPort) => this.#onDatagram(base, socket, msg, fromIp, fromPort));
    const address: TransportAddress = { family, address: ip, port: socket.port };
    this.#sockets.set(base, { socket, address });
    return { base, address, socket };
  }

  async #gatherServers(hosts: readonly { base: string; address: TransportAddress; socket: DatagramSocket }[]): Promise<void> {
    const o = this.#options;
    const refs = iceServerRefs(o.iceServers ?? this.#rv.iceServers);
    const signal = AbortSignal.any([this.#gather.signal, AbortSignal.timeout(o.gatherTimeoutMs ?? 5000)]);
    const tasks: Promise<void>[] = [];
    if (o.serverReflexive !== false) {
      for (const [i, h] of hosts.entries()) {
        for (const s of refs.stun) tasks.push(this.#reflexive(h, s.server, 65535 - i, signal).catch(() => {}));
      }
    }
    const mapper = o.mappedAddress;
    if (mapper !== undefined) {
      for (const [i, h] of hosts.entries()) tasks.push(this.#mapped(h, mapper, 65535 - i, signal).catch(() => {}));
    }
    if (o.relay !== false && refs.turn.length > 0) tasks.push(this.#relay(refs.turn, signal).catch(() => {}));
    await Promise.all(tasks);
  }

  /** A server-reflexive candidate from {@link IceConnectionOptions.mappedAddress}, given up on with gathering. */
  async #mapped(
    host: { base: string; address: TransportAddress },
    mapper: (base: TransportAddress) => Promise<TransportAddress | undefined>,
    localPreference: number,
    signal: AbortSignal,
  ): Promise<void> {
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    const mapped = await Promise.race([mapper({ ...host.address }), aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
    if (mapped === undefined || signal.aborted || this.#closed) return;
    let ip: string;
    try {
      ip = canonicalIp(mapped.address);
    } catch {
      return;
    }
    if (ipFamily(ip) !== host.address.family || !Number.isInteger(mapped.port) || mapped.port < 1 || mapped.port > 65535) return;
    this.#addReflexive(host, { family: host.address.family, address: ip, port: mapped.port }, localPreference, undefined);
  }

  async #reflexive(
    host: { base: string; address: TransportAddress; socket: DatagramSocket },
    server: string,
    localPreference: number,
    signal: AbortSignal,
  ): Promise<void> {
    const { address: dest } = await resolveServer(server, { family: host.address.family });
    if (dest.family !== host.address.family || signal.aborted || this.#closed) return;
    const request = encodeBindingRequest();
    const key = Buffer.from(request.subarray(4, 20)).toString('hex');
    const mapped = await new Promise<TransportAddress | undefined>((resolve) => {
      let tries = 0;
      let timer: NodeJS.Timeout | undefined;
      const done = (m: TransportAddress | undefined): void => {
        clearTimeout(timer);
        this.#stunPending.delete(key);
        signal.removeEventListener('abort', onAbort);
        resolve(m);
      };
      const onAbort = (): void => done(undefined);
      const send = (): void => {
        if (tries >= SRFLX_TRIES) return done(undefined);
        host.socket.send(request, dest.port, dest.address);
        timer = setTimeout(send, SRFLX_RTO * 2 ** tries++);
      };
      this.#stunPending.set(key, done);
      signal.addEventListener('abort', onAbort, { once: true });
      send();
    });
    if (mapped === undefined || this.#closed) return;
    this.#addReflexive(host, { ...mapped, address: canonicalIp(mapped.address) }, localPreference, dest.address);
  }

  #addReflexive(host: { base: string; address: TransportAddress }, m: TransportAddress, localPreference: number, server: string | undefined): void {
    if (this.#closed) return;
    // RFC 8445 section 5.1.3: a server-reflexive candidate equal to its base is redundant (no NAT).
    if (m.address === host.address.address && m.port === host.address.port) return;
    if (this.#agent.localCandidates().some((l) => l.candidate.type === 'srflx' && l.candidate.address === m.address && l.candidate.port === m.port)) return;
    const c = candidate('srflx', m, host.address, host.address, localPreference, server);
    this.#agent.addLocalCandidate(c, host.base);
    this.#trickle(c);
  }

  /**
   * One relayed candidate, from the first TURN server that grants an allocation. UDP servers go
   * first; TCP and TLS ones (`?transport=tcp`, `turns:`) join {@link IceConnectionOptions.tcpRelayDelayMs}
   * later, or at once when every UDP attempt has failed or the NAT probe got no UDP answer (happy eyeballs, as RFC 8305 does for
   * address families): UDP to the server is the better relay when it works (no head-of-line
   * blocking, no TCP connection per peer), but a network that blocks UDP must not wait out
   * UDP's retransmissions (seconds) before it gets any candidate. The first allocation wins;
   * a later one is released.
   */
  async #relay(servers: readonly TurnServerRef[], signal: AbortSignal): Promise<void> {
    const udp = servers.filter((s) => s.transport === 'udp');
    const stream = servers.filter((s) => s.transport !== 'udp');
    const won = new AbortController();
    const attemptSignal = AbortSignal.any([signal, won.signal]);
    const attempt = async (list: readonly TurnServerRef[]): Promise<void> => {
      for (const s of list) {
        if (attemptSignal.aborted || this.#closed || this.#turn !== undefined) return;
        let turn: TurnClient;
        try {
          // IPv4 and, for peers on IPv6, an IPv6 relayed address (RFC 8656 ADDITIONAL-ADDRESS-FAMILY)
          turn = await connectDualStack({
            server: s.server,
            username: s.username,
            password: s.password,
            transport: s.transport,
            retransmission: { rto: 250, rc: 4, rm: 4, ti: 3000 },
            connectTimeoutMs: 3000,
            closeTimeoutMs: 1000,
            ...(s.transport === 'tls' && this.#options.turnTls !== undefined ? { tls: this.#options.turnTls } : {}),
            signal: attemptSignal,
          });
        } catch (e) {
          if (!attemptSignal.aborted) this.#observed.relayFailed(`${s.server}/${s.transport}`, e);
          continue;
        }
        if (this.#closed || this.#turn !== undefined) {
          await turn.close();
          return;
        }
        won.abort();
        this.#useRelay(turn);
        return;
      }
    };
    const udpDone = attempt(udp);
    const delay = this.#options.punch?.udpBlocked === true ? 0 : (this.#options.tcpRelayDelayMs ?? 250);
    const streamDone = (async () => {
      if (stream.length === 0) return;
      if (udp.length > 0 && delay > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, delay);
          function done(): void {
            clearTimeout(timer);
            attemptSignal.removeEventListener('abort', done);
            resolve();
          }
          attemptSignal.addEventListener('abort', done, { once: true });
          void udpDone.then(done);
        });
      }
      await attempt(stream);
    })();
    await Promise.all([udpDone, streamDone]);
  }

  #useRelay(turn: TurnClient): void {
    this.#turn = turn;
    this.#observed.relayObtained = true;
    turn.on('data', (m: TurnPeerData) => this.#onRelayData(m));
    for (const r of this.#agent.remoteCandidates()) this.#permit(r.address);
    // one relayed candidate per relayed address (IPv4, and IPv6 when the server granted it), each its own base
    for (const a of turn.relayedAddresses) {
      const relayed = { ...a, address: canonicalIp(a.address) };
      const c = candidate('relay', relayed, relayed, turn.mappedAddress ?? turn.localAddress, relayLocalPreference(a.family), turn.serverAddress.address);
      this.#agent.addLocalCandidate(c, relayBase(a.family));
      this.#trickle(c);
    }
    this.#flush();
  }

  #trickle(c: IceCandidate): void {
    if (this.#closed) return;
    try {
      this.#rv.send({ type: 'candidate', to: this.peerId, sessionId: this.sessionId, candidate: formatCandidate(c) });
    } catch {
      // the rendezvous connection is gone: the peer learns the address as peer-reflexive, or not at all
    }
    this.#flush();
  }

  /** Installs a TURN permission toward a remote candidate's IP, so its checks reach our relay (RFC 8445 section 5.1.1.2). */
  #permit(ip: string): void {
    const turn = this.#turn;
    if (turn === undefined || this.#permitted.has(ip) || !turn.relayedAddresses.some((a) => a.family === ipFamily(ip))) return;
    this.#permitted.add(ip);
    turn.createPermission(ip).catch((e: unknown) => this.#observed.permissionFailed(ip, e));
  }

  #addRemote(line: string): void {
    let c: IceCandidate;
    try {
      c = parseCandidate(line);
    } catch {
      return;
    }
    this.#agent.addRemoteCandidate(c);
    this.#punch?.addRemoteCandidate(c);
    if (ipFamily(c.address) !== undefined) this.#permit(c.address);
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  #signal(m: RendezvousInbound): void {
    if (this.#closed) return;
    if (m.type === 'error') {
      if (m.ref !== undefined && m.ref === this.#offerRef && !this.#readySettled) {
        void this.#end('closed', new StunClientError('ERROR_RESPONSE', `peer ${this.peerId}: ${m.code}: ${m.message}`, { reason: m.code }));
      }
      return;
    }
    if (m.from !== this.peerId || m.sessionId !== this.sessionId) return;
    switch (m.type) {
      case 'answer':
        if (this.role !== 'controlling' || this.#answered) {
          this.#restart.onDescription(m);
          break;
        }
        this.#answered = true;
        this.#restart.remoteUfrag = m.ufrag;
        this.#agent.setRemoteCredentials(m.ufrag, m.pwd);
        this.#setPunchRemote(m.app, m.ufrag, m.pwd);
        for (const line of m.candidates) this.#addRemote(line);
        break;
      case 'candidate':
        this.#addRemote(m.candidate);
        break;
      case 'end-of-candidates':
        this.#agent.endOfRemoteCandidates();
        break;
      case 'bye':
        this.#observed.peerBye = m.reason;
        this.#observed.peerEnded = !this.#readySettled;
        void this.#end(
          'bye',
          new StunClientError('ERROR_RESPONSE', `peer ${this.peerId} ended the session${m.reason ? `: ${m.reason}` : ''}`, { reason: 'bye' }),
        );
        return;
      default:
        return;
    }
    this.#flush();
  }

  #onDatagram(base: BaseId, socket: DatagramSocket, msg: Buffer, fromIp: string, fromPort: number): void {
    if (this.#closed) return;
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
    if (bytes[0] === FRAME_DATA && this.#fromLastData(base, fromIp, fromPort)) {
      this.#emitData(bytes.subarray(1));
      return;
    }
    if (this.#stunPending.size > 0 && looksLikeStun(bytes)) {
      try {
        const m = decodeStunMessage(bytes);
        const pending = this.#stunPending.get(m.transactionKey);
        if (pending !== undefined && m.class !== StunClass.Request && m.class !== StunClass.Indication) {
          pending(m.class === StunClass.SuccessResponse ? (m.get(Attr.XorMappedAddress) ?? m.get(Attr.MappedAddress)) : undefined);
          return;
        }
      } catch {
        // not ours: the agent decides
      }
    }
    let ip = fromIp;
    try {
      ip = canonicalIp(fromIp);
    } catch {
      return;
    }
    const from: TransportAddress = { family: ipFamily(ip) ?? 'IPv4', address: ip, port: fromPort };
    if (this.#punch?.intercept(base, bytes, from) === true) return; // a birthday probe
    if (!this.#agent.handlePacket(bytes, { base, from }, performance.now()) && this.#application(base, from, bytes, socket)) {
      this.#lastDataFrom = { base, ip: fromIp, port: fromPort };
    }
    this.#flush();
  }

  #onRelayData(m: TurnPeerData): void {
    if (this.#closed) return;
    const { data } = m;
    const base = relayBase(m.peer.family);
    if (data[0] === FRAME_DATA && this.#fromLastData(base, m.peer.address, m.peer.port)) {
      this.#emitData(data.subarray(1));
      return;
    }
    const from: TransportAddress = { ...m.peer, address: canonicalIp(m.peer.address) };
    if (!this.#agent.handlePacket(data, { base, from }, performance.now()) && this.#application(base, from, data, undefined)) {
      this.#lastDataFrom = { base, ip: m.peer.address, port: m.peer.port };
    }
    this.#flush();
  }

  #fromLastData(base: BaseId, ip: string, port: number): boolean {
    const last = this.#lastDataFrom;
    return last !== undefined && last.port === port && last.ip === ip && last.base === base;
  }

  #emitData(payload: Uint8Array): void {
    for (const l of this.#listeners.data) l(payload);
  }

  /** A non-STUN datagram: accepted only on a pair that passed its checks. True when it was a data frame. */
  #application(base: BaseId, from: TransportAddress, bytes: Uint8Array, socket: DatagramSocket | undefined): boolean {
    if (!this.#valid.has(addressKey(base, from))) return false;
    const frame = decodeFrame(bytes);
    if (frame === undefined) return false;
    if (frame.kind === 'data') {
      this.#emitData(frame.payload);
      return true;
    } else if (frame.kind === 'ping') {
      this.#transmit(base, from, encodePingFrame(FRAME_PONG, frame.seq), socket);
    } else {
      const p = this.#pings.get(frame.seq);
      p?.done(performance.now() - p.sentAt);
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  #sendFrame(frame: Uint8Array): boolean {
    if (this.#closed) return false;
    const pair = this.#agent.selectedPair();
    if (pair === undefined) return false;
    this.#transmit(pair.base, pair.remoteAddress, frame, undefined);
    return true;
  }

  #transmit(base: BaseId, to: TransportAddress, bytes: Uint8Array, socket: DatagramSocket | undefined): void {
    if (isRelayBase(base)) {
      this.#turn?.send(to, bytes);
      return;
    }
    const s = socket ?? this.#sockets.get(base)?.socket;
    // no callback: send errors reach the socket's 'error' listener, and a callback costs ~1.4 us a datagram
    s?.send(bytes, to.port, to.address);
  }

  /** Acts on what the agent wants after every input: transmits, events, and the next wake-up. */
  #flush(): void {
    if (this.#closed) return;
    const agent = this.#agent;
    for (let t = agent.pollTransmit(); t !== undefined; t = agent.pollTransmit()) this.#transmit(t.base, t.to, t.bytes, undefined);
    for (let e = agent.pollEvent(); e !== undefined; e = agent.pollEvent()) {
      if (e.type === 'pair' && e.pair.state === 'succeeded') this.#valid.add(addressKey(e.pair.base, e.pair.remoteAddress));
      else if (e.type === 'remote-candidate') this.#permit(e.candidate.address);
      else if (e.type === 'selected-pair') this.#selected(e.pair);
      // consent went unanswered for a while (a NAT that dropped or changed our mapping): restart
      else if (e.type === 'state' && e.state === 'disconnected' && this.#options.restartOnAddressChange !== false && this.#restart.quiet()) void this.restart();
      else if (e.type === 'state' && e.state === 'failed') {
        const reason = e.reason ?? 'timeout';
        void this.#end(reason, new StunClientError('TIMEOUT', `ICE failed: ${reason}`, { reason }));
        return;
      }
    }
    this.#punch?.onFlush();
    this.#timer.set(agent.pollTimeout());
  }

  #selected(pair: CandidatePairInfo): void {
    this.#restart.onSelected();
    this.#valid.add(addressKey(pair.base, pair.remoteAddress));
    const now = performance.now();
    this.connectedAt ??= now;
    if (pair.path === 'direct') this.directAt ??= now;
    const path = pathOfPair(pair, this.#punch?.isPunched(pair.base, pair.remoteAddress) ?? false);
    this.#path = path;
    this.#pathIsLoopback = [pair.mappedLocal, pair.remote].every(
      (c) => isLoopbackIp(c.address) && (c.type !== 'relay' || (c.relatedAddress !== undefined && isLoopbackIp(c.relatedAddress))),
    );
    if (!this.#readySettled) {
      this.#readySettled = true;
      this.#resolveReady(path);
      this.#watchHosts();
    }
    for (const l of this.#listeners.path) l(path);
  }

  #end(why: 'bye' | 'closed' | IceFailureReason, error: StunClientError, byeReason?: string): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#diagnosis = this.diagnosis; // before the agent and sockets are gone
    this.#closed = true;
    // an ICE failure tells the peer why, so its own error can say so
    const reason = byeReason ?? (why === 'bye' || why === 'closed' ? undefined : `ICE failed: ${why}`);
    this.#closing = (async () => {
      if (why !== 'bye') {
        try {
          this.#rv.send({ type: 'bye', to: this.peerId, sessionId: this.sessionId, ...(reason === undefined ? {} : { reason: reason.slice(0, 256) }) });
        } catch {
          // the rendezvous connection is gone
        }
      }
      this.#rv.off('message', this.#onMessage);
      this.#options.signal?.removeEventListener('abort', this.#onAbort);
      this.#timer.cancel();
      this.#stopWatch?.();
      this.#restart.close();
      this.#gather.abort();
      this.#agent.close();
      for (const p of [...this.#pings.values()]) p.done(new StunClientError('ABORTED', 'connection closed'));
      this.#punch?.close();
      for (const [base, { socket }] of this.#sockets) if (!(typeof base === 'string' && base.startsWith('bday-'))) socket.close();
      this.#sockets.clear();
      if (!this.#readySettled) {
        this.#readySettled = true;
        this.#rejectReady(error);
      }
      for (const l of this.#listeners.close) l(why);
      const turn = this.#turn;
      this.#turn = undefined;
      if (turn !== undefined) await turn.close().catch(() => {});
    })();
    return this.#closing;
  }
}

/**
 * Connects to peer `peerId` through the rendezvous client `rv`, as the controlling agent:
 * sends an offer with the host candidates, trickles server-reflexive and relayed ones, and
 * resolves once a pair is selected.
 *
 * Rejects with StunClientError: `BAD_ADDRESS` with `reason` `self` at once when `peerId` is
 * `rv.id` (this peer's own); `ERROR_RESPONSE` with `reason` `peer-offline` or `unknown-peer`
 * (the rendezvous said so) or `bye` (the peer ended the session), `TIMEOUT` with `reason` the
 * ICE failure reason (`no-remote-candidates` when the peer never answered, `timeout`,
 * `all-pairs-failed`, `no-local-candidates` at once after gathering found none) after at most
 * the agent's `failureTimeout`, `ABORTED`, `SOCKET`. Once the connection was made, these are
 * {@link IceConnectError}s carrying what it observed (`diagnosis`).
 */
export async function connectPeer(rv: RendezvousClient, peerId: string, options: IceConnectionOptions = {}): Promise<IceConnection> {
  if (peerId === rv.id)
    throw new StunClientError('BAD_ADDRESS', `peer ${peerId} is this peer's own id: a peer cannot connect to itself (the other end needs another identity)`, {
      reason: 'self',
    });
  const conn = new IceConnection({ rv, peerId, sessionId: randomBytes(16).toString('base64url'), role: 'controlling', options });
  void conn.start();
  try {
    await conn.ready;
  } catch (e) {
    if (!(e instanceof StunClientError) || e.code === 'ABORTED') throw e;
    throw new IceConnectError(e.code, e.message, conn.diagnosis, { cause: e, ...(e.reason === undefined ? {} : { reason: e.reason }) });
  }
  return conn;
}
