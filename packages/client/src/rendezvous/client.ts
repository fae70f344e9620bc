import { sign } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { eventIterator } from '../event-iterator.js';
import {
  type ErrorMessage,
  MAX_SIGNALLING_MESSAGE_BYTES,
  type NameMessage,
  SIGNALLING_VERSION,
  type SignallingIceServer,
  type SignallingMessage,
  encodeSignallingMessage,
  registerSigningPayload,
  tryDecodeSignallingMessage,
} from '@nat/protocol';
import WebSocket from 'ws';
import { RendezvousError, StunClientError, abortError } from '../errors.js';
import { peerIdOf, rawPublicKeyBase64url } from './identity.js';
import { PingDeadline } from './liveness.js';
import { pinnedLookup } from './pinned-lookup.js';
import {
  type OutgoingRelayedMessage,
  RENDEZVOUS_REPLACED,
  type RelayedMessage,
  type RendezvousClientEvents,
  type RendezvousCloseInfo,
  type RendezvousConnectOptions,
  type RendezvousInbound,
  type RendezvousMessagesOptions,
} from './options.js';

const RELAYED_TYPES: ReadonlySet<string> = new Set(['offer', 'answer', 'candidate', 'end-of-candidates', 'bye']);

/**
 * A registered connection to a rendezvous service. {@link RendezvousClient.connect} opens the
 * WebSocket, answers the server's challenge with a signature of the identity key, and resolves
 * once the server confirmed the registration. Then {@link send} relays messages to other peers
 * and incoming ones arrive as `message` events or through {@link messages}. No reconnection:
 * after `close` connect again.
 */
export class RendezvousClient {
  /** This peer's id, as the server confirmed it. */
  readonly id: string;
  /** The service URL. */
  readonly url: string;
  /** The address connected to, when it was given ({@link RendezvousConnectOptions.address}). */
  readonly address: string | undefined;
  readonly #ws: WebSocket;
  readonly #listeners: { [E in keyof RendezvousClientEvents]: Set<RendezvousClientEvents[E]> } = { message: new Set(), close: new Set() };
  readonly #pings = new Map<string, (answered: boolean) => void>();
  readonly #nameRequests = new Map<string, (answer: NameMessage | ErrorMessage | undefined) => void>();
  readonly #maxBytes: number;
  #iceServers: readonly SignallingIceServer[] = [];
  #iceServersExpireAt: number | undefined;
  #nextId = 0;
  #liveness: PingDeadline | undefined;
  #silence: string | undefined;
  #closeInfo: RendezvousCloseInfo | undefined;
  readonly #closedPromise: Promise<RendezvousCloseInfo>;
  #registered: ((m: SignallingMessage) => void) | undefined;

