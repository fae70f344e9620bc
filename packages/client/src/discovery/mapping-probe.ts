/**
 * A quick look at this host's NAT mapping, for hole punching at connect time: the mapping
 * tests of RFC 5780 section 4.3 alone, from one socket, with short retransmissions and a hard
 * deadline (one second by default), instead of {@link detectNat}'s full report.
 *
 * Test I goes to the server's primary address; when the mapped address is the local one there
 * is no NAT. Otherwise Test II goes to the alternate IP and primary port (OTHER-ADDRESS), and
 * when its mapping differs, Test III to the alternate IP and port. The three mapped ports, in
 * the order the NAT made them, also tell its port allocation ({@link classifyPortAllocation}).
 *
 * A server with one address sends no OTHER-ADDRESS. Then the same socket asks, at once, every
 * other destination it knows answers Binding: the server's second port (nat-server's and coturn's
 * alternate port is the next one, 3479 beside 3478) and the other servers of `others` (the TURN
 * server, further STUN servers), and {@link classifyMappingSpread} compares their mappings.
 *
 * @module
 */
import { type TransportAddress, sameTransportAddress } from '@nat/protocol';
import { effectiveLocalAddress } from '../binding.js';
import { StunUdpSocket } from '../driver/udp.js';
import { StunClientError, abortError } from '../errors.js';
import { type ServerAddress, resolveServer } from '../resolve.js';
import { classifyMapping } from './behavior.js';
import { type SpreadObservation, classifyMappingSpread } from './mapping-spread.js';
import type { NatBehavior } from './nat-class.js';
import type { FirstTestOutcome, TestOutcome } from './outcome.js';
import { type PortAllocation, classifyPortAllocation } from './ports.js';
import { type ProbeContext, runFirstTest, runTest } from './probes.js';

/** Options of {@link probeNatMapping}. */
export interface ProbeNatMappingOptions {
  /** A STUN server with an alternate address (RFC 5780 OTHER-ADDRESS): `"HOST[:PORT]"` or an address. */
  readonly server: ServerAddress;
  /** Local IP address to send from. Default: the wildcard address (the system picks). */
  readonly localAddress?: string;
  /**
   * Other servers that answer Binding (further STUN servers, TURN servers), asked when `server`
   * sends no OTHER-ADDRESS. Default none.
   */
  readonly others?: readonly ServerAddress[];
  /**
   * Without OTHER-ADDRESS, also ask the server's IP on the next port (its alternate port by
   * convention). Default true.
   */
  readonly nextPort?: boolean;
  /** Everything is over after this long, ms; what is not known by then is reported unknown. Default 1000. */
  readonly timeoutMs?: number;
  /** Initial RTO of each request, ms (doubling, 4 requests). Default 100. */
  readonly rto?: number;
  /** Rejects with `ABORTED`. */
  readonly signal?: AbortSignal;
}

/** What {@link probeNatMapping} learned. */
export interface NatMappingProbe {
  /** RFC 5780 section 4.3 mapping behaviour; null when the server or the network could not tell. */
  readonly mapping: NatBehavior | null;
  /** How the NAT allocates ports; null when unknown (say, an endpoint-independent mapping that did not keep the port). */
  readonly portAllocation: PortAllocation;
  /** The server-reflexive address of Test I. */
  readonly publicAddress: TransportAddress | null;
  /** The probing socket's local address. */
  readonly localAddress: TransportAddress;
  /** The mapped ports of Tests I, II and III that were answered, in order. */
  readonly mappedPorts: readonly number[];
  /** One line: why. */
  readonly reason: string;
  readonly durationMs: number;
}

/**
 * Learns this host's NAT mapping behaviour and port allocation in a few round trips, within
 * `timeoutMs` (1 s) whatever the network does. Rejects only when aborted (`ABORTED`), when the
 * server address is bad (`BAD_ADDRESS`) or when no socket can be bound (`SOCKET`).
 */
export async function probeNatMapping(options: ProbeNatMappingOptions): Promise<NatMappingProbe> {
  const started = performance.now();
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal, 'NAT mapping probe');
  const { address: server } = await resolveServer(options.server);
  const deadline = AbortSignal.timeout(options.timeoutMs ?? 1000);
  const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
  const socket = await StunUdpSocket.open({
    family: server.family,
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    ...(signal === undefined ? {} : { signal }),
  });
  const rto = options.rto ?? 100;
  const local = await effectiveLocalAddress(socket.localAddress, server);
  const ctx: ProbeContext = { socket, local, timing: { rto, rc: 4, rm: 4 }, request: {}, signal: combined, progress: () => {} };
  /** A test cut short by the deadline counts as unanswered; the caller's abort is rethrown. */
  const bounded = async <O>(p: Promise<{ outcome: O }>): Promise<O | { kind: 'no-response' }> => {
    try {
      return (await p).outcome;
    } catch (e) {
      if (e instanceof StunClientError && e.code === 'ABORTED' && signal?.aborted !== true) return { kind: 'no-response' };
      throw e;
    }
  };
  try {
    const testI = (await bounded(runFirstTest(ctx, 'mapping-I', server))) as FirstTestOutcome;
    const firstMs = performance.now() - started;
    const spread = testI.kind === 'response' && !testI.sameAsLocal && testI.alternate === undefined;
    const found = spread
      ? await spreadTests(ctx, { to: server, mapped: testI.mapped, ms: firstMs }, await spreadDestinations(server, options), bounded)
      : await rfc5780Tests(ctx, server, testI, bounded);
    const { ports, mapping } = found;
    // An endpoint-independent mapping makes one mapping only: it tells preservation, not sequence.
    const portAllocation =
      mapping === 'endpoint-independent'
        ? classifyPortAllocation(ports.slice(0, 1), local.port)
        : mapping === null
          ? null
          : classifyPortAllocation(ports, local.port);
    return {
      mapping,
      portAllocation,
      publicAddress: testI.kind === 'response' ? testI.mapped : null,
      localAddress: local,
      mappedPorts: ports,
      reason: found.reason,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    await socket.close();
  }
}

