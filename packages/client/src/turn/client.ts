import type { ConnectionOptions } from 'node:tls';
import { WakeTimer } from '../driver/wake-timer.js';
import { eventIterator } from '../event-iterator.js';
import { type IcmpValue, type TransportAddress, formatTransportAddress, ipFamily, parseTransportAddress } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import { DEFAULT_STUN_PORT, DEFAULT_STUNS_PORT, type ServerAddress, resolveServer } from '../resolve.js';
import { TurnAllocationCore, type TurnAllocationState } from './core.js';
import type { TurnAllocationInfo, TurnAllocationStats, TurnEvent, TurnPeerData, TurnSendResult } from './events.js';
import type { TurnAllocationOptions } from './options.js';
import { type TurnSocket, openTurnSocket } from './socket.js';

/** Options of {@link TurnClient.connect}: the allocation's, plus where and how to connect. */
export interface TurnClientInit extends TurnAllocationOptions {
  /** The TURN server: `"host:port"`, `"[v6]:port"`, or an address. Port default 3478 (5349 for TLS). */
  readonly server: ServerAddress;
  /** Local IP address to send from. Default: the system's choice. */
  readonly localAddress?: string;
  /** Give up connecting a TCP/TLS socket after this long. Default 10,000 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * TLS settings (`ca`, `rejectUnauthorized`, `servername`...). By default the certificate is
   * checked against the system's CAs for the server's name.
   */
  readonly tls?: Omit<ConnectionOptions, 'host' | 'port' | 'socket'>;
  /** 300 Try Alternate redirections followed before giving up. Default 2. */
  readonly maxRedirects?: number;
  /** How long `close()` waits for the server to confirm the deallocation. Default 5,000 ms. */
  readonly closeTimeoutMs?: number;
  /** Aborts the connect (socket, Allocate and redirections). */
  readonly signal?: AbortSignal;
}

/** A peer, as an address or `"ip:port"` / `"[v6]:port"` text. */
export type TurnPeerAddress = TransportAddress | string;

/** Options of the operations that wait. */
export interface TurnOperationOptions {
  /** Rejects with code `ABORTED`; the request itself is not taken back. */
  readonly signal?: AbortSignal;
}

/** Options of {@link TurnClient.messages}. */
export interface TurnMessagesOptions {
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /** Messages held for a slow reader; beyond this the newest are dropped. Default 1024. */
  readonly bufferSize?: number;
}

/** The events of a {@link TurnClient} and their listeners. */
export interface TurnClientEvents {
  /** Data from a peer. */
  data: (message: TurnPeerData) => void;
  /** A failure that does not end the allocation (an automatic permission or channel refresh refused). */
  error: (error: StunClientError) => void;
  /** The allocation was refreshed; it now lives `lifetime` more seconds. */
  refresh: (lifetime: number) => void;
  /** The relay reported an ICMP error toward a peer. */
  icmp: (peer: TransportAddress, icmp: IcmpValue) => void;
  /** The allocation ended: `error` undefined after `close()`, else why it was lost. */
  close: (error: StunClientError | undefined) => void;
}

type Listeners = { [E in keyof TurnClientEvents]: Set<TurnClientEvents[E]> };

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: StunClientError): void;
}

type Outcome = { readonly kind: 'allocated' } | { readonly kind: 'redirect'; readonly to: TransportAddress; readonly domain: string | undefined };

const monotonic = (): number => performance.now();

function toPeer(peer: TurnPeerAddress): TransportAddress {
  if (typeof peer !== 'string') return peer;
  try {
    return parseTransportAddress(peer);
  } catch (e) {
    throw new StunClientError('BAD_ADDRESS', `not a peer address: ${JSON.stringify(peer)} (expected IP:PORT or [IPv6]:PORT)`, { cause: e });
  }
}

/**
 * A TURN client (RFC 8656) over UDP, TCP or TLS: the node:dgram / node:net / node:tls driver of
 * a {@link TurnAllocationCore}, with one timer.
 *
 * ```ts
 * const turn = await TurnClient.connect({ server: 'turn.example.org:3478', username, password });
 * console.log(turn.relayedAddress);               // give this to the peer
 * await turn.createPermission([peer.address]);     // or: const ch = await turn.bindChannel(peer);
 * turn.on('data', ({ peer, data }) => ...);
 * turn.send(peer, new TextEncoder().encode('hi')); // ChannelData when bound, else Send indication
 * await turn.close();                              // Refresh LIFETIME 0
 * ```
 *
 * Errors are {@link StunClientError}s: `ERROR_RESPONSE` with `stunErrorCode` for what the server
 * refused (401 bad credentials, 403 forbidden peer, 437, 438 after retries, 486 quota, 508...),
 * `TIMEOUT`, `SOCKET`, `BAD_RESPONSE` (a response that failed the integrity check or lacks what
 * it must carry), `BAD_ADDRESS`, `ABORTED`.
 */
