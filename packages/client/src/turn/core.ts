import {
  Attr,
  type AttributeEntry,
  DecodeError,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeChannelData,
  decodeStunMessage,
  encodeChannelData,
  encodeStunMessage,
  verifyFingerprint,
} from '@nat/protocol';
import { errorResponseError } from '../driver/runner.js';
import { StunClientError } from '../errors.js';
import { TransactionManager } from '../transaction/manager.js';
import type { StunTransaction } from '../transaction/transaction.js';
import { LongTermCredentials, type SigningKey, isSigned, verifyResponse } from './credentials.js';
import type { TurnAllocationInfo, TurnAllocationStats, TurnEvent, TurnSendResult } from './events.js';
import { TURN_DEFAULTS, type TurnAllocationOptions, type TurnTransport } from './options.js';
import { type Channel, PeerTable, canonicalPeer, canonicalPeerIp, peerKey } from './peers.js';
import { refusalError } from './refusal.js';

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

/** UDP transport protocol number for REQUESTED-TRANSPORT (RFC 8656 section 18.8). */
const TRANSPORT_UDP = 17;
/**
 * The most data one packet may carry: what fits in a Send indication (a STUN body is at most
 * 65,532 bytes; XOR-PEER-ADDRESS of an IPv6 peer takes 24, the DATA header 4, DONT-FRAGMENT 4).
 */
const MAX_DATA = 65_500;
/** Permission refreshes due this close together are sent in one CreatePermission. */
const COALESCE_MS = 10_000;

type RequestKind = 'allocate' | 'refresh' | 'deallocate' | 'permission' | 'channel';

/** One operation's request, kept across its 401 and 438 retries. */
interface Plan {
  readonly kind: RequestKind;
  /** The caller's operation id, for `createPermission` and `bindChannel`. */
  readonly op: number | undefined;
  readonly ips?: readonly string[];
  readonly channel?: Channel;
  /** LIFETIME to send (Refresh and deallocation). */
  readonly lifetime?: number;
  /** Stale-nonce retries made so far. */
  staleRetries: number;
  /** A 401 was already answered with credentials for this operation. */
  challenged: boolean;
}

/** A request in flight. */
interface Pending {
  readonly plan: Plan;
  readonly method: number;
  /** The key it was signed with; undefined for the first, unauthenticated Allocate. */
  readonly signing: SigningKey | undefined;
  /** Responses discarded because their MAC did not verify (RFC 8489 section 9.2.5). */
  discarded: number;
  /** Why it was cancelled, when it was. */
  failure?: StunClientError;
}

