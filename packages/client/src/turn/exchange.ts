/**
 * The TURN client core's request exchange: requests signed with the long-term credentials
 * (RFC 8489 section 9.2: the first Allocate unsigned, a signed retry after its 401, a retry
 * with the new NONCE after a 438), sent and retransmitted through the client's
 * {@link TransactionManager}, their responses judged before a transaction takes them, and each
 * operation's outcome handed to the core: success, failure, or a 300 redirect. No I/O.
 */
import { StunClass, type StunMessage, type TransportAddress, encodeStunMessage } from '@nat/protocol';
import { errorResponseError } from '../driver/runner.js';
import { StunClientError } from '../errors.js';
import { TransactionManager } from '../transaction/manager.js';
import type { StunTransaction } from '../transaction/transaction.js';
import { LongTermCredentials, type SigningKey } from './credentials.js';
import type { TurnAllocationStats } from './events.js';
import { TURN_DEFAULTS, type TurnAllocationOptions } from './options.js';
import { refusalError } from './refusal.js';
import { METHOD, type Pending, type Plan, alternateOf, errorCodeOf, judgeResponse, methodLabel, requestAttributes, reworded } from './requests.js';

/** How an operation ended, once its retries are done. */
export type ExchangeOutcome =
  | { readonly kind: 'success'; readonly plan: Plan; readonly response: StunMessage }
  | { readonly kind: 'failure'; readonly plan: Plan; readonly error: StunClientError }
  | {
      readonly kind: 'redirect';
      readonly plan: Plan;
      readonly alternate: { readonly alternateServer: TransportAddress; readonly alternateDomain: string | undefined };
    };

/** What {@link TurnExchange} is made of. */
export interface TurnExchangeInit {
  readonly options: TurnAllocationOptions;
  /** TCP or TLS to the server: requests are sent once, and an unauthenticated response fails one. */
  readonly reliable: boolean;
  /** The core's output queue and counters. */
  readonly out: Uint8Array[];
  readonly stats: TurnAllocationStats;
  /** An operation ended. */
  readonly settled: (outcome: ExchangeOutcome, now: number) => void;
}

/** The request exchange of one allocation; see the module documentation. */
export class TurnExchange {
  readonly #init: TurnExchangeInit;
  readonly #credentials: LongTermCredentials;
  readonly #transactions: TransactionManager;
  readonly #fingerprint: boolean;
  readonly #pending = new Map<string, Pending>();

  constructor(init: TurnExchangeInit) {
    const o = init.options;
    this.#init = init;
    this.#fingerprint = o.fingerprint ?? true;
    this.#credentials = new LongTermCredentials(o.username, o.password, o.passwordAlgorithm ?? 'MD5');
    this.#transactions = new TransactionManager({ ...o.retransmission, reliable: init.reliable });
  }

  /** The realm the server gave, once challenged. */
  get realm(): string | undefined {
    return this.#credentials.realm;
  }

  /** When a transaction next needs the time, or undefined. */
  pollTimeout(): number | undefined {
    return this.#transactions.pollTimeout();
  }

  /** Retransmissions and transaction timeouts due at `now` (then {@link drive}). */
  handleTimeout(now: number): void {
    this.#transactions.handleTimeout(now);
  }

  /** Encodes and starts a plan's request, signed when `authenticated`. */
  request(plan: Plan, now: number, authenticated: boolean): void {
    const method = METHOD[plan.kind];
    const attributes = requestAttributes(plan, this.#init.options);
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
  drive(now: number): void {
    for (;;) {
      for (let tx = this.#transactions.pollTransmit(now); tx; tx = this.#transactions.pollTransmit(now)) {
        this.#init.out.push(tx.bytes);
        this.#init.stats.requests++;
      }
      const t = this.#transactions.pollCompleted();
      if (t === undefined) return;
      this.#settle(t, now);
    }
  }

  /** Cancels every request in flight; each fails with `error` (unless it had failed already). */
  cancelAll(error: StunClientError): void {
    for (const [key, p] of this.#pending) {
      p.failure ??= error;
      this.#transactions.cancel(key);
    }
  }

  /** Checks a response's integrity, then hands it to its transaction. */
  onResponse(message: StunMessage, now: number): void {
    const p = this.#pending.get(message.transactionKey);
    if (p === undefined || message.method !== p.method) return;
    const judged = judgeResponse(message, p, this.#init.reliable);
    if (judged.verdict === 'take') this.#transactions.handleMessage(message, now);
    else if (judged.verdict === 'discard') p.discarded++;
    else {
      p.failure = judged.error;
      this.#transactions.cancel(message.transactionKey);
    }
  }

  #failed(plan: Plan, error: StunClientError, now: number): void {
    this.#init.settled({ kind: 'failure', plan, error }, now);
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
      this.#init.settled({ kind: 'success', plan: p.plan, response: r.response }, now);
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
        this.request(plan, now, true);
        return;
      }
      this.#failed(plan, reworded(errorResponseError(response), 'the server refused the credentials (401 Unauthorized)'), now);
      return;
    }
    if (code === 438 && p.signing !== undefined && plan.staleRetries < TURN_DEFAULTS.maxStaleNonceRetries) {
      // RFC 8489 section 9.2.5: retry with the NONCE of the 438.
      if (this.#credentials.learnStaleNonce(response)) {
        plan.staleRetries++;
        this.request(plan, now, true);
        return;
      }
    }
    if (code === 300 && plan.kind === 'allocate') {
      const alternate = alternateOf(response);
      if (alternate === undefined) {
        this.#failed(plan, new StunClientError('BAD_RESPONSE', '300 Try Alternate without a valid ALTERNATE-SERVER', { response, stunErrorCode: 300 }), now);
        return;
      }
      this.#init.settled({ kind: 'redirect', plan, alternate }, now);
      return;
    }
    this.#failed(plan, refusalError(plan.kind, p.signing === undefined, response), now);
  }
}
