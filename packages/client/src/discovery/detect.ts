import { type TransportAddress, formatTransportAddress, sameTransportAddress } from '@nat/protocol';
import { type StunBindingResult, effectiveLocalAddress } from '../binding.js';
import { StunUdpSocket } from '../driver/udp.js';
import { abortError } from '../errors.js';
import { type ServerAddress, resolveServer } from '../resolve.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import { classifyFiltering, classifyMapping } from './behavior.js';
import { type ClassicObservations, classicNextStep } from './classic.js';
import { type BindingLifetimeSearchOptions, measureBindingLifetime } from './lifetime.js';
import { type NatBehavior, type NatClass, type NatClassLetter, natClassInfo } from './nat-class.js';
import type { FirstTestOutcome, TestOutcome } from './outcome.js';
import { DISCOVERY_RETRANSMISSION, type DiscoveryProgress, type ProbeContext, type ProbeResult, runFirstTest, runTest } from './probes.js';
import { testHairpinning } from './hairpin.js';
import { type PortAllocation, classifyPortAllocation } from './ports.js';

/** Options of {@link detectNat}. */
export interface DetectNatOptions extends RetransmissionOptions {
  /**
   * The STUN server: `"HOST[:PORT]"` (port 3478 by default) or an address. Classification needs
   * a server with an alternate address (RFC 5780 OTHER-ADDRESS or RFC 3489 CHANGED-ADDRESS);
   * with a single-address server only the public address, port preservation and ALG are known.
   */
  readonly server: ServerAddress;
  /** Local IP address to send from. Default: the wildcard address (the system picks). */
  readonly localAddress?: string;
  /** Aborts everything: rejects with a `StunClientError` of code `ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called as each test starts and ends. */
  readonly onProgress?: (progress: DiscoveryProgress) => void;
  /**
   * Also measure the binding lifetime (RFC 5780 section 4.6): `true` for the default search
   * (minutes long), or the search settings. Default false.
   */
  readonly lifetime?: boolean | (BindingLifetimeSearchOptions & { readonly maxTotalMs?: number });
  /** Run the hairpinning test (RFC 5780 section 4.5). Default true. */
  readonly hairpinning?: boolean;
  /** Send classic RFC 3489 requests (16-byte transaction ids, no magic cookie). Default false. */
  readonly classic?: boolean;
  /** A SOFTWARE attribute for every request (modern requests only). */
  readonly software?: string;
  /**
   * Initial RTO of every test, in ms. Default 250 (not RFC 8489's 500): see
   * {@link DISCOVERY_RETRANSMISSION}; with `rc` 4 and `rm` 4 a test without an answer is given
   * up after 2.75 s.
   */
  readonly rto?: number;
  /** Requests per test. Default 4. */
  readonly rc?: number;
  /** Rm: the wait after the last request, in multiples of the initial RTO. Default 4. */
  readonly rm?: number;
}

/**
 * The report of {@link detectNat}. Keys are stable (they are the `nat detect --json` output);
 * `null` means "not measurable", with the reason in `notes`.
 */
export interface NatReport {
  /** The classic type (seed document / RFC 3489), or null when this server cannot tell. */
  readonly classic: NatClass | null;
  /** Its letter A-G. */
  readonly classicLetter: NatClassLetter | null;
  /** One line: what the classic type is. */
  readonly classicMeaning: string | null;
  /** RFC 5780 section 4.3 mapping behaviour. */
  readonly mapping: NatBehavior | null;
  /** RFC 5780 section 4.4 filtering behaviour. */
  readonly filtering: NatBehavior | null;
  /** Whether a NAT rewrites the address (mapped address != local address). */
  readonly behindNat: boolean | null;
  /** The server-reflexive address, `"ip:port"` (`"[ipv6]:port"`). */
  readonly publicAddress: string | null;
  /** RFC 5780 section 4.5: a packet to our own public address comes back in. */
  readonly hairpinning: boolean | null;
  /** The NAT kept the local port as the public port. */
  readonly portPreservation: boolean | null;
  /**
   * How the NAT allocates the ports of new mappings (RFC 4787 section 4.2.1), from the mapping
   * tests' ports: `preserving`, `sequential` (port prediction works), `random`; null: unknown.
   */
  readonly portAllocation: PortAllocation;
  /** An ALG rewrote MAPPED-ADDRESS: it differs from XOR-MAPPED-ADDRESS (null: not both sent). */
  readonly alg: boolean | null;
  /** RFC 5780 section 4.6, when asked for: seconds an idle binding is known to survive. */
  readonly bindingLifetime: number | null;
  /** The local address of the main test socket, `"ip:port"`. */
  readonly localAddress: string;
  /** The server's primary address, `"ip:port"`. */
  readonly server: string;
  /** The server's alternate address (OTHER-ADDRESS / CHANGED-ADDRESS), `"ip:port"`. */
  readonly otherAddress: string | null;
  /** One sentence: what this means for peer-to-peer connections. */
  readonly reachability: string;
  /** Why things are as reported: one line per test verdict. */
  readonly notes: readonly string[];
  /** Wall time of the whole discovery, in milliseconds. */
  readonly durationMs: number;
}

