import { type StunMessage, StunClass, type TransportAddress, decodeStunMessage, verifyFingerprint } from '@nat/protocol';
import { type Retransmission, type RetransmissionOptions, resolveRetransmission } from './options.js';

/** How a transaction ended. */
export type TransactionResult =
  | {
      readonly kind: 'response';
      /** The matching success or error response. */
      readonly response: StunMessage;
      /** Where it came from, as the driver reported it. */
      readonly from: TransportAddress | undefined;
      /**
       * Time from the most recent transmission to the response. With retransmissions (see
       * `transmissions`) the response may answer an earlier copy, so this is a lower bound.
       */
      readonly rttMs: number;
      /** Requests sent, the first included. */
      readonly transmissions: number;
    }
  | { readonly kind: 'timeout'; readonly transmissions: number }
  | { readonly kind: 'cancelled'; readonly transmissions: number };

/** What a {@link StunTransaction} is made of. */
export interface StunTransactionInit extends RetransmissionOptions {
  /**
   * The encoded request (a STUN message of class Request, modern or classic). It is sent as is
   * on every transmission.
   */
  readonly request: Uint8Array;
  /** Where the request goes; carried along for the driver, never used by the core. */
  readonly destination?: TransportAddress;
}

/** The states of a {@link StunTransaction}. */
export type TransactionState = 'new' | 'running' | 'done';

/**
 * One STUN client transaction as a sans-I/O state machine (RFC 8489 section 6.2): no sockets,
 * no timers, no clock. The owner feeds it time and responses and asks it what to send and when
 * to wake up, in the manner of quinn-proto and str0m:
 *
 * ```ts
 * const t = new StunTransaction({ request });
 * t.start(now);
 * for (let bytes; (bytes = t.pollTransmit(now)); ) socket.send(bytes);
 * // later: on a datagram, t.handleResponse(message, now); on a timer, t.handleTimeout(now);
 * // then poll again; t.pollTimeout() says when to call handleTimeout next.
 * ```
 *
 * Over UDP the request is sent at 0, RTO, 3 RTO, 7 RTO, ... (RTO doubling after each
 * retransmission) until Rc requests have gone out, and the transaction fails Rm times the
 * initial RTO after the last one. Over a reliable transport it is sent once and fails after Ti.
 *
 * Responses are matched by transaction id: the 16 bytes 4-19 of the message, which is the
 * magic cookie plus the 96-bit id of RFC 8489, or the 128-bit id of a classic RFC 3489 message,
 * so classic responses match classic requests and nothing else.
 */
export class StunTransaction {
  /** The request's transaction id as a hex key, the same as `StunMessage.transactionKey`. */
  readonly key: string;
  /** The request's method; a response of another method does not match. */
  readonly method: number;
  /** True when the request is a classic RFC 3489 message (16-byte id, no magic cookie). */
  readonly classic: boolean;
  readonly request: Uint8Array;
  readonly destination: TransportAddress | undefined;
  /** The timing in force, defaults filled in. */
  readonly timing: Retransmission;

  #state: TransactionState = 'new';
  #result: TransactionResult | undefined;
  /** Transmissions decided so far (queued or sent). */
  #transmissions = 0;
  /** A transmission is due and has not been polled yet. */
  #pending = false;
  #lastSentAt = 0;
  /** The RTO that follows the next transmission. */
  #interval: number;
  #timer: number | undefined;

  /**
   * @throws DecodeError when `request` is not a STUN message; RangeError when it is not of
   * class Request or a timing value is not positive.
   */
  constructor(init: StunTransactionInit) {
    const message = decodeStunMessage(init.request);
    if (message.class !== StunClass.Request) throw new RangeError('a STUN transaction starts with a request');
    this.key = message.transactionKey;
    this.method = message.method;
    this.classic = message.classic;
    this.request = init.request;
    this.destination = init.destination;
    this.timing = resolveRetransmission(init);
    this.#interval = this.timing.rto;
  }

  get state(): TransactionState {
    return this.#state;
  }

  /** How it ended, once `state` is `'done'`. */
  get result(): TransactionResult | undefined {
    return this.#result;
  }

  /** Requests sent or queued so far. */
  get transmissions(): number {
    return this.#transmissions;
  }

  /** Starts the transaction at `now`: the first request is due at once. */
  start(now: number): void {
    if (this.#state !== 'new') throw new Error('transaction already started');
    this.#state = 'running';
    this.#queueTransmission(now);
  }

  /**
   * The request bytes when a transmission is due, otherwise `undefined`. Call until it returns
   * `undefined` after every `start`, `handleTimeout` and `handleResponse`.
   */
  pollTransmit(now: number): Uint8Array | undefined {
    if (!this.#pending || this.#state !== 'running') return undefined;
    this.#pending = false;
    this.#lastSentAt = now;
    return this.request;
  }

  /** When `handleTimeout` should next be called, or `undefined` when nothing is waited for. */
  pollTimeout(): number | undefined {
    return this.#state === 'running' ? this.#timer : undefined;
  }

  /** Advances time: retransmits or fails the transaction when its timer has expired. */
  handleTimeout(now: number): void {
    if (this.#state !== 'running' || this.#timer === undefined || now < this.#timer) return;
    const t = this.timing;
    if (t.reliable || this.#transmissions >= t.rc) {
      this.#finish({ kind: 'timeout', transmissions: this.#transmissions });
      return;
    }
    // RFC 8489 section 6.2.1: the RTO doubles after each retransmission.
    this.#interval *= 2;
    this.#queueTransmission(now);
  }

  /**
   * Offers a received message. Returns true when it answers this transaction (a success or
   * error response of the same method and transaction id), which ends the transaction. A
   * message with a FINGERPRINT that does not verify is not taken (RFC 8489 section 14.7).
   */
  handleResponse(message: StunMessage, now: number, from?: TransportAddress): boolean {
    if (!this.matches(message)) return false;
    if (message.fingerprintOffset >= 0 && !verifyFingerprint(message)) return false;
    this.#finish({
      kind: 'response',
      response: message,
      from,
      rttMs: now - this.#lastSentAt,
      transmissions: this.#transmissions,
    });
    return true;
  }

  /** True when `message` is a response to this request: class, method and transaction id. */
  matches(message: StunMessage): boolean {
    if (this.#state !== 'running') return false;
    if (message.class !== StunClass.SuccessResponse && message.class !== StunClass.ErrorResponse) return false;
    return message.method === this.method && message.transactionKey === this.key;
  }

  /** Ends the transaction without a result: nothing more is sent. */
  cancel(): void {
    if (this.#state === 'done') return;
    this.#finish({ kind: 'cancelled', transmissions: this.#transmissions });
  }

  #queueTransmission(now: number): void {
    this.#transmissions++;
    this.#pending = true;
    this.#lastSentAt = now;
    const t = this.timing;
    if (t.reliable) {
      this.#timer = now + t.ti;
    } else if (this.#transmissions >= t.rc) {
      // RFC 8489 section 6.2.1: after the last request, wait Rm times the initial RTO.
      this.#timer = now + t.rm * t.rto;
    } else {
      this.#timer = now + this.#interval;
    }
  }

  #finish(result: TransactionResult): void {
    this.#state = 'done';
    this.#result = result;
    this.#pending = false;
    this.#timer = undefined;
  }
}