const METHOD: Record<RequestKind, number> = {
  allocate: StunMethod.Allocate,
  refresh: StunMethod.Refresh,
  deallocate: StunMethod.Refresh,
  permission: StunMethod.CreatePermission,
  channel: StunMethod.ChannelBind,
};

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
  readonly #credentials: LongTermCredentials;
  readonly #transactions: TransactionManager;
  readonly #reliable: boolean;
  readonly #fingerprint: boolean;
  readonly #peers = new PeerTable();
  readonly #pending = new Map<string, Pending>();
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

  /** @throws RangeError for a timing value that is not positive. */
  constructor(options: TurnAllocationOptions) {
    this.#options = options;
    this.transport = options.transport ?? 'udp';
    this.#reliable = this.transport !== 'udp';
    this.#fingerprint = options.fingerprint ?? true;
    this.#credentials = new LongTermCredentials(options.username, options.password, options.passwordAlgorithm ?? 'MD5');
    this.#transactions = new TransactionManager({ ...options.retransmission, reliable: this.#reliable });
    this.#permissionRefreshMs = positive('permissionRefreshMs', options.permissionRefreshMs ?? TURN_DEFAULTS.permissionRefreshMs);
    this.#channelRefreshMs = positive('channelRefreshMs', options.channelRefreshMs ?? TURN_DEFAULTS.channelRefreshMs);
    this.#maxQueued = Math.max(0, Math.floor(options.maxQueuedPackets ?? TURN_DEFAULTS.maxQueuedPackets));
    positive('refreshMargin', options.refreshMargin ?? TURN_DEFAULTS.refreshMargin);
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
    return this.#credentials.realm;
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
    this.#request({ kind: 'allocate', op: undefined, staleRetries: 0, challenged: false }, now, false);
    this.#drive(now);
  }

  /**
   * Something the server sent: a UDP datagram, or one frame cut from a TCP/TLS stream (a STUN
   * message or a ChannelData message). Anything else is ignored.
   */
  handleInput(bytes: Uint8Array, now: number): void {
    if (bytes.length === 0) return;
    const first = bytes[0]!;
    if (first >= 0x40 && first <= 0x4f) {
      this.#onChannelData(bytes);
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
      if (message.method === StunMethod.Data) this.#onDataIndication(message);
      return;
    }
    if (message.class !== StunClass.SuccessResponse && message.class !== StunClass.ErrorResponse) return;
    this.#onResponse(message, now);
    this.#drive(now);
  }

  /** Advances time: retransmissions, transaction timeouts, and every refresh that is due. */
  handleTimeout(now: number): void {
    this.#transactions.handleTimeout(now);
    this.#drive(now);
    this.#refreshDue(now);
    this.#drive(now);
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
    let at = this.#transactions.pollTimeout();
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
    this.#drive(now);
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
    this.#drive(now);
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
    const c = this.#peers.channelByPeer.get(peerKey(p));
    if (c !== undefined && c.bound && now < c.expiresAt) {
      this.#sendChannelData(c, data);
      return 'channel';
    }
    if (this.#peers.permitted(p.address, now)) {
      this.#sendIndication(p, data);
      return 'indication';
    }
    if (!this.#peers.enqueue(p.address, p, data, this.#maxQueued)) {
      this.#stats.dropped++;
      return 'dropped';
    }
    if (this.#peers.permission(p.address).inFlight === 0) {
      this.#requestPermission([p.address], undefined, now);
      this.#drive(now);
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
      this.#cancelAll(new StunClientError('ABORTED', 'the allocation is closing'));
      this.#state = 'closing';
      this.#drive(now);
      this.#request({ kind: 'deallocate', op: undefined, lifetime: 0, staleRetries: 0, challenged: false }, now, true);
      this.#drive(now);
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

  #isFinal(): boolean {
    return this.#state === 'closed' || this.#state === 'failed' || this.#state === 'redirected';
  }

  #requestPermission(ips: readonly string[], op: number | undefined, now: number): void {
    for (const ip of ips) this.#peers.permission(ip).inFlight++;
    this.#request({ kind: 'permission', op, ips, staleRetries: 0, challenged: false }, now, true);
  }

  #requestChannel(c: Channel, op: number | undefined, now: number): void {
    c.inFlight = true;
    this.#peers.permission(c.peer.address).inFlight++;
    this.#request({ kind: 'channel', op, channel: c, staleRetries: 0, challenged: false }, now, true);
  }

  /** The attributes of a plan's request, before the credentials. */
  #attributes(plan: Plan): AttributeEntry[] {
    const o = this.#options;
    const out: AttributeEntry[] = [];
    switch (plan.kind) {
      case 'allocate':
        out.push(attr(Attr.RequestedTransport, TRANSPORT_UDP));
        if (o.lifetime !== undefined) out.push(attr(Attr.Lifetime, o.lifetime));
        if (o.requestedAddressFamily !== undefined) out.push(attr(Attr.RequestedAddressFamily, o.requestedAddressFamily));
        if (o.additionalIPv6) out.push(attr(Attr.AdditionalAddressFamily, 'IPv6'));
        if (o.evenPort !== undefined) out.push(attr(Attr.EvenPort, { reserve: o.evenPort.reserve }));
        if (o.reservationToken !== undefined) out.push(attr(Attr.ReservationToken, o.reservationToken));
        if (o.dontFragment) out.push(attr(Attr.DontFragment, true));
        break;
      case 'refresh':
        if (o.lifetime !== undefined) out.push(attr(Attr.Lifetime, o.lifetime));
        break;
      case 'deallocate':
        out.push(attr(Attr.Lifetime, 0));
        break;
      case 'permission':
        for (const ip of plan.ips!) out.push(attr(Attr.XorPeerAddress, { family: familyOf(ip), address: ip, port: 0 }));
        break;
      case 'channel':
        out.push(attr(Attr.ChannelNumber, plan.channel!.number), attr(Attr.XorPeerAddress, plan.channel!.peer));
        break;
    }
    if (o.software !== undefined) out.push(attr(Attr.Software, o.software));
    return out;
  }

  /** Encodes and starts a plan's request, signed when `authenticated`. */
  #request(plan: Plan, now: number, authenticated: boolean): void {
    const method = METHOD[plan.kind];
    const attributes = this.#attributes(plan);
    let bytes: Uint8Array;
    let signing: SigningKey | undefined;
    if (authenticated) {
      attributes.push(...this.#credentials.attributes());
      signing = this.#credentials.signing;
      bytes = encodeStunMessage({ method, class: StunClass.Request, attributes }, this.#credentials.encodeOptions(this.#fingerprint));
    } else {
      bytes = encodeStunMessage({ method, class: StunClass.Request, attributes }, { fingerprint: this.#fingerprint });
    }
    const t = this.#transactions.start(bytes, undefined, now);
    this.#pending.set(t.key, { plan, method, signing, discarded: 0 });
  }

  /** Moves due transmissions to the output and settles finished transactions, until quiet. */
  #drive(now: number): void {
    for (;;) {
      for (let tx = this.#transactions.pollTransmit(now); tx; tx = this.#transactions.pollTransmit(now)) {
        this.#out.push(tx.bytes);
        this.#stats.requests++;
      }
      const t = this.#transactions.pollCompleted();
      if (t === undefined) return;
      this.#settle(t, now);
    }
  }

  #cancelAll(error: StunClientError): void {
    for (const [key, p] of this.#pending) {
      p.failure ??= error;
      this.#transactions.cancel(key);
    }
  }

  /** Checks a response's integrity, then hands it to its transaction. */
  #onResponse(message: StunMessage, now: number): void {
    const p = this.#pending.get(message.transactionKey);
    if (p === undefined || message.method !== p.method) return;
    let reject: string | undefined;
    if (p.signing !== undefined) {
      if (isSigned(message)) {
        if (!verifyResponse(message, p.signing)) reject = 'its MESSAGE-INTEGRITY does not verify';
      } else if (message.class === StunClass.SuccessResponse) {
        reject = 'it is not signed';
      } else if (errorCodeOf(message) === 300) {
        // A redirect to an unauthenticated server must not move a signed exchange elsewhere.
        reject = 'an unsigned 300 answered a signed request';
      }
      // Other unsigned error responses are taken: 401 and 438 are never signed, and any other
      // can only end a request, which an on-path attacker can do anyway by dropping packets.
    } else if (message.class === StunClass.SuccessResponse) {
      // The first Allocate carries no credentials; a server that allocates without any is not
      // one we can authenticate.
      p.failure = new StunClientError('BAD_RESPONSE', 'the server answered an unauthenticated Allocate with success', { response: message });
      this.#transactions.cancel(message.transactionKey);
      return;
    }
    if (reject !== undefined) {
      if (this.#reliable) {
        // RFC 8489 section 9.2.5: over a reliable transport an unauthenticated response fails the request.
        p.failure = new StunClientError('BAD_RESPONSE', `response rejected: ${reject}`, { response: message });
        this.#transactions.cancel(message.transactionKey);
      } else {
        // RFC 8489 section 9.2.5: over UDP it is discarded as if never received; retransmits go on.
        p.discarded++;
      }
      return;
    }
    this.#transactions.handleMessage(message, now);
  }

  /** A transaction ended: success, error response, timeout or cancellation. */
  #settle(t: StunTransaction, now: number): void {
    const p = this.#pending.get(t.key);
    if (p === undefined) return;
    this.#pending.delete(t.key);
    const r = t.result;
    if (r === undefined || r.kind === 'cancelled') {
      this.#failed(p.plan, p.failure ?? new StunClientError('ABORTED', 'request cancelled'), now);
    } else if (r.kind === 'timeout') {
      const what = `${p.plan.kind === 'deallocate' ? 'Refresh (LIFETIME 0)' : methodLabel(p.plan.kind)} request`;
      this.#failed(
        p.plan,
        p.discarded > 0
          ? // RFC 8489 section 9.2.5: when every response was discarded, signal an integrity violation, not a timeout.
            new StunClientError('BAD_RESPONSE', `${what}: every response failed the integrity check (${p.discarded})`)
          : new StunClientError('TIMEOUT', `${what}: no response after ${r.transmissions} transmission(s)`),
        now,
      );
    } else if (r.response.class === StunClass.SuccessResponse) {
      this.#succeeded(p.plan, r.response, now);
    } else {
      this.#errorResponse(p, r.response, now);
    }
  }

  #errorResponse(p: Pending, response: StunMessage, now: number): void {
    const plan = p.plan;
    const code = errorCodeOf(response);
    if (code === 401) {
      // RFC 8489 section 9.2.5: retry with credentials, but never twice with the same ones.
      let retry = false;
      try {
        const realmChanged = this.#credentials.learnChallenge(response);
        retry = p.signing === undefined || (realmChanged && !plan.challenged);
      } catch (e) {
        this.#failed(plan, e as StunClientError, now);
        return;
      }
      if (retry) {
        plan.challenged = true;
        this.#request(plan, now, true);
        return;
      }
      this.#failed(plan, reworded(errorResponseError(response), 'the server refused the credentials (401 Unauthorized)'), now);
      return;
    }
    if (code === 438 && p.signing !== undefined && plan.staleRetries < TURN_DEFAULTS.maxStaleNonceRetries) {
      // RFC 8489 section 9.2.5: retry with the NONCE of the 438.
      if (this.#credentials.learnStaleNonce(response)) {
        plan.staleRetries++;
        this.#request(plan, now, true);
        return;
      }
    }
    if (code === 300 && plan.kind === 'allocate') {
      let alternate: TransportAddress | undefined;
      let domain: string | undefined;
      try {
        alternate = response.get(Attr.AlternateServer);
        domain = response.get(Attr.AlternateDomain);
      } catch {
        alternate = undefined;
      }
      if (alternate === undefined) {
        this.#failed(plan, new StunClientError('BAD_RESPONSE', '300 Try Alternate without a valid ALTERNATE-SERVER', { response, stunErrorCode: 300 }), now);
        return;
      }
      this.#finish('redirected', { type: 'redirect', alternateServer: alternate, alternateDomain: domain });
      return;
    }
    this.#failed(plan, refusalError(plan.kind, p.signing === undefined, response), now);
  }

  #succeeded(plan: Plan, response: StunMessage, now: number): void {
    switch (plan.kind) {
      case 'allocate':
        return this.#allocated(response, now);
      case 'refresh': {
        this.#refreshing = false;
        if (this.#state !== 'allocated') return;
        let lifetime: number | undefined;
        try {
          lifetime = response.get(Attr.Lifetime);
        } catch {
          lifetime = undefined;
        }
        lifetime ??= this.#allocation!.lifetime;
        this.#setLifetime(lifetime, now);
        this.#events.push({ type: 'refreshed', lifetime });
        return;
      }
      case 'deallocate':
        this.#finish('closed', { type: 'closed' });
        return;
      case 'permission': {
        for (const ip of plan.ips!) {
          const perm = this.#peers.permissions.get(ip);
          if (perm === undefined) continue; // released meanwhile
          perm.inFlight = Math.max(0, perm.inFlight - 1);
          this.#peers.installed(ip, now, TURN_DEFAULTS.permissionLifetimeMs, this.#permissionRefreshMs);
        }
        this.#events.push({ type: 'permission', op: plan.op, peers: plan.ips!, error: undefined });
        for (const ip of plan.ips!) this.#flush(ip, now);
        return;
      }
      case 'channel': {
        const c = plan.channel!;
        c.inFlight = false;
        const perm = this.#peers.permissions.get(c.peer.address);
        if (perm) perm.inFlight = Math.max(0, perm.inFlight - 1);
        if (this.#peers.channels.get(c.number) !== c) return; // released meanwhile
        c.bound = true;
        c.expiresAt = now + TURN_DEFAULTS.channelLifetimeMs;
        c.refreshAt = now + this.#channelRefreshMs;
        // RFC 8656 section 11.2: a ChannelBind installs or refreshes the peer's permission too.
        this.#peers.installed(c.peer.address, now, TURN_DEFAULTS.permissionLifetimeMs, this.#permissionRefreshMs);
        this.#events.push({ type: 'channel', op: plan.op, channel: c.number, peer: c.peer, error: undefined });
        this.#flush(c.peer.address, now);
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
        for (const ip of plan.ips!) {
          const perm = this.#peers.permissions.get(ip);
          if (perm === undefined) continue;
          perm.inFlight = Math.max(0, perm.inFlight - 1);
          const keep = perm.installed && error.code === 'TIMEOUT' && now < perm.expiresAt;
          if (keep) {
            perm.refreshAt = now;
          } else if (perm.inFlight === 0) {
            this.#peers.permissions.delete(ip);
            this.#stats.dropped += this.#peers.takeQueue(ip).length;
          }
        }
        if (!this.#isFinal()) this.#events.push({ type: 'permission', op: plan.op, peers: plan.ips!, error });
        return;
      }
      case 'channel': {
        const c = plan.channel!;
        c.inFlight = false;
        const perm = this.#peers.permissions.get(c.peer.address);
        if (perm) {
          perm.inFlight = Math.max(0, perm.inFlight - 1);
          if (!perm.installed && perm.inFlight === 0) {
            this.#peers.permissions.delete(c.peer.address);
            this.#stats.dropped += this.#peers.takeQueue(c.peer.address).length;
          }
        }
        if (c.bound && error.code === 'TIMEOUT' && now < c.expiresAt) {
          c.refreshAt = now;
        } else {
          this.#peers.removeChannel(c);
        }
        if (!this.#isFinal()) this.#events.push({ type: 'channel', op: plan.op, channel: c.number, peer: c.peer, error });
        return;
      }
    }
  }

  #allocated(response: StunMessage, now: number): void {
    if (this.#state !== 'allocating') return;
    let info: TurnAllocationInfo;
    try {
      const relayed = response.getAll(Attr.XorRelayedAddress);
      const lifetime = response.get(Attr.Lifetime);
      if (relayed.length === 0 || lifetime === undefined) {
        throw new StunClientError('BAD_RESPONSE', 'Allocate success without XOR-RELAYED-ADDRESS or LIFETIME', { response });
      }
      info = {
        relayedAddress: relayed[0]!,
        relayedAddresses: relayed,
        mappedAddress: response.get(Attr.XorMappedAddress),
        lifetime,
        reservationToken: response.get(Attr.ReservationToken),
        addressError: response.get(Attr.AddressErrorCode),
      };
    } catch (e) {
      const error =
        e instanceof StunClientError ? e : new StunClientError('BAD_RESPONSE', `bad Allocate response: ${(e as Error).message}`, { cause: e, response });
      this.#finish('failed', { type: 'failed', error });
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
      this.#request({ kind: 'refresh', op: undefined, staleRetries: 0, challenged: false }, now, true);
    }
    const due: string[] = [];
    if (this.#anyPermissionDue(now)) {
      // Those due soon join the one due now: one CreatePermission instead of several.
      for (const p of this.#peers.permissions.values()) {
        if (p.installed && p.inFlight === 0 && p.refreshAt <= now + COALESCE_MS) due.push(p.ip);
      }
    }
    for (let i = 0; i < due.length; i += TURN_DEFAULTS.maxPeersPerPermissionRequest) {
      this.#requestPermission(due.slice(i, i + TURN_DEFAULTS.maxPeersPerPermissionRequest), undefined, now);
    }
    for (const c of this.#peers.channels.values()) {
      if (c.bound && !c.inFlight && c.refreshAt <= now) this.#requestChannel(c, undefined, now);
    }
  }

  /** Whether some installed permission's refresh is due at `now`. */
  #anyPermissionDue(now: number): boolean {
    for (const p of this.#peers.permissions.values()) if (p.installed && p.inFlight === 0 && p.refreshAt <= now) return true;
    return false;
  }

  // ------------------------------------------------------------------ data

  #sendChannelData(c: Channel, data: Uint8Array): void {
    // RFC 8656 section 12.5: over TCP and TLS, ChannelData is padded to a multiple of 4 bytes.
    this.#out.push(encodeChannelData(c.number, data, { padded: this.#reliable }));
    this.#stats.channelDataSent++;
  }

  #sendIndication(peer: TransportAddress, data: Uint8Array): void {
    const attributes = [attr(Attr.XorPeerAddress, peer), attr(Attr.Data, data)];
    if (this.#options.dontFragment) attributes.push(attr(Attr.DontFragment, true));
    this.#out.push(encodeStunMessage({ method: StunMethod.Send, class: StunClass.Indication, attributes }));
    this.#stats.indicationsSent++;
  }

  /** Sends what waited for the permission toward `ip`. */
  #flush(ip: string, now: number): void {
    for (const q of this.#peers.takeQueue(ip)) {
      const c = this.#peers.channelByPeer.get(peerKey(q.peer));
      if (c !== undefined && c.bound && now < c.expiresAt) this.#sendChannelData(c, q.data);
      else this.#sendIndication(q.peer, q.data);
    }
  }

  #onChannelData(bytes: Uint8Array): void {
    if (this.#state !== 'allocated' && this.#state !== 'closing') return;
    let number: number;
    let data: Uint8Array;
    try {
      ({ channel: number, data } = decodeChannelData(bytes));
    } catch {
      this.#stats.dropped++;
      return;
    }
    // RFC 8656 section 12.7: ChannelData on a channel that is not bound is discarded.
    const c = this.#peers.channels.get(number);
    if (c === undefined) {
      this.#stats.dropped++;
      return;
    }
    this.#stats.received++;
    this.#events.push({ type: 'data', peer: c.peer, data, channel: number });
  }

  #onDataIndication(m: StunMessage): void {
    if (this.#state !== 'allocated' && this.#state !== 'closing') return;
    if (m.fingerprintOffset >= 0 && !verifyFingerprint(m)) return;
    let peer: TransportAddress | undefined;
    let data: Uint8Array | undefined;
    try {
      peer = m.get(Attr.XorPeerAddress);
      data = m.get(Attr.Data);
      if (peer !== undefined && data === undefined) {
        const icmp = m.get(Attr.Icmp);
        if (icmp !== undefined) this.#events.push({ type: 'icmp', peer, icmp });
        return;
      }
    } catch {
      peer = undefined;
    }
    // RFC 8656 section 10.4: the peer must be one we gave a permission to.
    if (peer === undefined || data === undefined || !this.#peers.permissions.has(peer.address)) {
      this.#stats.dropped++;
      return;
    }
    this.#stats.received++;
    this.#events.push({ type: 'data', peer, data, channel: undefined });
  }

  /** Enters a final state: cancels every request, drops what waits, reports `event`. */
  #finish(state: 'closed' | 'failed' | 'redirected', event: TurnEvent): void {
    this.#state = state;
    this.#refreshing = false;
    this.#cancelAll(new StunClientError('ABORTED', `the allocation is ${state}`));
    this.#stats.dropped += this.#peers.clear();
    this.#events.push(event);
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${String(value)}`);
  return value;
}

function familyOf(ip: string): 'IPv4' | 'IPv6' {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

function errorCodeOf(m: StunMessage): number | undefined {
  try {
    return m.get(Attr.ErrorCode)?.code;
  } catch {
    return undefined;
  }
}

function methodLabel(kind: RequestKind): string {
  return { allocate: 'Allocate', refresh: 'Refresh', deallocate: 'Refresh', permission: 'CreatePermission', channel: 'ChannelBind' }[kind];
}

/** The same error with a clearer message. */
function reworded(e: StunClientError, message: string): StunClientError {
  return new StunClientError(e.code, message, {
    ...(e.cause === undefined ? {} : { cause: e.cause }),
    ...(e.stunErrorCode === undefined ? {} : { stunErrorCode: e.stunErrorCode }),
    ...(e.reason === undefined ? {} : { reason: e.reason }),
    ...(e.response === undefined ? {} : { response: e.response }),
  });
}
