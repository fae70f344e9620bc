/**
 * The TURN client core (RFC 8656), sans-I/O: the allocation's life (allocate with the
 * long-term credentials, refresh, deallocate) and the operations on it. Its parts, each a
 * module: `exchange.ts` (requests with the long-term credentials, their retries and outcomes),
 * `requests.ts` (what a request carries, how a response is judged), `peer-outcomes.ts`
 * (what permission and channel answers do, which refreshes are due), `data-path.ts` (data out
 * and in), `peers.ts` (the permission and channel table), `credentials.ts`.
 */
import { Attr, DecodeError, StunClass, StunMethod, type StunMessage, type TransportAddress, decodeStunMessage } from '@nat/protocol';
import { StunClientError } from '../errors.js';
import { TurnDataPath } from './data-path.js';
import type { TurnAllocationInfo, TurnAllocationStats, TurnEvent, TurnSendResult } from './events.js';
import { type ExchangeOutcome, TurnExchange } from './exchange.js';
import { TURN_DEFAULTS, type TurnAllocationOptions, type TurnTransport } from './options.js';
import { channelBound, channelRefused, dueRefreshes, permissionsGranted, permissionsRefused } from './peer-outcomes.js';
import { type Channel, PeerTable, canonicalPeer, canonicalPeerIp, peerKey } from './peers.js';
import { type Plan, allocationOf, plan as newPlan, positive, reworded } from './requests.js';

/** The life of an allocation, as {@link TurnAllocationCore.state} reports it. */
export type TurnAllocationState =
  /** Made, `start` not called yet. */
  | 'idle'
  /** The Allocate (with its 401 and 438 retries) is under way. */
  | 'allocating'
  /** Allocated: permissions, channels and data may be used. */
  | 'allocated'
  /** `close` sent Refresh with LIFETIME 0 and waits for its answer. */
  | 'closing'
  /** Deallocated, or abandoned by `abort`. */
  | 'closed'
  /** The Allocate failed or the allocation was lost. */
  | 'failed'
  /** The server redirected us with 300 Try Alternate. */
  | 'redirected';

/**
 * The most data one packet may carry: what fits in a Send indication (a STUN body is at most
 * 65,532 bytes; XOR-PEER-ADDRESS of an IPv6 peer takes 24, the DATA header 4, DONT-FRAGMENT 4).
 */
const MAX_DATA = 65_500;

/**
 * A TURN allocation (RFC 8656) as a sans-I/O state machine: no sockets, no timers, no clock. The
 * driver feeds it what the server sends and the time, and carries out what it asks:
 *
 * ```ts
 * const core = new TurnAllocationCore({ username, password, transport: 'udp' });
 * core.start(now);
 * // loop: for (let b; (b = core.pollTransmit()); ) socket.send(b);
 * //       for (let e; (e = core.pollEvent()); ) handle(e);
 * //       arm one timer for core.pollTimeout(), then call core.handleTimeout(now);
 * //       on every datagram (or stream frame): core.handleInput(bytes, now).
 * ```
 *
 * It allocates with the long-term credential mechanism (a first request without credentials,
 * the 401's REALM and NONCE, then a signed retry; 438 Stale Nonce retried with the new nonce;
 * 300 Try Alternate reported as a `redirect`), checks MESSAGE-INTEGRITY on every response to a
 * signed request, refreshes the allocation before it expires, keeps permissions (every 240 s)
 * and channel bindings (every 540 s) alive, sends data as ChannelData on a confirmed channel
 * and as Send indications otherwise, and deallocates on `close`. Requests go through the
 * client's {@link TransactionManager}: retransmitted over UDP, sent once over TCP and TLS.
 *
 * Times (`now`) are milliseconds on any monotonic clock.
 */
export class TurnAllocationCore {
  readonly transport: TurnTransport;
  readonly #options: TurnAllocationOptions;
  readonly #exchange: TurnExchange;
  readonly #peers = new PeerTable();
  readonly #out: Uint8Array[] = [];
  readonly #events: TurnEvent[] = [];
  readonly #permissionRefreshMs: number;
  readonly #channelRefreshMs: number;
  readonly #maxQueued: number;
  readonly #stats: TurnAllocationStats = { channelDataSent: 0, indicationsSent: 0, received: 0, dropped: 0, requests: 0 };
  #state: TurnAllocationState = 'idle';
  #allocation: TurnAllocationInfo | undefined;
  #expiresAt = 0;
  #refreshAt = Number.POSITIVE_INFINITY;
  #refreshing = false;
  #nextOp = 1;
  readonly #data: TurnDataPath;

