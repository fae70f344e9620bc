/**
 * RFC 5780 section 4.6: how long a NAT keeps an idle UDP binding. Opt-in, because it takes
 * minutes on a real NAT.
 *
 * One probe of interval T: a fresh socket X sends a Binding request to the server and learns
 * its mapped address; after T of silence a second socket Y sends a Binding request with
 * RESPONSE-PORT set to X's mapped port, so the server answers towards X's binding. When the
 * answer reaches X the binding outlived T; when it does not, it had expired. The search runs
 * several probes at once: first a doubling ladder of intervals, then evenly spaced intervals
 * inside the bracket found, and a probe longer than one already found dead is abandoned.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TransportAddress } from '@nat/protocol';
import { encodeBindingRequest, effectiveLocalAddress } from '../binding.js';
import { type IncomingMessage, StunUdpSocket } from '../driver/udp.js';
import { abortError, isStunClientError } from '../errors.js';
import { type ServerAddress, resolveServer } from '../resolve.js';
import { type RetransmissionOptions, transactionBudget } from '../transaction/options.js';
import { DISCOVERY_RETRANSMISSION, type DiscoveryProgress, type ProbeContext, runFirstTest } from './probes.js';

/** Settings of the interval search. All in milliseconds. */
export interface BindingLifetimeSearchOptions {
  /** Shortest interval tried. Default 5000. */
  readonly minIntervalMs?: number;
  /** Longest interval tried; a binding alive that long is reported as "at least" this. Default 320000. */
  readonly maxIntervalMs?: number;
  /** Stop once the bracket (longest alive, shortest dead) is this narrow. Default 5000. */
  readonly precisionMs?: number;
  /** Probes per refining round. Default 4. */
  readonly parallelProbes?: number;
}

/**
 * The interval search as a pure state machine: `nextRound()` says which intervals to probe
 * (all at once), `record()` takes each result. It assumes a binding alive after T is alive after
 * any shorter interval; contradicting results are reconciled by trusting the shortest dead one.
 */
export class BindingLifetimeSearch {
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly precisionMs: number;
  readonly parallelProbes: number;
  #alive = 0;
  #dead: number | undefined;
  #rounds = 0;

  constructor(options: BindingLifetimeSearchOptions = {}) {
    this.minIntervalMs = options.minIntervalMs ?? 5000;
    this.maxIntervalMs = options.maxIntervalMs ?? 320_000;
    this.precisionMs = options.precisionMs ?? 5000;
    this.parallelProbes = options.parallelProbes ?? 4;
    if (!(this.minIntervalMs > 0 && this.maxIntervalMs >= this.minIntervalMs && this.precisionMs > 0 && this.parallelProbes >= 1)) {
      throw new RangeError('binding lifetime search: need 0 < minIntervalMs <= maxIntervalMs, precisionMs > 0, parallelProbes >= 1');
    }
  }

  /** The longest interval the binding is known to have survived (0 before any probe). */
  get aliveMs(): number {
    return this.#alive;
  }

  /** The shortest interval after which the binding was found expired, if any. */
  get deadMs(): number | undefined {
    return this.#dead;
  }

