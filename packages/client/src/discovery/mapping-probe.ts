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
 * @module
 */
import type { TransportAddress } from '@nat/protocol';
import { effectiveLocalAddress } from '../binding.js';
import { StunUdpSocket } from '../driver/udp.js';
import { StunClientError, abortError } from '../errors.js';
import { type ServerAddress, resolveServer } from '../resolve.js';
import { classifyMapping } from './behavior.js';
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
    const ports: number[] = [];
    const testI = (await bounded(runFirstTest(ctx, 'mapping-I', server))) as FirstTestOutcome;
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
    const mapping = step.done ? step.behavior : null;
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
      reason: step.done ? step.reason : `test ${step.next} could not be run`,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    await socket.close();
  }
}
