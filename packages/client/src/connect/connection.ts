/**
 * An ICE connection to one peer: the UDP socket driver (udx-native sockets, host-socket.ts) of the
 * sans-I/O {@link IceAgent}, with a rendezvous service as the signalling channel. {@link connectPeer}
 * (the caller, controlling) and {@link acceptOffer} (the callee, controlled) gather host,
 * server-reflexive and relayed candidates, trickle them (RFC 8838), run the agent's checks on real
 * sockets and timers, and then carry application datagrams and pings over the selected pair.
 *
 * {@link IceConnection} is a facade over its steps, each a module of its own:
 * - gathering: host sockets (gather-host.ts), server-reflexive candidates through the transaction
 *   layer and port mappings (gather-reflexive.ts), the TURN relay (gather-relay.ts);
 * - signalling through the rendezvous (signalling.ts);
 * - the agent pump: datagrams and timers in, transmits and events out (pump.ts);
 * - the application channel: framing, pings, listeners and iterators (app-channel.ts);
 * - birthday punching's glue (punch-glue.ts), and ICE restart (restart.ts).
 */
import { randomBytes } from 'node:crypto';
import { type AnswerMessage, type IceCandidate, type OfferMessage, type SignallingIceServer } from '@nat/protocol';
import { IceError, RendezvousError, StunClientError, abortError } from '../errors.js';
import { IceAgent } from '../ice/agent.js';
import type { CandidatePairInfo, IceFailureReason, IceRole } from '../ice/types.js';
import { isRelayBase } from '../ice/family.js';
import type { RendezvousClient } from '../rendezvous/client.js';
import type { UdxRoute } from '../link/link.js';
import type { UdxSocket } from '../link/native.js';
import { AppChannel } from './app-channel.js';
import { candidate, iceChars, pathOfPair } from './candidates.js';
import { type ConnectionDiagnosis, ConnectionObservations, isLoopbackIp, serversOnLoopback } from './diagnosis.js';
import { Gathering } from './gather.js';
import type { BoundHost } from './gather-host.js';
import { UdxHostSocket } from './host-socket.js';
import { hostInterfaceAddresses } from './hosts.js';
import type { ConnectionPath, IceConnectionEvent, IceConnectionEvents, IceConnectionOptions, IceIteratorOptions } from './options.js';
import type { PunchReport, SocketPunch } from './punch.js';
import { punchOnPump, setPunchRemote } from './punch-glue.js';
import { AgentPump } from './pump.js';
import { IceRestart, type RestartContext, renewRelay, watchHostAddresses } from './restart.js';
import { Signalling } from './signalling.js';

export type { ConnectionEndpoint, ConnectionPath, IceConnectionEvent, IceConnectionEvents, IceConnectionOptions, IceIteratorOptions } from './options.js';

