import { type StunMessage, StunClass, type TransportAddress } from '@nat/protocol';
import { type Retransmission, type RetransmissionOptions, RFC8489_RETRANSMISSION, resolveRetransmission } from './options.js';
import { StunTransaction } from './transaction.js';

/** A request due to be sent: from {@link TransactionManager.pollTransmit}. */
export interface Transmit {
  readonly bytes: Uint8Array;
  /** The transaction's destination (undefined on a connected stream). */
  readonly destination: TransportAddress | undefined;
  readonly transaction: StunTransaction;
}

/**
 * Many STUN transactions sharing one socket, still sans-I/O: it routes each received response
 * to its transaction by transaction id, merges their transmissions and timers, and hands back
 * the transactions that have finished. A driver needs one timer: the earliest `pollTimeout()`.
 */
export class TransactionManager {
  /** Timing used by transactions that do not set their own. */
  readonly defaults: Retransmission;
  readonly #running = new Map<string, StunTransaction>();
  /** Transactions with a transmission due, in the order they became due. */
  #due: StunTransaction[] = [];
  #completed: StunTransaction[] = [];

  constructor(defaults?: RetransmissionOptions) {
    this.defaults = resolveRetransmission(defaults, RFC8489_RETRANSMISSION);
  }

  /** Transactions still running. */
  get size(): number {
    return this.#running.size;
  }

  /** The running transaction with this key, if any. */
  get(key: string): StunTransaction | undefined {
    return this.#running.get(key);
  }

  /**
   * Starts a transaction for an encoded request at `now`; its first transmission is due at once.
   * `options` override the manager's defaults for this transaction only.
   *
   * @throws RangeError when a transaction with the same id is already running.
   */
  start(request: Uint8Array, destination: TransportAddress | undefined, now: number, options?: RetransmissionOptions): StunTransaction {
    const timing = resolveRetransmission(options, this.defaults);
    const t = new StunTransaction({ request, ...(destination ? { destination } : {}), ...timing });
    if (this.#running.has(t.key)) throw new RangeError(`transaction ${t.key} is already running`);
    this.#running.set(t.key, t);
    t.start(now);
    this.#due.push(t);
    return t;
  }

  /**
   * Offers a received message. Returns the transaction it completed, or undefined when it
   * answers none of them (a request, an indication, a stray or late response).
   */
  handleMessage(message: StunMessage, now: number, from?: TransportAddress): StunTransaction | undefined {
    if (message.class !== StunClass.SuccessResponse && message.class !== StunClass.ErrorResponse) return undefined;
    const t = this.#running.get(message.transactionKey);
    if (!t || !t.handleResponse(message, now, from)) return undefined;
    this.#complete(t);
    return t;
  }

  /** Advances time for every transaction whose timer has expired. */
  handleTimeout(now: number): void {
    for (const t of this.#running.values()) {
      const at = t.pollTimeout();
      if (at === undefined || at > now) continue;
      const before = t.transmissions;
      t.handleTimeout(now);
      if (t.state === 'done') this.#complete(t);
      else if (t.transmissions !== before) this.#due.push(t);
    }
  }

  /** The next request to send, or undefined when none is due. */
  pollTransmit(now: number): Transmit | undefined {
    while (this.#due.length > 0) {
      const t = this.#due.shift()!;
      const bytes = t.pollTransmit(now);
      if (bytes) return { bytes, destination: t.destination, transaction: t };
    }
    return undefined;
  }

  /** The earliest time `handleTimeout` must be called, or undefined when nothing is running. */
  pollTimeout(): number | undefined {
    let min: number | undefined;
    for (const t of this.#running.values()) {
      const at = t.pollTimeout();
      if (at !== undefined && (min === undefined || at < min)) min = at;
    }
    return min;
  }

  /** The next finished transaction (response, timeout or cancelled), in the order they finished. */
  pollCompleted(): StunTransaction | undefined {
    return this.#completed.shift();
  }

  /** Cancels a running transaction; it is then returned by `pollCompleted`. */
  cancel(key: string): boolean {
    const t = this.#running.get(key);
    if (!t) return false;
    t.cancel();
    this.#complete(t);
    return true;
  }

  #complete(t: StunTransaction): void {
    this.#running.delete(t.key);
    this.#completed.push(t);
  }
}
