import { type StunMessage, StunClass, type TransportAddress, attributeName, Attr } from '@nat/protocol';
import { StunClientError, abortError } from '../errors.js';
import { TransactionManager, type Transmit } from '../transaction/manager.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import type { StunTransaction } from '../transaction/transaction.js';
import { WakeTimer } from './wake-timer.js';

/** Options of one request made through a driver. */
export interface RequestOptions extends RetransmissionOptions {
  /** Aborts the request: it stops retransmitting and rejects with code `ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called each time a copy of the request goes to the socket: 1 for the first, 2 for the first retransmission, ... (for progress output). */
  readonly onTransmit?: (transmission: number) => void;
}

/** A response to a request made through a driver. */
export interface StunResponse {
  /** The success response. */
  readonly response: StunMessage;
  /** The address the response came from (the datagram's source, or the stream's peer). */
  readonly from: TransportAddress;
  /** Time from the most recent transmission to the response, in milliseconds. */
  readonly rttMs: number;
  /** Requests sent, the first included. */
  readonly transmissions: number;
}

interface Pending {
  readonly resolve: (r: StunResponse) => void;
  readonly reject: (e: StunClientError) => void;
  readonly cleanup: () => void;
  readonly transaction: StunTransaction;
  readonly onTransmit: ((transmission: number) => void) | undefined;
  failure?: StunClientError;
}

/** A monotonic clock in milliseconds. */
export type Clock = () => number;

const monotonic: Clock = () => performance.now();

/**
 * The glue between a {@link TransactionManager} and real time: one `setTimeout` for the earliest
 * deadline, promises for results, AbortSignals. The socket side is left to the caller, which
 * passes a `send` function and feeds received messages to {@link receive}. Internal to the
 * drivers.
 */
export class TransactionRunner {
  readonly manager: TransactionManager;
  readonly #send: (t: Transmit) => void;
  readonly #clock: Clock;
  readonly #pending = new Map<string, Pending>();
  readonly #timer = new WakeTimer(
    () => this.#drive(),
    () => this.#clock(),
  );
  #closed: StunClientError | undefined;

  constructor(defaults: RetransmissionOptions | undefined, send: (t: Transmit) => void, clock: Clock = monotonic) {
    this.manager = new TransactionManager(defaults);
    this.#send = send;
    this.#clock = clock;
  }

  /** Requests waiting for a response. */
  get size(): number {
    return this.#pending.size;
  }

  /** Starts a transaction and resolves with its success response. */
  request(bytes: Uint8Array, destination: TransportAddress | undefined, options: RequestOptions = {}): Promise<StunResponse> {
    if (this.#closed) return Promise.reject(this.#closed);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal, 'STUN request'));
    return new Promise<StunResponse>((resolve, reject) => {
      let transaction: StunTransaction;
      try {
        transaction = this.manager.start(bytes, destination, this.#clock(), options);
      } catch (e) {
        reject(new StunClientError('SOCKET', `cannot start the transaction: ${(e as Error).message}`, { cause: e }));
        return;
      }
      const key = transaction.key;
      const onAbort = (): void => this.fail(key, abortError(signal, 'STUN request'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(key, {
        resolve,
        reject,
        transaction,
        onTransmit: options.onTransmit,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
      this.#drive();
    });
  }

  /**
   * Offers a received message; returns true when it completed a request (its promise settles),
   * false when it matched none (the caller may hand it to other listeners).
   */
  receive(message: StunMessage, from: TransportAddress): boolean {
    const t = this.manager.handleMessage(message, this.#clock(), from);
    if (!t) return false;
    this.#drive();
    return true;
  }

  /** Fails one request with `error` (a send error, an abort). */
  fail(key: string, error: StunClientError): void {
    const p = this.#pending.get(key);
    if (!p) return;
    p.failure = error;
    this.manager.cancel(key);
    this.#drive();
  }

  /** Fails every request with `error` and refuses new ones (the socket is gone). */
  close(error: StunClientError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const [key, p] of this.#pending) {
      p.failure ??= error;
      this.manager.cancel(key);
    }
    this.#drive();
    this.#timer.cancel();
  }

  #drive(): void {
    const now = this.#clock();
    this.manager.handleTimeout(now);
    if (!this.#closed) {
      for (let tx = this.manager.pollTransmit(now); tx; tx = this.manager.pollTransmit(now)) {
        this.#send(tx);
        this.#pending.get(tx.transaction.key)?.onTransmit?.(tx.transaction.transmissions);
      }
    }
    for (let t = this.manager.pollCompleted(); t; t = this.manager.pollCompleted()) this.#settle(t);
    this.#arm();
  }

  #settle(t: StunTransaction): void {
    const p = this.#pending.get(t.key);
    if (!p) return;
    this.#pending.delete(t.key);
    p.cleanup();
    const r = t.result;
    if (!r || r.kind === 'cancelled') {
      p.reject(p.failure ?? new StunClientError('ABORTED', 'STUN request cancelled'));
    } else if (r.kind === 'timeout') {
      const dest = t.destination ? ` from ${t.destination.address}:${t.destination.port}` : '';
      p.reject(new StunClientError('TIMEOUT', `no response${dest} after ${r.transmissions} request(s)`));
    } else if (r.response.class === StunClass.ErrorResponse) {
      p.reject(errorResponseError(r.response));
    } else {
      p.resolve({ response: r.response, from: r.from!, rttMs: r.rttMs, transmissions: r.transmissions });
    }
  }

  #arm(): void {
    this.#timer.set(this.#closed ? undefined : this.manager.pollTimeout());
  }
}

/** The ERROR_RESPONSE error for an error response, with its ERROR-CODE when it decodes. */
export function errorResponseError(response: StunMessage): StunClientError {
  let code: number | undefined;
  let reason: string | undefined;
  try {
    const ec = response.get(Attr.ErrorCode);
    code = ec?.code;
    reason = ec?.reason;
  } catch {
    // an undecodable ERROR-CODE: report the error response without it
  }
  let text = code === undefined ? 'error response without a valid ERROR-CODE' : `error response ${code}${reason ? ` ${reason}` : ''}`;
  if (code === 420) {
    try {
      const unknown = response.get(Attr.UnknownAttributes);
      if (unknown?.length) text += ` (UNKNOWN-ATTRIBUTES: ${unknown.map(attributeName).join(', ')})`;
    } catch {
      // ignore
    }
  }
  return new StunClientError('ERROR_RESPONSE', text, {
    response,
    ...(code === undefined ? {} : { stunErrorCode: code }),
    ...(reason === undefined ? {} : { reason }),
  });
}