/** One line on peer-to-peer reachability from the classic type, or from mapping and filtering. */
export function describeReachability(classic: NatClass | null, mapping: NatBehavior | null, filtering: NatBehavior | null): string {
  if (classic) return natClassInfo(classic).reachability;
  if (mapping === 'endpoint-independent') {
    if (filtering === 'endpoint-independent') return natClassInfo('full-cone').reachability;
    if (filtering === 'address-dependent') return natClassInfo('restricted-cone').reachability;
    if (filtering === 'address-and-port-dependent') return natClassInfo('port-restricted-cone').reachability;
    return 'The public address is stable across destinations, so hole punching has a good chance; the filtering could not be measured.';
  }
  if (mapping === 'address-dependent' || mapping === 'address-and-port-dependent') return natClassInfo('symmetric').reachability;
  return 'Unknown: this server could not measure how the NAT behaves (see notes); expect to need a relay to be safe.';
}

type Chain = {
  first?: ProbeResult<FirstTestOutcome>;
  second?: ProbeResult<TestOutcome>;
  third?: ProbeResult<TestOutcome>;
};

/**
 * Finds out what NAT this host is behind, with both vocabularies: the classic test of the seed
 * document (types A-G) and RFC 5780 behaviour discovery (mapping, filtering, hairpinning, port
 * preservation, ALG, and, when asked, binding lifetime).
 *
 * The tests that do not depend on each other run at once, on three sockets:
 *
 * - the mapping socket: Test I to the primary address, then (at once) Test II to the alternate
 *   IP and primary port and Test III to the alternate IP and port (RFC 5780 section 4.3);
 *   Test III is the classic Test1#2;
 * - the filtering socket: Test I, then (at once) Test II with "change IP and port" (the classic
 *   Test2) and Test III with "change port" (the classic Test3) (RFC 5780 section 4.4). It never
 *   sends anywhere but the primary address, so no answer gets in because another test opened
 *   the way;
 * - the hairpinning socket (RFC 5780 section 4.5), once the mapping socket's address is known.
 *
 * The classic procedure reads the mapping socket's Test I and Test1#2 (a mapping comparison
 * must come from one socket) and the filtering socket's Test2 and Test3. On a network that
 * answers, the report takes a few round trips; a test that expects no answer costs the
 * retransmission budget (2.75 s by default), and UDP blocked is known after that budget too.
 *
 * Rejects only when aborted (`ABORTED`), when the server address is bad (`BAD_ADDRESS`) or when
 * no socket can be bound (`SOCKET`); every test failure is reported in the report instead.
 */