  private constructor(url: string, address: string | undefined, id: string, ws: WebSocket, maxBytes: number) {
    this.url = url;
    this.address = address;
    this.id = id;
    this.#ws = ws;
    this.#maxBytes = maxBytes;
    this.#closedPromise = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#liveness?.stop();
        this.#closeInfo = { code, reason: this.#silence ?? reason.toString('utf8') };
        for (const wake of this.#pings.values()) wake(false);
        this.#pings.clear();
        for (const wake of this.#nameRequests.values()) wake(undefined);
        this.#nameRequests.clear();
        for (const l of this.#listeners.close) l(this.#closeInfo);
        resolve(this.#closeInfo);
      });
    });
    // A socket error is always followed by 'close', which is where it is reported.
    ws.on('error', () => {});
    ws.on('pong', () => this.#liveness?.heard());
    ws.on('message', (data, isBinary) => this.#receive(data, isBinary));
  }

  /**
   * Connects to the rendezvous service at `url` and registers `identity`. Rejects with a
   * StunClientError: `BAD_ADDRESS` (not a ws:/wss: URL), `SOCKET` (connection failed or closed),
   * `ERROR_RESPONSE` (the server refused; `reason` is the signalling error code, e.g.
   * `unauthorized`), `BAD_RESPONSE` (the server broke the protocol), `TIMEOUT` or `ABORTED`.
   */
  static async connect(options: RendezvousConnectOptions): Promise<RendezvousClient> {
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal, 'rendezvous connect');
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (cause) {
      throw new StunClientError('BAD_ADDRESS', `not a URL: ${options.url}`, { cause });
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new StunClientError('BAD_ADDRESS', `not a ws: or wss: URL: ${options.url}`);
    if (options.identity.privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('identity.privateKey is not an Ed25519 key');
    const id = peerIdOf(options.identity);
    const publicKey = rawPublicKeyBase64url(options.identity.publicKey);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const maxBytes = options.maxMessageBytes ?? MAX_SIGNALLING_MESSAGE_BYTES;
    const headers = options.token === undefined ? undefined : { authorization: `Bearer ${options.token}` };
    // `lookup` goes through ws to the socket's connect (not in ws's option types)
    const wsOptions: WebSocket.ClientOptions & { lookup?: LookupFunction } = {
      ...options.tls,
      ...(headers ? { headers } : {}),
      ...(options.address === undefined ? {} : { lookup: pinnedLookup(options.address) }),
      maxPayload: maxBytes,
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
    };
    const ws = new WebSocket(url, wsOptions);
    const client = new RendezvousClient(options.url, options.address, id, ws, maxBytes);

    return new Promise<RendezvousClient>((resolve, reject) => {
      let settled = false;
      const finish = (error: StunClientError | RendezvousError | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        ws.off('error', onError);
        ws.off('close', onClose);
        client.#registered = undefined;
        if (error === undefined) {
          client.#startLiveness(options.heartbeatIntervalMs ?? 30_000, options.pingIntervalMs ?? 0, options.pingTimeoutMs ?? 1500);
          resolve(client);
        } else {
          ws.terminate();
          reject(error);
        }
      };
      const onAbort = (): void => finish(abortError(signal, 'rendezvous connect'));
      const onError = (cause: Error): void => {
        // An HTTP answer instead of the upgrade (401 without the invite token, 503 over a share) is
        // the server refusing, not a server that did not answer: a RendezvousError `http-refused`.
        const status = /server response: (\d{3})\b/.exec(cause.message)?.[1];
        const hint =
          status === '401' ? ' (a rendezvous that needs an invite token answers 401: give its token, nat --rendezvous-token or NAT_RENDEZVOUS_TOKEN)' : '';
        const message = `rendezvous ${options.url}: ${cause.message}${hint}`;
        finish(status === undefined ? new StunClientError('SOCKET', message, { cause }) : new RendezvousError('http-refused', message, { cause }));
      };
      const onClose = (code: number, reason: Buffer): void =>
        finish(new StunClientError('SOCKET', `rendezvous ${options.url} closed the connection before registering (${code} ${reason.toString('utf8')})`));
      const timer = setTimeout(() => finish(new StunClientError('TIMEOUT', `rendezvous ${options.url}: not registered within ${timeoutMs} ms`)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('error', onError);
      ws.on('close', onClose);
      let nonce: string | undefined;
      client.#registered = (m) => {
        if (nonce === undefined) {
          if (m.type !== 'challenge') return finish(new StunClientError('BAD_RESPONSE', `rendezvous: expected a challenge, got ${m.type}`));
          nonce = m.nonce;
          const signature = sign(null, registerSigningPayload(nonce, id), options.identity.privateKey).toString('base64url');
          client.#sendRaw({ v: SIGNALLING_VERSION, type: 'register', id: 'register', publicKey, signature });
          return;
        }
        if (m.type === 'error') {
          return finish(new RendezvousError(m.code, `rendezvous refused the registration: ${m.code}: ${m.message}`));
        }
        if (m.type !== 'registered') return;
        if (m.peerId !== id) return finish(new StunClientError('BAD_RESPONSE', `rendezvous registered ${m.peerId}, not ${id}`));
        client.#iceServers = m.iceServers ?? [];
        client.#iceServersExpireAt = m.ttl === undefined ? undefined : Date.now() + m.ttl * 1000;
        finish(undefined);
      };
    });
  }

  /** STUN/TURN servers the rendezvous service offered (with TURN credentials when it has them). */
  get iceServers(): readonly SignallingIceServer[] {
    return this.#iceServers;
  }

  /** When the credentials of {@link iceServers} expire (ms since the epoch), if the server said. */
  get iceServersExpireAt(): number | undefined {
    return this.#iceServersExpireAt;
  }

  /** How the connection ended, once it has. */
  get closeInfo(): RendezvousCloseInfo | undefined {
    return this.#closeInfo;
  }

  /**
   * True when the server closed the connection because another connection registered the same
   * peer id (close code 4000 "replaced"): another process uses this identity, and connecting
   * again would only close that one in turn.
   */
  get replaced(): boolean {
    return this.#closeInfo?.code === RENDEZVOUS_REPLACED;
  }

  /** Resolves when the connection has ended, whoever ended it. */
  get closed(): Promise<RendezvousCloseInfo> {
    return this.#closedPromise;
  }

  /** Adds a listener. */
  on<E extends keyof RendezvousClientEvents>(event: E, listener: RendezvousClientEvents[E]): this {
    (this.#listeners[event] as Set<RendezvousClientEvents[E]>).add(listener);
    return this;
  }

  /** Removes a listener. */
  off<E extends keyof RendezvousClientEvents>(event: E, listener: RendezvousClientEvents[E]): this {
    (this.#listeners[event] as Set<RendezvousClientEvents[E]>).delete(listener);
    return this;
  }

  /**
   * Sends a message to another peer through the server, filling in `v`, `from` (this peer's id)
   * and `id` when missing; returns the `id`, which the server's `error` (`peer-offline`...)
   * names as `ref`. Throws StunClientError `SOCKET` when the connection is not open, and the
   * protocol's EncodeError when the message does not match its schema.
   */
  send(message: OutgoingRelayedMessage): string {
    if (!RELAYED_TYPES.has(message.type)) throw new TypeError(`not a relayed message type: ${String(message.type)}`);
    const id = message.id ?? this.#newId();
    this.#sendRaw({ ...message, v: SIGNALLING_VERSION, id, from: this.id } as RelayedMessage);
    return id;
  }

  /**
   * Sends a protocol `ping` and resolves with the round-trip time in ms when the `pong` comes.
   * Rejects with `TIMEOUT` (default 5,000 ms), `ABORTED`, or `SOCKET` when the connection ends.
   */
  ping(options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {}): Promise<number> {
    const id = this.#newId();
    const started = performance.now();
    this.#sendRaw({ v: SIGNALLING_VERSION, type: 'ping', id });
    return new Promise((resolve, reject) => {
      const done = (error: StunClientError | undefined): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.#pings.delete(id);
        if (error) reject(error);
        else resolve(performance.now() - started);
      };
      const onAbort = (): void => done(abortError(options.signal, 'rendezvous ping'));
      const timer = setTimeout(() => done(new StunClientError('TIMEOUT', 'rendezvous ping: no pong')), options.timeoutMs ?? 5000);
      this.#pings.set(id, (answered) => done(answered ? undefined : new StunClientError('SOCKET', 'rendezvous connection closed')));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
    });
  }

  /**
   * Claims `name` for this peer (`claim-name`): afterwards others find this peer by the name
   * with {@link resolveName}, and no other key can claim it. Resolves with the owner (this peer).
   * Rejects with `ERROR_RESPONSE` (`reason` `name-taken`, or `bad-message` for a name that is
   * not a DNS label), `TIMEOUT` (default 5,000 ms), `SOCKET`.
   */
  claimName(name: string, options: { readonly timeoutMs?: number } = {}): Promise<{ readonly peerId: string; readonly online: boolean }> {
    return this.#nameRequest('claim-name', name, options.timeoutMs ?? 5000);
  }

  /**
   * The peer that claimed `name` (`resolve-name`), and whether it is connected now. Rejects with
   * `ERROR_RESPONSE` (`reason` `unknown-name`), `TIMEOUT` (default 5,000 ms), `SOCKET`.
   */
  resolveName(name: string, options: { readonly timeoutMs?: number } = {}): Promise<{ readonly peerId: string; readonly online: boolean }> {
    return this.#nameRequest('resolve-name', name, options.timeoutMs ?? 5000);
  }

  #nameRequest(type: 'claim-name' | 'resolve-name', name: string, timeoutMs: number): Promise<{ readonly peerId: string; readonly online: boolean }> {
    const id = this.#newId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(undefined, new StunClientError('TIMEOUT', `rendezvous ${type} ${name}: no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const done = (answer: NameMessage | ErrorMessage | undefined, error?: StunClientError | RendezvousError): void => {
        clearTimeout(timer);
        this.#nameRequests.delete(id);
        if (error !== undefined) reject(error);
        else if (answer === undefined) reject(new StunClientError('SOCKET', 'rendezvous connection closed'));
        else if (answer.type === 'error') reject(new RendezvousError(answer.code, `rendezvous ${type} ${name}: ${answer.code}: ${answer.message}`));
        else resolve({ peerId: answer.peerId, online: answer.online });
      };
      this.#nameRequests.set(id, (answer) => done(answer));
      try {
        this.#sendRaw({ v: SIGNALLING_VERSION, type, id, name });
      } catch (e) {
        done(undefined, e instanceof StunClientError ? e : new RendezvousError('bad-message', `rendezvous ${type}: ${(e as Error).message}`, { cause: e }));
      }
    });
  }

  /**
   * The incoming messages (relayed ones and the server's errors) as an async iterator; it ends
   * when the connection closes or `signal` fires.
   */
  messages(options: RendezvousMessagesOptions = {}): AsyncIterableIterator<RendezvousInbound> {
    return eventIterator<RendezvousInbound>({
      ended: this.#closeInfo !== undefined,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.bufferSize !== undefined ? { bufferSize: options.bufferSize } : {}),
      subscribe: (push, end) => {
        this.on('message', push);
        this.on('close', end);
        return () => {
          this.off('message', push);
          this.off('close', end);
        };
      },
    });
  }

  /** Same as {@link messages} with the defaults. */
  [Symbol.asyncIterator](): AsyncIterableIterator<RendezvousInbound> {
    return this.messages();
  }

  /**
   * Closes the connection (code 1000) and resolves once it is closed; a server that does not
   * answer the close handshake within 2 s is cut off. Idempotent; never rejects.
   */
  async close(): Promise<void> {
    if (this.#closeInfo === undefined) {
      const cutoff = setTimeout(() => this.#ws.terminate(), 2000);
      if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
      else this.#ws.close(1000, 'bye');
      await this.#closedPromise;
      clearTimeout(cutoff);
    }
  }

  #newId(): string {
    return `m${++this.#nextId}`;
  }

  #sendRaw(message: SignallingMessage): void {
    const text = encodeSignallingMessage(message);
    if (this.#ws.readyState !== WebSocket.OPEN) throw new StunClientError('SOCKET', 'rendezvous connection is not open');
    this.#ws.send(text);
  }

  /**
   * One heartbeat of WebSocket ping frames (every WebSocket server answers them by itself, RFC
   * 6455 section 5.5.2: no JSON, no token of the connection's message rate limit): the fast one
   * when `pingIntervalMs` asks for it (it notices everything the slow one would, sooner; its
   * close reason says so), else a ping every `heartbeatMs`, the connection dropped when nothing
   * came back by the next.
   */
  #startLiveness(heartbeatMs: number, pingIntervalMs: number, pingTimeoutMs: number): void {
    const fast = pingIntervalMs > 0;
    const intervalMs = fast ? pingIntervalMs : heartbeatMs;
    if (intervalMs <= 0) return;
    const timeoutMs = fast ? pingTimeoutMs : heartbeatMs;
    this.#liveness = new PingDeadline(
      intervalMs,
      timeoutMs,
      () => this.#ws.ping(),
      () => {
        if (fast) this.#silence = `no answer to ping within ${timeoutMs} ms`;
        this.#ws.terminate();
      },
    );
  }

  #receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.#liveness?.heard();
    if (isBinary) return;
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    const parsed = tryDecodeSignallingMessage(text, { maxBytes: this.#maxBytes });
    if (!parsed.ok) return; // a server speaking nonsense is ignored, message by message
    const m = parsed.message;
    if (m.type === 'ping') {
      if (this.#ws.readyState === WebSocket.OPEN)
        this.#sendRaw(m.id === undefined ? { v: SIGNALLING_VERSION, type: 'pong' } : { v: SIGNALLING_VERSION, type: 'pong', ref: m.id });
      return;
    }
    if (this.#registered !== undefined) {
      this.#registered(m);
      return;
    }
    if (m.type === 'pong') {
      if (m.ref !== undefined) this.#pings.get(m.ref)?.(true);
      return;
    }
    if ((m.type === 'name' || m.type === 'error') && m.ref !== undefined && this.#nameRequests.has(m.ref)) {
      this.#nameRequests.get(m.ref)?.(m);
      return;
    }
    if (m.type === 'error' || (RELAYED_TYPES.has(m.type) && 'to' in m && m.to === this.id)) {
      for (const l of this.#listeners.message) l(m as RendezvousInbound);
    }
  }
}