export class TurnClient {
  /** The transport to the server. */
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** The server this allocation lives on (after any redirection). */
  readonly serverAddress: TransportAddress;
  readonly #core: TurnAllocationCore;
  readonly #closeTimeoutMs: number;
  readonly #listeners: Listeners = { data: new Set(), error: new Set(), refresh: new Set(), icmp: new Set(), close: new Set() };
  readonly #ops = new Map<number, Waiter<void>>();
  #socket: TurnSocket | undefined;
  readonly #timer = new WakeTimer(() => {
    this.#core.handleTimeout(monotonic());
    this.#service();
  }, monotonic);
  #outcome: Waiter<Outcome> | undefined;
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  #ended = false;
  /** Why the allocation ended, when it was not `close()`. */
  #endError: StunClientError | undefined;

  private constructor(init: TurnClientInit, server: TransportAddress) {
    this.transport = init.transport ?? 'udp';
    this.serverAddress = server;
    this.#core = new TurnAllocationCore(init);
    this.#closeTimeoutMs = init.closeTimeoutMs ?? 5000;
  }

  /**
   * Connects to a TURN server and allocates a relayed address, following 300 Try Alternate
   * redirections. Rejects with a {@link StunClientError}.
   */
  static async connect(init: TurnClientInit): Promise<TurnClient> {
    const { signal } = init;
    if (signal?.aborted) throw abortError(signal, 'TURN connect');
    const transport = init.transport ?? 'udp';
    const resolved = await resolveServer(init.server, { defaultPort: transport === 'tls' ? DEFAULT_STUNS_PORT : DEFAULT_STUN_PORT });
    let server = resolved.address;
    let servername = resolved.hostname;
    const maxRedirects = init.maxRedirects ?? 2;
    for (let redirects = 0; ; redirects++) {
      if (signal?.aborted) throw abortError(signal, 'TURN connect');
      const client = new TurnClient(init, server);
      const outcome = await client.#allocate(init, servername);
      if (outcome.kind === 'allocated') return client;
      if (redirects >= maxRedirects) {
        throw new StunClientError('ERROR_RESPONSE', `too many 300 Try Alternate redirections (last to ${formatTransportAddress(outcome.to)})`, {
          stunErrorCode: 300,
        });
      }
      // RFC 8489 section 10: over TLS the alternate's certificate is checked for ALTERNATE-DOMAIN,
      // or for the original domain when there is none.
      server = outcome.to;
      servername = outcome.domain ?? servername;
    }
  }

  /** The relayed transport address: what peers send to. */
  get relayedAddress(): TransportAddress {
    return this.#core.allocation!.relayedAddress;
  }

  /** Every relayed address (IPv4 then IPv6 with `additionalIPv6`). */
  get relayedAddresses(): readonly TransportAddress[] {
    return this.#core.allocation!.relayedAddresses;
  }

  /** Our address as the server sees it (XOR-MAPPED-ADDRESS), when it said. */
  get mappedAddress(): TransportAddress | undefined {
    return this.#core.allocation!.mappedAddress;
  }

  /** Everything the server granted. */
  get allocation(): TurnAllocationInfo {
    return this.#core.allocation!;
  }

  /** Our end of the connection to the server. */
  get localAddress(): TransportAddress {
    return this.#socket!.localAddress;
  }

  /** Where the allocation is in its life. */
  get state(): TurnAllocationState {
    return this.#core.state;
  }

  /** Counters. */
  get stats(): Readonly<TurnAllocationStats> {
    return this.#core.stats;
  }

  /** Adds a listener. */
  on<E extends keyof TurnClientEvents>(event: E, listener: TurnClientEvents[E]): this {
    (this.#listeners[event] as Set<TurnClientEvents[E]>).add(listener);
    return this;
  }

  /** Removes a listener. */
  off<E extends keyof TurnClientEvents>(event: E, listener: TurnClientEvents[E]): this {
    (this.#listeners[event] as Set<TurnClientEvents[E]>).delete(listener);
    return this;
  }

  /**
   * Installs permissions toward peers (their IPs; ports do not matter) with one
   * CreatePermission; they are kept alive until {@link release} or the end of the allocation.
   */
  createPermission(peers: TurnPeerAddress | readonly TurnPeerAddress[], options: TurnOperationOptions = {}): Promise<void> {
    return this.#operation(options.signal, 'createPermission', () => {
      const list = (Array.isArray(peers) ? peers : [peers]) as readonly TurnPeerAddress[];
      return this.#core.createPermission(list.map(peerIp), monotonic());
    });
  }

  /**
   * Binds a channel to a peer (or refreshes its binding) and resolves with the channel number
   * once the server confirmed it; from then on data to that peer goes as ChannelData.
   */
  async bindChannel(peer: TurnPeerAddress, options: TurnOperationOptions = {}): Promise<number> {
    let channel = 0;
    await this.#operation(options.signal, 'bindChannel', () => {
      const r = this.#core.bindChannel(toPeer(peer), monotonic());
      channel = r.channel;
      return r.op;
    });
    return channel;
  }

  /**
   * Sends data to a peer: ChannelData on a confirmed channel, a Send indication under an
   * installed permission, or held (bounded) while the permission is being created. Returns
   * what was done; `'dropped'` when the queue is full or the allocation is gone.
   */
  send(peer: TurnPeerAddress, data: Uint8Array): TurnSendResult {
    const result = this.#core.send(toPeer(peer), data, monotonic());
    if (result === 'channel' || result === 'indication') {
      const socket = this.#socket!;
      for (let b = this.#core.pollTransmit(); b; b = this.#core.pollTransmit()) socket.send(b);
    } else if (result === 'queued') {
      this.#service();
    }
    return result;
  }

  /** Stops keeping permissions and channels toward this peer IP alive. */
  release(peerIp: string): void {
    this.#core.release(peerIp);
  }

  /**
   * Data from peers as an async iterator, from now until the allocation ends or `signal` fires.
   * A slow reader loses the newest messages beyond `bufferSize`.
   */
  messages(options: TurnMessagesOptions = {}): AsyncIterableIterator<TurnPeerData> {
    return eventIterator<TurnPeerData>({
      ended: this.#ended,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.bufferSize !== undefined ? { bufferSize: options.bufferSize } : {}),
      subscribe: (push, end) => {
        this.on('data', push);
        this.on('close', end);
        return () => {
          this.off('data', push);
          this.off('close', end);
        };
      },
    });
  }

  /** Same as {@link messages} with the defaults. */
  [Symbol.asyncIterator](): AsyncIterableIterator<TurnPeerData> {
    return this.messages();
  }

  /**
   * Deallocates (Refresh with LIFETIME 0) and closes the socket. Waits at most `closeTimeoutMs`
   * for the server's answer. Idempotent; never rejects.
   */
  close(options: TurnOperationOptions = {}): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closed = new Promise<void>((resolve) => {
      if (this.#ended) {
        resolve();
        return;
      }
      const timer = setTimeout(() => this.#abandon(), this.#closeTimeoutMs);
      const onAbort = (): void => this.#abandon();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#onClosed = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#core.close(monotonic());
      this.#service();
    }).then(() => this.#socket?.close());
    return this.#closed;
  }

  /** Closes (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ internals

  async #allocate(init: TurnClientInit, servername: string | undefined): Promise<Outcome> {
    const { signal } = init;
    // ALPN "stun.turn" (RFC 7443): a TLS port shared with other services (or a balancer routing by ALPN) tells TURN apart.
    const tls = init.transport === 'tls' ? { ALPNProtocols: ['stun.turn'], ...(servername !== undefined ? { servername } : {}), ...init.tls } : init.tls;
    this.#socket = await openTurnSocket(
      this.serverAddress,
      {
        transport: this.transport,
        ...(init.localAddress ? { localAddress: init.localAddress } : {}),
        ...(init.connectTimeoutMs ? { connectTimeoutMs: init.connectTimeoutMs } : {}),
        ...(tls ? { tls } : {}),
        ...(signal ? { signal } : {}),
      },
      {
        onMessage: (bytes) => {
          this.#core.handleInput(bytes, monotonic());
          if (bytes[0]! >= 0x40) {
            // ChannelData (RFC 7983 first byte 64-79): it only ever yields a data event.
            for (let e = this.#core.pollEvent(); e; e = this.#core.pollEvent()) this.#handle(e);
          } else {
            this.#service();
          }
        },
        onError: (error) => this.#fail(error),
      },
    );
    const onAbort = (): void => this.#fail(abortError(signal, 'TURN connect'));
    try {
      const outcome = await new Promise<Outcome>((resolve, reject) => {
        this.#outcome = { resolve, reject };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#core.start(monotonic());
        this.#service();
      });
      if (outcome.kind === 'redirect') await this.#socket.close();
      return outcome;
    } catch (e) {
      await this.#socket.close();
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#outcome = undefined;
    }
  }

  /** Runs an operation of the core and waits for the event carrying its id. */
  #operation(signal: AbortSignal | undefined, what: string, start: () => number): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    if (this.#ended) return Promise.reject(this.#endError ?? new StunClientError('ABORTED', `${what}: the TURN client is closed`));
    let op: number;
    try {
      op = start();
    } catch (e) {
      return Promise.reject(e); // BAD_ADDRESS, or a RangeError (an empty list, no channel number left)
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#ops.delete(op);
        reject(abortError(signal, what));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#ops.set(op, {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      this.#service();
    });
  }

  /** Sends what the core has to send, handles its events, and re-arms the timer. */
  #service(): void {
    const core = this.#core;
    const socket = this.#socket;
    for (let b = core.pollTransmit(); b; b = core.pollTransmit()) socket?.send(b);
    for (let e = core.pollEvent(); e; e = core.pollEvent()) this.#handle(e);
    this.#arm();
  }

  #handle(e: TurnEvent): void {
    switch (e.type) {
      case 'data':
        for (const l of this.#listeners.data) l(e);
        return;
      case 'allocated':
        this.#outcome?.resolve({ kind: 'allocated' });
        return;
      case 'redirect':
        this.#ended = true;
        this.#timer.cancel();
        this.#outcome?.resolve({ kind: 'redirect', to: e.alternateServer, domain: e.alternateDomain });
        return;
      case 'refreshed':
        for (const l of this.#listeners.refresh) l(e.lifetime);
        return;
      case 'permission':
      case 'channel': {
        if (e.op === undefined) {
          if (e.error) for (const l of this.#listeners.error) l(e.error);
          return;
        }
        const w = this.#ops.get(e.op);
        this.#ops.delete(e.op);
        if (e.error) w?.reject(e.error);
        else w?.resolve();
        return;
      }
      case 'icmp':
        for (const l of this.#listeners.icmp) l(e.peer, e.icmp);
        return;
      case 'failed':
        this.#end(this.#endError ?? e.error);
        return;
      case 'closed':
        this.#end(this.#endError);
        return;
    }
  }

  /** The allocation ended: settle everything that waits, tell the listeners, close the socket. */
  #end(error: StunClientError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
    this.#timer.cancel();
    if (this.#outcome) {
      // Still connecting: connect() rejects and closes the socket; nobody listens yet.
      this.#outcome.reject(error ?? new StunClientError('ABORTED', 'TURN connect abandoned'));
      return;
    }
    const pending = [...this.#ops.values()];
    this.#ops.clear();
    for (const w of pending) w.reject(error ?? new StunClientError('ABORTED', 'the TURN client is closed'));
    const onClosed = this.#onClosed;
    this.#onClosed = undefined;
    onClosed?.();
    for (const l of this.#listeners.close) l(error);
    if (!this.#closed) void this.#socket?.close();
  }

  /** The socket failed, or an abort: end without deallocating. */
  #fail(error: StunClientError): void {
    if (this.#ended) return;
    this.#endError = error;
    this.#core.abort(error);
    this.#service();
  }

  /** `close()` waited long enough: give up on the deallocation's answer. */
  #abandon(): void {
    this.#core.abort();
    this.#service();
  }

  #arm(): void {
    this.#timer.set(this.#ended ? undefined : this.#core.pollTimeout());
  }
}

/** The IP of a peer given as an address, `"ip:port"`, `"[v6]:port"` or a bare IP. */
function peerIp(p: TurnPeerAddress): string {
  if (typeof p !== 'string') return p.address;
  return ipFamily(p) !== undefined ? p : toPeer(p).address;
}