  /** @throws RangeError for a timing value that is not positive. */
  constructor(options: TurnAllocationOptions) {
    this.#options = options;
    this.transport = options.transport ?? 'udp';
    const reliable = this.transport !== 'udp';
    const settled = (o: ExchangeOutcome, now: number): void => this.#settled(o, now);
    this.#exchange = new TurnExchange({ options, reliable, out: this.#out, stats: this.#stats, settled });
    this.#permissionRefreshMs = positive('permissionRefreshMs', options.permissionRefreshMs ?? TURN_DEFAULTS.permissionRefreshMs);
    this.#channelRefreshMs = positive('channelRefreshMs', options.channelRefreshMs ?? TURN_DEFAULTS.channelRefreshMs);
    this.#maxQueued = Math.max(0, Math.floor(options.maxQueuedPackets ?? TURN_DEFAULTS.maxQueuedPackets));
    positive('refreshMargin', options.refreshMargin ?? TURN_DEFAULTS.refreshMargin);
    const d = { out: this.#out, events: this.#events, stats: this.#stats, peers: this.#peers };
    this.#data = new TurnDataPath({ ...d, reliable, dontFragment: options.dontFragment === true });
  }

  /** Where the allocation is in its life. */
  get state(): TurnAllocationState {
    return this.#state;
  }

  /** What the server granted, once allocated. */
  get allocation(): TurnAllocationInfo | undefined {
    return this.#allocation;
  }

  /** When the allocation expires unless refreshed (ms), once allocated. */
  get expiresAt(): number | undefined {
    return this.#allocation ? this.#expiresAt : undefined;
  }

  /** When the next allocation refresh is due (ms), once allocated. */
  get refreshAt(): number | undefined {
    return this.#state === 'allocated' ? this.#refreshAt : undefined;
  }

  /** The realm the server gave, once challenged. */
  get realm(): string | undefined {
    return this.#exchange.realm;
  }

  /** Counters (a live object). */
  get stats(): Readonly<TurnAllocationStats> {
    return this.#stats;
  }

  /** Whether a permission toward `ip` is installed and unexpired at `now`. */
  hasPermission(ip: string, now: number): boolean {
    return this.#peers.permitted(canonicalPeerIp(ip), now);
  }

  /** The channel bound (or being bound) to `peer`, and whether the server confirmed it. */
  channelOf(peer: TransportAddress): { readonly channel: number; readonly bound: boolean } | undefined {
    const c = this.#peers.channelByPeer.get(peerKey(canonicalPeer(peer)));
    return c ? { channel: c.number, bound: c.bound } : undefined;
  }

  /** Sends the first Allocate, without credentials (RFC 8656 section 7.1, RFC 8489 section 9.2.3). */
  start(now: number): void {
    if (this.#state !== 'idle') throw new Error(`start: the allocation is ${this.#state}`);
    this.#state = 'allocating';
    this.#exchange.request(newPlan('allocate', undefined), now, false);
    this.#exchange.drive(now);
  }

  /**
   * Something the server sent: a UDP datagram, or one frame cut from a TCP/TLS stream (a STUN
   * message or a ChannelData message). Anything else is ignored.
   */
  handleInput(bytes: Uint8Array, now: number): void {
    if (bytes.length === 0) return;
    const first = bytes[0]!;
    if (first >= 0x40 && first <= 0x4f) {
      if (this.#receiving()) this.#data.onChannelData(bytes);
      return;
    }
    if (first >= 0x40) return; // RFC 7983: neither STUN nor ChannelData
    let message: StunMessage;
    try {
      message = decodeStunMessage(bytes, { allowClassic: false });
    } catch (e) {
      if (e instanceof DecodeError) return; // RFC 8489 section 6.3: discard what does not decode
      throw e;
    }
    if (message.class === StunClass.Indication) {
      if (message.method === StunMethod.Data && this.#receiving()) this.#data.onDataIndication(message);
      return;
    }
    if (message.class !== StunClass.SuccessResponse && message.class !== StunClass.ErrorResponse) return;
    this.#exchange.onResponse(message, now);
    this.#exchange.drive(now);
  }

  /** Advances time: retransmissions, transaction timeouts, and every refresh that is due. */
  handleTimeout(now: number): void {
    this.#exchange.handleTimeout(now);
    this.#exchange.drive(now);
    this.#refreshDue(now);
    this.#exchange.drive(now);
  }

  /** The next message to send to the server, or undefined. Call until undefined after every call. */
  pollTransmit(): Uint8Array | undefined {
    return this.#out.shift();
  }

  /** The next event, or undefined. */
  pollEvent(): TurnEvent | undefined {
    return this.#events.shift();
  }

  /** When `handleTimeout` must next be called, or undefined when nothing is waited for. */
  pollTimeout(): number | undefined {
    let at = this.#exchange.pollTimeout();
    const min = (t: number): void => {
      if (at === undefined || t < at) at = t;
    };
    if (this.#state !== 'allocated') return at;
    if (!this.#refreshing) min(this.#refreshAt);
    min(this.#expiresAt);
    for (const p of this.#peers.permissions.values()) if (p.installed && p.inFlight === 0) min(p.refreshAt);
    for (const c of this.#peers.channels.values()) if (c.bound && !c.inFlight) min(c.refreshAt);
    return at;
  }

  /**
   * Installs permissions toward peer IPs (ports are ignored) with one CreatePermission (RFC 8656
   * section 9.1). Returns the operation id its `permission` event will carry. The permissions
   * are then refreshed every `permissionRefreshMs` until {@link release} or the end of the
   * allocation.
   *
   * @throws StunClientError `BAD_ADDRESS` for a bad IP, `ABORTED` when not allocated;
   * RangeError for an empty list.
   */
  createPermission(peers: readonly (string | TransportAddress)[], now: number): number {
    this.#mustBeAllocated('createPermission');
    if (peers.length === 0) throw new RangeError('createPermission: give at least one peer');
    const ips = [...new Set(peers.map((p) => canonicalPeerIp(typeof p === 'string' ? p : p.address)))];
    const op = this.#nextOp++;
    this.#requestPermission(ips, op, now);
    this.#exchange.drive(now);
    return op;
  }

  /**
   * Binds a channel to `peer` (RFC 8656 section 11.1), the lowest free number from 0x4000, or
   * refreshes the binding the peer already has. Returns the operation id its `channel` event
   * will carry, and the channel number. ChannelData is used once the server confirms it.
   *
   * @throws StunClientError `BAD_ADDRESS` for a bad peer, `ABORTED` when not allocated;
   * RangeError when all 4096 channel numbers are in use.
   */
  bindChannel(peer: TransportAddress, now: number): { readonly op: number; readonly channel: number } {
    this.#mustBeAllocated('bindChannel');
    const p = canonicalPeer(peer);
    const key = peerKey(p);
    let c = this.#peers.channelByPeer.get(key);
    if (c === undefined) {
      const number = this.#peers.freeChannelNumber();
      if (number === undefined) throw new RangeError('bindChannel: every channel number is in use');
      c = this.#peers.addChannel(number, p, key);
    }
    const op = this.#nextOp++;
    this.#requestChannel(c, op, now);
    this.#exchange.drive(now);
    return { op, channel: c.number };
  }

  /**
   * Sends application data to a peer: as ChannelData when a channel to it is confirmed, else in
   * a Send indication when a permission is installed, else it queues the data (up to
   * `maxQueuedPackets`) and asks for the permission. Never throws for a full queue or a missing
   * allocation: it returns `'dropped'`.
   *
   * @throws StunClientError `BAD_ADDRESS` for a bad peer address; RangeError for more than
   * 65,500 bytes of data.
   */
  send(peer: TransportAddress, data: Uint8Array, now: number): TurnSendResult {
    if (data.length > MAX_DATA) throw new RangeError(`send: ${data.length} bytes do not fit in a TURN message (${MAX_DATA} at most)`);
    if (this.#state !== 'allocated') {
      this.#stats.dropped++;
      return 'dropped';
    }
    const p = canonicalPeer(peer);
    const c = this.#data.boundChannel(p, now);
    if (c !== undefined) {
      this.#data.sendChannelData(c, data);
      return 'channel';
    }
    if (this.#peers.permitted(p.address, now)) {
      this.#data.sendIndication(p, data);
      return 'indication';
    }
    if (!this.#peers.enqueue(p.address, p, data, this.#maxQueued)) {
      this.#stats.dropped++;
      return 'dropped';
    }
    if (this.#peers.permission(p.address).inFlight === 0) {
      this.#requestPermission([p.address], undefined, now);
      this.#exchange.drive(now);
    }
    return 'queued';
  }

  /**
   * Stops refreshing the permission toward `ip` and the channels bound to peers at that IP; the
   * server forgets them when they expire, and data from them is dropped at once.
   */
  release(ip: string): void {
    const canonical = canonicalPeerIp(ip);
    this.#stats.dropped += this.#peers.takeQueue(canonical).length;
    this.#peers.permissions.delete(canonical);
    for (const c of [...this.#peers.channels.values()]) if (c.peer.address === canonical) this.#peers.removeChannel(c);
  }

  /**
   * Deallocates: a Refresh with LIFETIME 0 (RFC 8656 section 7.3). The `closed` event follows
   * its answer (or its timeout). Before the allocation exists, it abandons the Allocate instead.
   */
  close(now: number): void {
    if (this.#state === 'allocated') {
      this.#exchange.cancelAll(new StunClientError('ABORTED', 'the allocation is closing'));
      this.#state = 'closing';
      this.#exchange.drive(now);
      this.#exchange.request(newPlan('deallocate', undefined, { lifetime: 0 }), now, true);
      this.#exchange.drive(now);
    } else if (this.#state === 'idle' || this.#state === 'allocating') {
      this.abort();
    }
  }

  /**
   * Ends at once without deallocating: pending requests are cancelled, and a `closed` event
   * follows, or a `failed` event with `error` when one is given (the transport was lost).
   */
  abort(error?: StunClientError): void {
    if (this.#isFinal()) return;
    if (error) this.#finish('failed', { type: 'failed', error });
    else this.#finish('closed', { type: 'closed' });
  }

  // ------------------------------------------------------------------ requests

  #mustBeAllocated(what: string): void {
    if (this.#state !== 'allocated') throw new StunClientError('ABORTED', `${what}: no allocation (${this.#state})`);
  }

  /** Data is taken from the server while allocated, and while the deallocation is under way. */
  #receiving(): boolean {
    return this.#state === 'allocated' || this.#state === 'closing';
  }

  #isFinal(): boolean {
    return this.#state === 'closed' || this.#state === 'failed' || this.#state === 'redirected';
  }

  #requestPermission(ips: readonly string[], op: number | undefined, now: number): void {
    for (const ip of ips) this.#peers.permission(ip).inFlight++;
    this.#exchange.request(newPlan('permission', op, { ips }), now, true);
  }

  #requestChannel(c: Channel, op: number | undefined, now: number): void {
    c.inFlight = true;
    this.#peers.permission(c.peer.address).inFlight++;
    this.#exchange.request(newPlan('channel', op, { channel: c }), now, true);
  }

  /** An operation ended (see {@link TurnExchange}). */
  #settled(o: ExchangeOutcome, now: number): void {
    if (o.kind === 'success') this.#succeeded(o.plan, o.response, now);
    else if (o.kind === 'failure') this.#failed(o.plan, o.error, now);
    else this.#finish('redirected', { type: 'redirect', ...o.alternate });
  }

  #succeeded(plan: Plan, response: StunMessage, now: number): void {
    switch (plan.kind) {
      case 'allocate':
        return this.#allocated(response, now);
      case 'refresh': {
        this.#refreshing = false;
        if (this.#state !== 'allocated') return;
        const lifetime = lifetimeOf(response) ?? this.#allocation!.lifetime;
        this.#setLifetime(lifetime, now);
        this.#events.push({ type: 'refreshed', lifetime });
        return;
      }
      case 'deallocate':
        this.#finish('closed', { type: 'closed' });
        return;
      case 'permission': {
        permissionsGranted(this.#peers, plan.ips!, now, this.#permissionRefreshMs);
        this.#events.push({ type: 'permission', op: plan.op, peers: plan.ips!, error: undefined });
        for (const ip of plan.ips!) this.#data.flush(ip, now);
        return;
      }
      case 'channel': {
        const c = plan.channel!;
        if (!channelBound(this.#peers, c, now, { channelMs: this.#channelRefreshMs, permissionMs: this.#permissionRefreshMs })) return;
        this.#events.push({ type: 'channel', op: plan.op, channel: c.number, peer: c.peer, error: undefined });
        this.#data.flush(c.peer.address, now);
        return;
      }
    }
  }

  #failed(plan: Plan, error: StunClientError, now: number): void {
    switch (plan.kind) {
      case 'allocate':
        if (this.#state === 'allocating') this.#finish('failed', { type: 'failed', error });
        return;
      case 'refresh':
        this.#refreshing = false;
        if (this.#state !== 'allocated') return;
        if (error.code === 'TIMEOUT' && now < this.#expiresAt) {
          this.#refreshAt = now; // try again while the allocation may still exist
          return;
        }
        this.#finish('failed', { type: 'failed', error: reworded(error, `the allocation was lost: ${error.message}`) });
        return;
      case 'deallocate':
        // 437 means it is gone already; any other answer or none: nothing more can be done.
        this.#finish('closed', { type: 'closed' });
        return;
      case 'permission': {
        this.#stats.dropped += permissionsRefused(this.#peers, plan.ips!, error, now);
        if (!this.#isFinal()) this.#events.push({ type: 'permission', op: plan.op, peers: plan.ips!, error });
        return;
      }
      case 'channel': {
        const c = plan.channel!;
        this.#stats.dropped += channelRefused(this.#peers, c, error, now);
        if (!this.#isFinal()) this.#events.push({ type: 'channel', op: plan.op, channel: c.number, peer: c.peer, error });
        return;
      }
    }
  }

  #allocated(response: StunMessage, now: number): void {
    if (this.#state !== 'allocating') return;
    let info: TurnAllocationInfo;
    try {
      info = allocationOf(response);
    } catch (e) {
      this.#finish('failed', { type: 'failed', error: e as StunClientError });
      return;
    }
    this.#allocation = info;
    this.#state = 'allocated';
    this.#setLifetime(info.lifetime, now);
    this.#events.push({ type: 'allocated', allocation: info });
  }

  #setLifetime(lifetime: number, now: number): void {
    this.#expiresAt = now + lifetime * 1000;
    const margin = this.#options.refreshMargin ?? TURN_DEFAULTS.refreshMargin;
    // RFC 8656 section 7.3: refresh before expiry; a minute early, never before half the lifetime.
    this.#refreshAt = now + Math.max(lifetime * 500, (lifetime - margin) * 1000);
    if (this.#allocation && this.#allocation.lifetime !== lifetime) this.#allocation = { ...this.#allocation, lifetime };
  }

  /** Sends every refresh that is due at `now`. */
  #refreshDue(now: number): void {
    if (this.#state !== 'allocated') return;
    if (now >= this.#expiresAt) {
      this.#finish('failed', { type: 'failed', error: new StunClientError('TIMEOUT', 'the allocation expired before a refresh succeeded') });
      return;
    }
    if (!this.#refreshing && now >= this.#refreshAt) {
      this.#refreshing = true;
      this.#exchange.request(newPlan('refresh', undefined), now, true);
    }
    const due = dueRefreshes(this.#peers, now);
    for (const ips of due.permissions) this.#requestPermission(ips, undefined, now);
    for (const c of due.channels) this.#requestChannel(c, undefined, now);
  }

  /** Enters a final state: cancels every request, drops what waits, reports `event`. */
  #finish(state: 'closed' | 'failed' | 'redirected', event: TurnEvent): void {
    this.#state = state;
    this.#refreshing = false;
    this.#exchange.cancelAll(new StunClientError('ABORTED', `the allocation is ${state}`));
    this.#stats.dropped += this.#peers.clear();
    this.#events.push(event);
  }
}

/** The LIFETIME of a Refresh success, when it carries a readable one. */
function lifetimeOf(response: StunMessage): number | undefined {
  try {
    return response.get(Attr.Lifetime);
  } catch {
    return undefined;
  }
}