type CloseReason = 'bye' | 'closed' | IceFailureReason;

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

  readonly #options: IceConnectionOptions;
  readonly #pump: AgentPump;
  readonly #channel: AppChannel;
  readonly #signalling: Signalling;
  readonly #gatherer: Gathering;
  readonly #punch: SocketPunch | undefined;
  readonly #restart: IceRestart;
  readonly #observed = new ConnectionObservations();
  readonly #onAbort = (): void => void this.#end('closed', abortError(this.#options.signal, 'ICE connect'));
  #diagnosis: ConnectionDiagnosis | undefined;
  #gathering = true;
  /** The offer answered had a loopback candidate. */
  readonly #offerLoopback: boolean;
  #answered: boolean;
  #stopWatch: (() => void) | undefined;
  #path: ConnectionPath | undefined;
  #pathIsLoopback = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #resolveReady!: (p: ConnectionPath) => void;
  #rejectReady!: (e: StunClientError | IceError | RendezvousError) => void;
  #readySettled = false;

  /** @internal use {@link connectPeer} or {@link acceptOffer} */
  constructor(init: Init) {
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
    const agent = new IceAgent({
      role: init.role,
      tieBreaker: randomBytes(8).readBigUInt64BE(),
      ufrag: iceChars(6),
      pwd: iceChars(18),
      ...(init.options.agent === undefined ? {} : { options: init.options.agent }),
    });
    const closed = (): boolean => this.#closed;
    this.#channel = new AppChannel({ sendSelected: (frame) => this.#pump.sendSelected(frame), closed, path: () => this.#path });
    this.#pump = new AgentPump(agent, {
      closed,
      gatheringResponse: (socket, bytes, from) => this.#gatherer.reflexive.receive(socket, bytes, from),
      data: (payload) => this.#channel.emitData(payload),
      frame: (bytes, reply) => this.#channel.receive(bytes, reply),
      selected: (pair) => this.#selected(pair),
      disconnected: () => {
        // consent went unanswered for a while (a NAT that dropped or changed our mapping): restart
        if (this.#options.restartOnAddressChange !== false && this.#restart.quiet()) void this.restart();
      },
      failed: (reason) => void this.#end(reason, new IceError(reason, `ICE failed: ${reason}`)),
      permissionFailed: (ip, e) => this.#observed.permissionFailed(ip, e),
    });
    this.#gatherer = new Gathering({
      options: init.options,
      pump: this.#pump,
      observed: this.#observed,
      closed,
      iceServers: () => this.#iceServers(),
      trickle: (c) => this.#trickle(c),
    });
    this.#answered = init.offer !== undefined;
    this.#offerLoopback = init.offer?.candidates.some((l) => / (127\.\d+\.\d+\.\d+|::1) \d+ typ host/.test(l)) ?? false;
    this.#punch = init.options.punch === undefined ? undefined : punchOnPump(this.#pump, init.options.punch);
    this.#pump.punch = this.#punch;
    this.#restart = new IceRestart(this.#restartContext(), init.offer?.ufrag);
    this.#signalling = this.#listen(init.rv);
    if (init.offer !== undefined) {
      agent.setRemoteCredentials(init.offer.ufrag, init.offer.pwd);
      setPunchRemote(this.#punch, this.#pump, init.offer.app, init.offer.ufrag, init.offer.pwd);
      for (const line of init.offer.candidates) this.#pump.addRemote(line);
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
    const pair = this.#closed ? undefined : this.#pump.agent.selectedPair();
    // a relayed pair (either end a TURN relay): the datagrams must go through TURN as frames
    if (pair === undefined || isRelayBase(pair.base) || pair.path !== 'direct') return undefined;
    const socket = this.#pump.sockets.get(pair.base)?.socket;
    if (!(socket instanceof UdxHostSocket)) return undefined;
    return { socket: socket.udx, host: pair.remoteAddress.address, port: pair.remoteAddress.port };
  }

  /** The udx socket of the selected direct pair, else the first (best-ranked) host socket. */
  get udxHome(): UdxSocket | undefined {
    if (this.#closed) return undefined;
    const route = this.udxRoute;
    if (route !== undefined) return route.socket;
    // host sockets are bound in their ranking order, and are the only udx sockets of the map
    for (const { socket } of this.#pump.sockets.values()) if (socket instanceof UdxHostSocket) return socket.udx;
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
    return this.#pump.agent.state;
  }

  /**
   * True while a relayed connection may still be upgraded to a direct path: a direct pair is
   * still being checked (or succeeded and awaits nomination), or birthday punching runs.
   */
  get upgrading(): boolean {
    if (this.#closed) return false;
    const agent = this.#pump.agent;
    const selected = agent.selectedPair();
    if (selected === undefined || selected.path === 'direct') return false;
    const p = this.#punch?.report();
    if (p !== undefined && (p.role === 'hard' || p.role === 'easy') && p.outcome === undefined) return true;
    return agent
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
    const iceServers = this.#iceServers();
    return this.#observed.snapshot({
      iceServers,
      serversOnLoopback: serversOnLoopback(this.#signalling.rv.url, iceServers),
      hostCandidates: o.hostCandidates !== false,
      relayOption: o.relay !== false,
      gathering: this.#gathering,
      local: this.#pump.agent.localCandidates().map((l) => l.candidate),
      remote: this.#pump.agent.remoteCandidates(),
    });
  }

  /** Adds a listener. */
  on<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): this {
    this.#channel.on(event, listener);
    return this;
  }

  /** Removes a listener. */
  off<E extends keyof IceConnectionEvents>(event: E, listener: IceConnectionEvents[E]): this {
    this.#channel.off(event, listener);
    return this;
  }

  /**
   * Every event from now on (`path`, `data`, then a last `close`) as an async iterator; it ends
   * after `close`, when `signal` fires, or on `break`. Ended at once on a closed connection.
   */
  events(options: IceIteratorOptions = {}): AsyncIterableIterator<IceConnectionEvent> {
    return this.#channel.events(options);
  }

  /**
   * The selected path and each change of it (relay first, then a direct upgrade), starting with
   * the current one when there is one; ends when the connection closes or `signal` fires.
   */
  paths(options: IceIteratorOptions = {}): AsyncIterableIterator<ConnectionPath> {
    return this.#channel.paths(options);
  }

  /** Application datagrams from the peer as an async iterator; ends when the connection closes or `signal` fires. */
  data(options: IceIteratorOptions = {}): AsyncIterableIterator<Uint8Array> {
    return this.#channel.data(options);
  }

  /** Sends one application datagram on the selected pair; false when there is none (yet) or the connection is closed. */
  send(data: Uint8Array): boolean {
    return this.#channel.send(data);
  }

  /**
   * {@link send} without a copy: `frame[0]` is left free by the caller and overwritten with the
   * data frame type; the datagram sent is `frame` itself (its payload is `frame.subarray(1)`).
   */
  sendFrame(frame: Uint8Array): boolean {
    return this.#channel.sendFrame(frame);
  }

  /**
   * Sends a ping on the selected pair and resolves with the round-trip time in ms when the
   * answer comes. Rejects with StunClientError `TIMEOUT` (default 2000 ms), `ABORTED` (signal or
   * close) or `SOCKET` when there is no selected pair.
   */
  ping(options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {}): Promise<number> {
    return this.#channel.ping(options);
  }

  /** Sends `bye` to the peer, closes the sockets and the TURN allocation. Idempotent; never rejects. */
  close(reason?: string): Promise<void> {
    return this.#end('closed', new StunClientError('ABORTED', 'connection closed before it connected'), reason);
  }

  /**
   * Restarts ICE on this session (RFC 8445 section 9; restart.ts): new credentials; host sockets
   * for the host's addresses now (those on vanished addresses close, after a `path` event with
   * `restarting` let a peer link move its streams off them); host and server-reflexive candidates
   * signalled to the peer, which restarts too. The selected pair carries data until a new one is
   * selected (a `path` event). Runs by itself when the host's addresses change
   * ({@link IceConnectionOptions.restartOnAddressChange}).
   */
  async restart(): Promise<void> {
    if (!this.#closed && this.#readySettled) await this.#restart.run();
  }

  #iceServers(): readonly SignallingIceServer[] {
    return this.#options.iceServers ?? this.#signalling.rv.iceServers;
  }

  #restartContext(): RestartContext {
    const o = this.#options;
    const pump = this.#pump;
    const hosts = (): BoundHost[] => [...pump.sockets].flatMap(([base, v]) => (typeof base === 'string' && base.startsWith('host:') ? [{ base, ...v }] : []));
    return {
      agent: pump.agent,
      peerId: this.peerId,
      sessionId: this.sessionId,
      closed: () => this.#closed,
      addresses: () => (o.hostAddresses === undefined && o.hostCandidates !== false ? hostInterfaceAddresses(this.#gatherer.includeLoopback) : undefined),
      hosts,
      bind: async (ip) => this.#gatherer.bind(ip),
      forget: (base) => void pump.sockets.delete(base),
      announce: () => {
        if (this.#path !== undefined) this.#channel.emitPath({ ...this.#path, restarting: true });
      },
      renewSignalling: async () => {
        const rv = await o.renewRendezvous?.().catch(() => undefined);
        if (rv !== undefined && !this.#closed) this.#signalling.renew(rv);
      },
      addHost: (h, pref) => pump.agent.addLocalCandidate(candidate('host', h.address, h.address, undefined, pref), h.base),
      gatherReflexive: () => this.#gatherer.reflexiveAgain(hosts()),
      renewRelay: () => renewRelay({ current: () => pump.turn, allocate: () => this.#gatherer.relayAgain(), use: (t) => this.#gatherer.useRelay(t) }),
      signallingLost: () => this.#signalling.lost,
      usable: (base) => (isRelayBase(base) ? pump.turn !== undefined : pump.sockets.has(base)),
      addRemote: (line) => pump.addRemote(line),
      send: (m) => this.#signalling.send(m),
      flush: () => pump.flush(),
    };
  }

  #watchHosts(): void {
    const o = this.#options;
    if (o.hostAddresses !== undefined || o.hostCandidates === false || o.restartOnAddressChange === false) return;
    this.#stopWatch = watchHostAddresses({ current: () => hostInterfaceAddresses(this.#gatherer.includeLoopback), onChange: () => void this.restart() });
  }

  // -------------------------------------------------------------------------------------------
  // Start: host candidates, offer or answer, then trickled srflx and relayed candidates

  /** @internal */
  async start(): Promise<void> {
    try {
      const loopback = this.#options.includeLoopback ?? (this.#offerLoopback || serversOnLoopback(this.#signalling.rv.url, this.#iceServers()));
      const { hosts, lines } = await this.#gatherer.hosts(loopback);
      if (this.#closed) return;
      const agent = this.#pump.agent;
      const { ufrag, pwd } = agent.localCredentials;
      const app = this.#punch?.app();
      this.#signalling.describe(this.role === 'controlling' ? 'offer' : 'answer', { ufrag, pwd, candidates: lines, ...(app === undefined ? {} : { app }) });
      const primary = hosts.find((h) => h.address.family === 'IPv4');
      if (primary !== undefined) this.#punch?.setPrimary(primary.base, primary.address);
      this.#pump.flush();
      await this.#gatherer.servers(hosts);
      this.#gathering = false;
      if (this.#closed) return;
      if (agent.localCandidates().length === 0) {
        // no socket at all: neither a signalled nor a peer-reflexive pair can ever form
        await this.#end('no-local-candidates', new IceError('no-local-candidates', 'ICE failed: no-local-candidates'));
        return;
      }
      agent.endOfLocalCandidates();
      this.#signalling.endOfCandidates();
      this.#pump.flush();
    } catch (e) {
      if (this.#closed) return;
      const error =
        e instanceof StunClientError || e instanceof RendezvousError || e instanceof IceError
          ? e
          : new StunClientError('SOCKET', `ICE connect: ${(e as Error).message}`, { cause: e });
      await this.#end('closed', error);
    }
  }

  #trickle(c: IceCandidate): void {
    if (this.#closed) return;
    this.#signalling.trickle(c);
    this.#pump.flush();
  }

  // -------------------------------------------------------------------------------------------
  // Signalling, selection, the end

  #listen(rv: RendezvousClient): Signalling {
    const open = (): boolean => !this.#closed;
    return new Signalling(rv, this.peerId, this.sessionId, {
      offerRefused: (code, message) => {
        if (open() && !this.#readySettled) void this.#end('closed', new RendezvousError(code, `peer ${this.peerId}: ${code}: ${message}`));
      },
      answer: (m) => open() && this.#onAnswer(m),
      candidate: (line) => {
        if (!open()) return;
        this.#pump.addRemote(line);
        this.#pump.flush();
      },
      endOfCandidates: () => {
        if (!open()) return;
        this.#pump.agent.endOfRemoteCandidates();
        this.#pump.flush();
      },
      bye: (reason) => {
        if (!open()) return;
        this.#observed.peerBye = reason;
        this.#observed.peerEnded = !this.#readySettled;
        void this.#end('bye', new RendezvousError('bye', `peer ${this.peerId} ended the session${reason ? `: ${reason}` : ''}`));
      },
    });
  }

  /** The peer's first answer (the caller's side), else an ICE restart's description. */
  #onAnswer(m: AnswerMessage): void {
    if (this.role !== 'controlling' || this.#answered) {
      this.#restart.onDescription(m);
    } else {
      this.#answered = true;
      this.#restart.remoteUfrag = m.ufrag;
      this.#pump.agent.setRemoteCredentials(m.ufrag, m.pwd);
      setPunchRemote(this.#punch, this.#pump, m.app, m.ufrag, m.pwd);
      for (const line of m.candidates) this.#pump.addRemote(line);
    }
    this.#pump.flush();
  }

  #selected(pair: CandidatePairInfo): void {
    this.#restart.onSelected();
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
    this.#channel.emitPath(path);
  }

  #end(why: CloseReason, error: StunClientError | IceError | RendezvousError, byeReason?: string): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#diagnosis = this.diagnosis; // before the agent and sockets are gone
    this.#closed = true;
    // an ICE failure tells the peer why, so its own error can say so
    const reason = byeReason ?? (why === 'bye' || why === 'closed' ? undefined : `ICE failed: ${why}`);
    this.#closing = (async () => {
      if (why !== 'bye') this.#signalling.bye(reason);
      this.#signalling.detach();
      this.#options.signal?.removeEventListener('abort', this.#onAbort);
      this.#stopWatch?.();
      this.#restart.close();
      this.#gatherer.close();
      const turn = this.#pump.close();
      if (!this.#readySettled) {
        this.#readySettled = true;
        this.#rejectReady(error);
      }
      this.#channel.emitClose(why);
      if (turn !== undefined) await turn.close().catch(() => {});
    })();
    return this.#closing;
  }
}