export async function detectNat(options: DetectNatOptions): Promise<NatReport> {
  const started = performance.now();
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal, 'NAT detection');
  const { address: server } = await resolveServer(options.server);
  const timing: RetransmissionOptions = {
    rto: options.rto ?? DISCOVERY_RETRANSMISSION.rto,
    rc: options.rc ?? DISCOVERY_RETRANSMISSION.rc,
    rm: options.rm ?? DISCOVERY_RETRANSMISSION.rm,
  };
  const progress = (p: Omit<DiscoveryProgress, 'elapsedMs'>): void => options.onProgress?.({ ...p, elapsedMs: Math.round(performance.now() - started) });
  const request = {
    classic: options.classic === true,
    ...(options.software !== undefined ? { software: options.software } : {}),
  };
  const open = (): Promise<StunUdpSocket> =>
    StunUdpSocket.open({
      family: server.family,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(signal ? { signal } : {}),
    });

  const sockets: StunUdpSocket[] = [];
  try {
    const opened = await Promise.allSettled([open(), open()]);
    for (const o of opened) if (o.status === 'fulfilled') sockets.push(o.value);
    for (const o of opened) if (o.status === 'rejected') throw o.reason;
    const [ms, fs] = sockets as [StunUdpSocket, StunUdpSocket];
    const [mLocal, fLocal] = await Promise.all([effectiveLocalAddress(ms.localAddress, server), effectiveLocalAddress(fs.localAddress, server)]);
    const base = { timing, request, signal, progress };
    const m: ProbeContext = { ...base, socket: ms, local: mLocal };
    const f: ProbeContext = { ...base, socket: fs, local: fLocal };

    const mapping: Chain = {};
    const filtering: Chain = {};
    let hairpinning: boolean | null = null;
    let algProbe: StunBindingResult | undefined;

    const mappingChain = async (): Promise<void> => {
      mapping.first = await runFirstTest(m, 'mapping-I', server);
      const o = mapping.first.outcome;
      if (o.kind !== 'response') return;
      const tasks: Promise<unknown>[] = [];
      if (options.hairpinning !== false) {
        tasks.push(testHairpinning({ target: m, targetMapped: o.mapped, server }).then((h) => (hairpinning = h)));
      }
      if (algFrom(mapping.first.binding) === null && options.classic !== true) {
        // ALG detection (RFC 5780 section 4.1) needs MAPPED-ADDRESS beside XOR-MAPPED-ADDRESS. A
        // server that refuses to amplify (ours) sends it only when the request is big enough,
        // so ask once more with PADDING (RFC 5780 section 7.6), to the same address.
        const padded: ProbeContext = { ...m, request: { ...m.request, padding: 64 } };
        tasks.push(runTest(padded, 'alg', server, {}, 'any').then((r) => (algProbe = r.binding)));
      }
      if (o.alternate && !o.sameAsLocal) {
        const alt = o.alternate;
        tasks.push(
          runTest(m, 'mapping-II', { ...alt, port: server.port }, {}, 'any').then((r) => (mapping.second = r)),
          runTest(m, 'mapping-III', alt, {}, 'any').then((r) => (mapping.third = r)),
        );
      }
      await Promise.all(tasks);
    };

    const filteringChain = async (): Promise<void> => {
      filtering.first = await runFirstTest(f, 'filtering-I', server);
      const o = filtering.first.outcome;
      if (o.kind !== 'response' || !o.alternate) return;
      await Promise.all([
        runTest(f, 'filtering-II', server, { changeIp: true, changePort: true }, 'other-ip-and-port').then((r) => (filtering.second = r)),
        runTest(f, 'filtering-III', server, { changePort: true }, 'same-ip-other-port').then((r) => (filtering.third = r)),
      ]);
    };

    let bindingLifetime: number | null = null;
    const lifetimeNotes: string[] = [];
    const lifetimeChain = async (): Promise<void> => {
      if (!options.lifetime) return;
      const settings = typeof options.lifetime === 'object' ? options.lifetime : {};
      const r = await measureBindingLifetime({
        ...settings,
        ...timing,
        server,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(signal ? { signal } : {}),
        classic: options.classic === true,
      });
      bindingLifetime = r.lifetimeSeconds;
      lifetimeNotes.push(`binding lifetime: ${r.reason}`);
    };

    await Promise.all([mappingChain(), filteringChain(), lifetimeChain()]);
    if (signal?.aborted) throw abortError(signal, 'NAT detection');

    // RFC 5780 verdicts.
    const mappingStep = classifyMapping({
      ...(mapping.first ? { testI: mapping.first.outcome } : {}),
      ...(mapping.second ? { testII: mapping.second.outcome } : {}),
      ...(mapping.third ? { testIII: mapping.third.outcome } : {}),
    });
    const filteringStep = classifyFiltering({
      ...(filtering.first ? { testI: filtering.first.outcome } : {}),
      ...(filtering.second ? { testII: filtering.second.outcome } : {}),
      ...(filtering.third ? { testIII: filtering.third.outcome } : {}),
    });

    // The classic procedure over the same observations.
    // Test1 is the mapping socket's (Test1#2 must be compared with a Test1 from the same
    // socket), or the filtering socket's when the mapping socket got no answer.
    const test1 = mapping.first?.outcome.kind === 'response' ? mapping.first.outcome : (filtering.first?.outcome ?? mapping.first?.outcome);
    const classicObs: ClassicObservations = {
      ...(test1 ? { test1 } : {}),
      ...(filtering.second ? { test2: filtering.second.outcome } : {}),
      ...(mapping.third ? { test1_2: mapping.third.outcome } : {}),
      ...(filtering.third ? { test3: filtering.third.outcome } : {}),
    };
    const classicStep = classicNextStep(classicObs);
    const classic = classicStep.done ? classicStep.nat : null;
    const classicReason = classicStep.done
      ? `classic ${classicStep.step}: ${classicStep.reason}`
      : `classic ${classicStep.step}: ${classicStep.next} could not be run`;

    const mapped1 = mapping.first?.binding ?? filtering.first?.binding;
    const firstOk =
      mapping.first?.outcome.kind === 'response' ? mapping.first.outcome : filtering.first?.outcome.kind === 'response' ? filtering.first.outcome : undefined;
    const local = mapping.first?.binding ? mLocal : filtering.first?.binding ? fLocal : mLocal;
    const mappingBehavior = mappingStep.done ? mappingStep.behavior : null;
    const filteringBehavior = filteringStep.done ? filteringStep.behavior : null;
    const alternate = firstOk?.alternate;
    const notes = [
      classicReason,
      `mapping: ${mappingStep.done ? mappingStep.reason : `test ${mappingStep.next} could not be run`}`,
      `filtering: ${filteringStep.done ? filteringStep.reason : `test ${filteringStep.next} could not be run`}`,
      ...lifetimeNotes,
    ];
    const alg = algFrom(mapped1) ?? algFrom(algProbe);
    if (alg === null && mapped1) notes.push('alg: the server did not send both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS');

    const report: NatReport = {
      classic,
      classicLetter: classic ? natClassInfo(classic).letter : null,
      classicMeaning: classic ? natClassInfo(classic).meaning : null,
      mapping: mappingBehavior,
      filtering: filteringBehavior,
      behindNat: firstOk ? !firstOk.sameAsLocal : null,
      publicAddress: firstOk ? formatTransportAddress(firstOk.mapped) : null,
      hairpinning,
      portPreservation: firstOk ? firstOk.mapped.port === local.port : null,
      portAllocation: portAllocationOf(mappingBehavior, mapping, mLocal.port),
      alg,
      bindingLifetime,
      localAddress: formatTransportAddress(local),
      server: formatTransportAddress(server),
      otherAddress: alternate ? formatTransportAddress(alternate) : null,
      reachability: describeReachability(classic, mappingBehavior, filteringBehavior),
      notes,
      durationMs: Math.round(performance.now() - started),
    };
    progress({ test: 'report', state: 'done', detail: classic ?? 'unclassified' });
    return report;
  } finally {
    await Promise.all(sockets.map((s) => s.close()));
  }
}

/** The port allocation the mapping tests show: one mapping (endpoint-independent) tells preservation only. */
function portAllocationOf(behavior: NatBehavior | null, chain: Chain, localPort: number): PortAllocation {
  const ports = [chain.first, chain.second, chain.third].flatMap((r) => (r?.outcome.kind === 'response' ? [r.outcome.mapped.port] : []));
  if (behavior === null) return null;
  return classifyPortAllocation(behavior === 'endpoint-independent' ? ports.slice(0, 1) : ports, localPort);
}

/** An ALG is at work when MAPPED-ADDRESS and XOR-MAPPED-ADDRESS disagree; null unless both came. */
export function algFrom(binding: StunBindingResult | undefined): boolean | null {
  const plain: TransportAddress | undefined = binding?.mappedAddressPlain;
  const xor = binding?.xorMappedAddress;
  if (!plain || !xor) return null;
  return !sameTransportAddress(plain, xor);
}