  /** True when the bracket is narrow enough, or the binding survived the longest interval. */
  get done(): boolean {
    if (this.#dead === undefined) return this.#alive >= this.maxIntervalMs;
    return this.#dead - this.#alive <= this.precisionMs;
  }

  /** The intervals to probe next, shortest first; empty when done. */
  nextRound(): number[] {
    if (this.done) return [];
    const round = this.#rounds++;
    if (round === 0) {
      const ladder: number[] = [];
      for (let t = this.minIntervalMs; t < this.maxIntervalMs; t *= 2) ladder.push(Math.round(t));
      ladder.push(this.maxIntervalMs);
      return ladder;
    }
    const lo = this.#alive;
    const hi = this.#dead ?? this.maxIntervalMs;
    const k = this.#dead === undefined ? this.parallelProbes - 1 : this.parallelProbes;
    const out: number[] = [];
    for (let i = 1; i <= k; i++) out.push(Math.round(lo + ((hi - lo) * i) / (k + 1)));
    if (this.#dead === undefined) out.push(this.maxIntervalMs);
    return [...new Set(out)].filter((t) => t > lo && t <= hi);
  }

  /** Records one probe's result. */
  record(intervalMs: number, alive: boolean): void {
    if (alive) {
      if (this.#dead === undefined || intervalMs < this.#dead) this.#alive = Math.max(this.#alive, intervalMs);
    } else {
      this.#dead = this.#dead === undefined ? intervalMs : Math.min(this.#dead, intervalMs);
      if (this.#alive >= this.#dead) this.#alive = 0;
    }
  }
}

/** Options of {@link measureBindingLifetime}. */
export interface BindingLifetimeOptions extends BindingLifetimeSearchOptions, RetransmissionOptions {
  /** The STUN server; it must support RESPONSE-PORT (RFC 5780). */
  readonly server: ServerAddress;
  /** Local IP address to send from. */
  readonly localAddress?: string;
  /** Give up searching after this long, reporting the bracket found so far. Default 900000 (15 min). */
  readonly maxTotalMs?: number;
  /** Progress: one report per probe started and finished. */
  readonly onProgress?: (p: DiscoveryProgress) => void;
  readonly signal?: AbortSignal;
  /** Send classic requests (not useful: RESPONSE-PORT is RFC 5780). Default false. */
  readonly classic?: boolean;
}

/** One probe's result. */
export interface LifetimeProbe {
  readonly intervalMs: number;
  /** true: the binding survived the interval; false: it had expired; null: inconclusive. */
  readonly alive: boolean | null;
}

/** The result of {@link measureBindingLifetime}. */
export interface BindingLifetimeResult {
  /**
   * The longest idle interval the binding survived, in seconds: a lower bound of the binding
   * lifetime (within `precisionMs` of it when `upperBoundSeconds` is set). Null when the test
   * could not run (see `reason`).
   */
  readonly lifetimeSeconds: number | null;
  /** The shortest interval after which the binding had expired, in seconds, if one was found. */
  readonly upperBoundSeconds: number | null;
  /** Whether the search reached its precision (false: it hit `maxTotalMs` or `maxIntervalMs`). */
  readonly converged: boolean;
  readonly probes: readonly LifetimeProbe[];
  /** One line: how the search ended. */
  readonly reason: string;
}

type ProbeOutcome = 'alive' | 'dead' | 'unsupported' | 'failed';

/**
 * Measures the binding lifetime (RFC 5780 section 4.6) by a search over idle intervals.
 * Takes up to `maxTotalMs`; each probe uses its own socket. Rejects only when aborted
 * (`ABORTED`) or when the server address is bad (`BAD_ADDRESS`).
 */
export async function measureBindingLifetime(options: BindingLifetimeOptions): Promise<BindingLifetimeResult> {
  const started = performance.now();
  const { address: server } = await resolveServer(options.server);
  const timing: RetransmissionOptions = {
    rto: options.rto ?? DISCOVERY_RETRANSMISSION.rto,
    rc: options.rc ?? DISCOVERY_RETRANSMISSION.rc,
    rm: options.rm ?? DISCOVERY_RETRANSMISSION.rm,
  };
  const budget = transactionBudget(timing);
  const maxTotal = options.maxTotalMs ?? 900_000;
  const search = new BindingLifetimeSearch(options);
  const probes: LifetimeProbe[] = [];
  const progress = (p: Omit<DiscoveryProgress, 'elapsedMs'>): void => options.onProgress?.({ ...p, elapsedMs: Math.round(performance.now() - started) });
  const signal = options.signal;
  if (signal?.aborted) throw abortError(signal, 'binding lifetime test');

  const sender = await StunUdpSocket.open({
    family: server.family,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(signal ? { signal } : {}),
  });

  const probe = async (intervalMs: number, roundSignal: AbortSignal): Promise<ProbeOutcome> => {
    const x = await StunUdpSocket.open({
      family: server.family,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      signal: roundSignal,
    });
    try {
      const ctx: ProbeContext = {
        socket: x,
        local: await effectiveLocalAddress(x.localAddress, server),
        timing,
        request: { classic: options.classic === true },
        signal: roundSignal,
        progress: () => {},
      };
      const first = await runFirstTest(ctx, 'binding-lifetime-I', server);
      if (first.outcome.kind !== 'response') return 'failed';
      const mapped: TransportAddress = first.outcome.mapped;
      try {
        await sleep(intervalMs, undefined, { signal: roundSignal });
      } catch {
        throw abortError(roundSignal, 'binding lifetime probe');
      }
      const request = encodeBindingRequest({ classic: options.classic === true, responsePort: mapped.port });
      const key = Buffer.from(request.subarray(4, 20)).toString('hex');
      const seen = x.waitForMessage((m) => m.message.transactionKey === key, { timeoutMs: budget, signal: roundSignal });
      seen.catch(() => undefined); // raced below; never left unhandled
      // The request's own transaction ends when its response reaches X (no response ever comes
      // back to Y then): it is cancelled below. A response to Y means RESPONSE-PORT was ignored.
      const requestAbort = new AbortController();
      const stop = (): void => requestAbort.abort();
      roundSignal.addEventListener('abort', stop, { once: true });
      const direct = sender.request(request, server, { ...timing, signal: requestAbort.signal }).then(
        () => 'unsupported' as const,
        (e: unknown) => (isStunClientError(e, 'ERROR_RESPONSE') ? ('unsupported' as const) : undefined),
      );
      try {
        const viaDirect = direct.then((d): Promise<IncomingMessage | 'unsupported' | undefined> | 'unsupported' => d ?? seen);
        const got = await Promise.race([seen, viaDirect]);
        if (got === 'unsupported') return 'unsupported';
        return got ? 'alive' : 'dead';
      } finally {
        roundSignal.removeEventListener('abort', stop);
        requestAbort.abort();
      }
    } finally {
      await x.close();
    }
  };

  const finish = (reason: string): BindingLifetimeResult => {
    progress({ test: 'binding-lifetime', state: 'done', detail: reason });
    return {
      lifetimeSeconds: search.aliveMs / 1000,
      upperBoundSeconds: search.deadMs === undefined ? null : search.deadMs / 1000,
      converged: search.done && search.deadMs !== undefined,
      probes,
      reason,
    };
  };

  try {
    // A zero-interval probe first: it shows whether the server honours RESPONSE-PORT at all.
    progress({ test: 'binding-lifetime', state: 'start', detail: 'checking that the server honours RESPONSE-PORT' });
    const check = await probe(0, signal ?? new AbortController().signal).catch((e: unknown) => {
      if (isStunClientError(e, 'ABORTED')) throw e;
      return 'failed' as const;
    });
    if (check !== 'alive') {
      const reason =
        check === 'unsupported'
          ? 'the server does not honour RESPONSE-PORT (RFC 5780), so the binding lifetime cannot be measured'
          : check === 'dead'
            ? 'no answer to a RESPONSE-PORT request arrived even with no wait: the server ignores such requests (RFC 3489 servers drop them) or the path filters them, so the binding lifetime cannot be measured'
            : 'Test I got no usable answer, so the binding lifetime cannot be measured';
      progress({ test: 'binding-lifetime', state: 'done', detail: reason });
      return { lifetimeSeconds: null, upperBoundSeconds: null, converged: false, probes, reason };
    }
    for (;;) {
      const elapsed = performance.now() - started;
      const round = search.nextRound().filter((t) => elapsed + t + 2 * budget <= maxTotal);
      if (search.done) {
        return finish(
          search.deadMs === undefined
            ? `the binding survived the longest interval tried (${search.maxIntervalMs / 1000} s)`
            : `the binding expires between ${search.aliveMs / 1000} s and ${search.deadMs / 1000} s of silence`,
        );
      }
      if (round.length === 0) return finish(`stopped after ${Math.round(elapsed / 1000)} s, the time budget (maxTotalMs)`);
      // One controller per probe: a probe found dead abandons every longer one (they would
      // find the binding dead too), and the caller's signal aborts them all.
      const controllers = new Map<number, AbortController>(round.map((t) => [t, new AbortController()]));
      const onAbort = (): void => {
        for (const c of controllers.values()) c.abort(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.all(
          round.map(async (t) => {
            const own = controllers.get(t)!;
            progress({ test: 'binding-lifetime', state: 'probe', detail: `probing an idle interval of ${t / 1000} s` });
            try {
              const r = await probe(t, own.signal);
              const alive = r === 'alive' ? true : r === 'dead' ? false : null;
              probes.push({ intervalMs: t, alive });
              if (alive !== null) search.record(t, alive);
              if (alive === false) {
                for (const [u, c] of controllers) if (u > t) c.abort();
              }
              progress({
                test: 'binding-lifetime',
                state: 'probe',
                detail: `after ${t / 1000} s idle the binding was ${alive === null ? 'not measurable' : alive ? 'alive' : 'expired'}`,
              });
            } catch (e) {
              if (!isStunClientError(e, 'ABORTED') || signal?.aborted) throw e;
              // abandoned: a shorter interval was already found dead
            }
          }),
        );
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
      if (signal?.aborted) throw abortError(signal, 'binding lifetime test');
    }
  } finally {
    await sender.close();
  }
}
