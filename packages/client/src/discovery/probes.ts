/**
 * Running one discovery test on a socket and reducing what happened to a {@link TestOutcome}.
 * Internal to discovery; exported from the package only through its types.
 *
 * @module
 */
import { type TransportAddress, canonicalIp } from '@nat/protocol';
import { type BindingRequestOptions, type StunBindingResult, encodeBindingRequest, parseBindingResponse } from '../binding.js';
import type { StunUdpSocket } from '../driver/udp.js';
import { StunClientError, isStunClientError } from '../errors.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import type { FirstTestOutcome, TestOutcome } from './outcome.js';

/**
 * Retransmission used by discovery unless told otherwise: RTO 250 ms, Rc 4, Rm 4. Requests go
 * out at 0, 250, 750 and 1750 ms and a test with no answer is given up at 2750 ms: three
 * requests may be lost (or a path may take up to a second on the last one) and a silent
 * network still gets its verdict in under 3 seconds, where RFC 8489's defaults (500 ms, 7, 16)
 * would wait 39.5 s for every test that expects no answer.
 */
export const DISCOVERY_RETRANSMISSION = Object.freeze({ rto: 250, rc: 4, rm: 4 }) satisfies RetransmissionOptions;

/** A progress report from a running discovery. */
export interface DiscoveryProgress {
  /** Which test: `mapping-I`, `filtering-II`, `hairpinning`, `binding-lifetime`, ... */
  readonly test: string;
  /** `start`, then one of `response`, `no-response`, `unusable`; `probe` for lifetime probes. */
  readonly state: 'start' | 'response' | 'no-response' | 'unusable' | 'probe' | 'done';
  /** A short human description. */
  readonly detail?: string;
  /** Milliseconds since the discovery started. */
  readonly elapsedMs: number;
}

/** What the tests of one socket share. */
export interface ProbeContext {
  readonly socket: StunUdpSocket;
  /** The socket's local address as the server would see it without NAT. */
  readonly local: TransportAddress;
  readonly timing: RetransmissionOptions;
  readonly request: Pick<BindingRequestOptions, 'classic' | 'fingerprint' | 'software' | 'padding'>;
  readonly signal: AbortSignal | undefined;
  readonly progress: (p: Omit<DiscoveryProgress, 'elapsedMs'>) => void;
}

/** The outcome of one test, and the response when there was a usable one. */
export interface ProbeResult<O> {
  readonly outcome: O;
  readonly binding?: StunBindingResult;
}

/** Where a CHANGE-REQUEST test's response must come from, relative to where the request went. */
export type ExpectedOrigin = 'any' | 'other-ip-and-port' | 'same-ip-other-port';

function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return canonicalIp(a) === canonicalIp(b);
  } catch {
    return false;
  }
}

/** Why a response came from the wrong address for its CHANGE-REQUEST, or undefined when right. */
export function originMismatch(expect: ExpectedOrigin, sentTo: TransportAddress, from: TransportAddress): string | undefined {
  const ipChanged = !sameIp(from.address, sentTo.address);
  const portChanged = from.port !== sentTo.port;
  if (expect === 'other-ip-and-port' && !(ipChanged && portChanged)) {
    return `answered from ${from.address}:${from.port}, not from another IP and port than ${sentTo.address}:${sentTo.port}: the server ignores CHANGE-REQUEST`;
  }
  if (expect === 'same-ip-other-port' && (ipChanged || !portChanged)) {
    return `answered from ${from.address}:${from.port}, not from another port of ${sentTo.address}: the server ignores CHANGE-REQUEST`;
  }
  return undefined;
}

/**
 * Sends one Binding request (with the given CHANGE-REQUEST flags) and reduces the result.
 * Rejects only when aborted.
 */
export async function runTest(
  ctx: ProbeContext,
  name: string,
  destination: TransportAddress,
  change: { changeIp?: boolean; changePort?: boolean },
  expect: ExpectedOrigin,
): Promise<ProbeResult<TestOutcome>> {
  ctx.progress({ test: name, state: 'start', detail: `to ${destination.address}:${destination.port}${describeChange(change)}` });
  const request = encodeBindingRequest({ ...ctx.request, ...change });
  let binding: StunBindingResult;
  try {
    const r = await ctx.socket.request(request, destination, { ...ctx.timing, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    binding = parseBindingResponse(r, ctx.local);
  } catch (e) {
    if (!isStunClientError(e) || e.code === 'ABORTED') throw e;
    if (e.code === 'TIMEOUT' || e.code === 'SOCKET') {
      ctx.progress({ test: name, state: 'no-response', detail: e.message });
      return { outcome: { kind: 'no-response' } };
    }
    ctx.progress({ test: name, state: 'unusable', detail: e.message });
    return { outcome: { kind: 'unusable', reason: e.message } };
  }
  const wrong = originMismatch(expect, destination, binding.sourceAddress);
  if (wrong) {
    ctx.progress({ test: name, state: 'unusable', detail: wrong });
    return { outcome: { kind: 'unusable', reason: wrong }, binding };
  }
  ctx.progress({
    test: name,
    state: 'response',
    detail: `mapped ${binding.mappedAddress.address}:${binding.mappedAddress.port} from ${binding.sourceAddress.address}:${binding.sourceAddress.port}`,
  });
  return { outcome: { kind: 'response', mapped: binding.mappedAddress }, binding };
}

/** Test I: a Binding request with no attributes to the primary address. */
export async function runFirstTest(ctx: ProbeContext, name: string, server: TransportAddress): Promise<ProbeResult<FirstTestOutcome>> {
  const r = await runTest(ctx, name, server, {}, 'any');
  if (r.outcome.kind !== 'response' || !r.binding) return r as ProbeResult<FirstTestOutcome>;
  const b = r.binding;
  return {
    outcome: {
      kind: 'response',
      mapped: b.mappedAddress,
      sameAsLocal: sameIp(b.mappedAddress.address, ctx.local.address) && b.mappedAddress.port === ctx.local.port,
      alternate: b.otherAddress,
    },
    binding: b,
  };
}

function describeChange(c: { changeIp?: boolean; changePort?: boolean }): string {
  if (c.changeIp && c.changePort) return ', change IP and port';
  if (c.changeIp) return ', change IP';
  if (c.changePort) return ', change port';
  return '';
}

/** Rethrows aborts; maps other client errors to undefined. */
export function ignoreFailure<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => {
    if (e instanceof StunClientError && e.code !== 'ABORTED') return undefined;
    throw e;
  });
}