type Bounded = <O>(p: Promise<{ outcome: O }>) => Promise<O | { kind: 'no-response' }>;

interface Found {
  readonly mapping: NatBehavior | null;
  readonly ports: readonly number[];
  readonly reason: string;
}

/** RFC 5780 section 4.3: Tests II and III toward the server's OTHER-ADDRESS. */
async function rfc5780Tests(ctx: ProbeContext, server: TransportAddress, testI: FirstTestOutcome, bounded: Bounded): Promise<Found> {
  const ports: number[] = [];
  let testII: TestOutcome | undefined;
  let testIII: TestOutcome | undefined;
  if (testI.kind === 'response') {
    ports.push(testI.mapped.port);
    const alt = testI.alternate;
    if (!testI.sameAsLocal && alt !== undefined) {
      testII = await bounded(runTest(ctx, 'mapping-II', { ...alt, port: server.port }, {}, 'any'));
      if (testII.kind === 'response') {
        ports.push(testII.mapped.port);
        if (testII.mapped.port !== testI.mapped.port || testII.mapped.address !== testI.mapped.address) {
          testIII = await bounded(runTest(ctx, 'mapping-III', alt, {}, 'any'));
          if (testIII.kind === 'response') ports.push(testIII.mapped.port);
        }
      }
    }
  }
  const step = classifyMapping({ testI, ...(testII ? { testII } : {}), ...(testIII ? { testIII } : {}) });
  return { mapping: step.done ? step.behavior : null, ports, reason: step.done ? step.reason : `test ${step.next} could not be run` };
}

/** The destinations of {@link spreadTests}: the next port of the server, then `others` of the server's family. */
async function spreadDestinations(server: TransportAddress, options: ProbeNatMappingOptions): Promise<TransportAddress[]> {
  const out: TransportAddress[] = [];
  const add = (a: TransportAddress): void => {
    if (a.family === server.family && !out.some((o) => sameTransportAddress(o, a)) && !sameTransportAddress(a, server)) out.push(a);
  };
  if (options.nextPort !== false && server.port < 65535) add({ ...server, port: server.port + 1 });
  for (const other of options.others ?? []) {
    try {
      add((await resolveServer(other)).address);
    } catch (e) {
      if (options.signal?.aborted === true) throw e;
      // an unresolvable extra server is one fewer comparison, not a failure of the probe
    }
  }
  return out;
}

/** Least time the destinations of {@link spreadTests} get when none answers, ms (three transmissions). */
const SPREAD_MIN_MS = 400;

/**
 * Binding requests to every destination at once, from the probe's socket; their mappings against
 * Test I's (`first`, answered after `first.ms`). They get four times Test I's time (at least
 * {@link SPREAD_MIN_MS}) and, once one answered, as long again as it took (at least one RTO): a
 * guessed port that nothing listens on must not hold the probe until its deadline.
 */
async function spreadTests(
  ctx: ProbeContext,
  first: { readonly to: TransportAddress; readonly mapped: TransportAddress; readonly ms: number },
  to: readonly TransportAddress[],
  bounded: Bounded,
): Promise<Found> {
  const { to: server, mapped } = first;
  const cut = new AbortController();
  const sub: ProbeContext = { ...ctx, signal: ctx.signal === undefined ? cut.signal : AbortSignal.any([ctx.signal, cut.signal]) };
  const started = performance.now();
  let timer = setTimeout(() => cut.abort(), Math.max(SPREAD_MIN_MS, 4 * first.ms));
  let answered = false;
  const onAnswer = (): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    timer = setTimeout(() => cut.abort(), Math.max(ctx.timing.rto ?? 100, performance.now() - started));
  };
  const outcomes = await Promise.all(
    to.map(async (d, i) => {
      const o = await bounded(runTest(sub, `mapping-spread-${i + 1}`, d, {}, 'any'));
      if (o.kind === 'response') onAnswer();
      return o;
    }),
  ).finally(() => clearTimeout(timer));
  const seen: SpreadObservation[] = [];
  for (const [i, o] of outcomes.entries()) if (o.kind === 'response') seen.push({ to: to[i]!, mapped: o.mapped });
  const verdict = classifyMappingSpread({ to: server, mapped }, seen);
  // Sent in this order at once: the NAT made the mappings in this order.
  return { mapping: verdict.behavior, ports: [mapped.port, ...seen.map((a) => a.mapped.port)], reason: verdict.reason };
}
