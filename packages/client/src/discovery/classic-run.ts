import { type TransportAddress, formatTransportAddress } from '@nat/protocol';
import { effectiveLocalAddress } from '../binding.js';
import { StunUdpSocket } from '../driver/udp.js';
import { abortError } from '../errors.js';
import { type ServerAddress, resolveServer } from '../resolve.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import { type ClassicObservations, type ClassicStepName, classicNextStep } from './classic.js';
import { type NatClass, type NatClassLetter, natClassInfo } from './nat-class.js';
import { DISCOVERY_RETRANSMISSION, type DiscoveryProgress, type ProbeContext, runFirstTest, runTest } from './probes.js';

/** Options of {@link classicNatTest}. */
export interface ClassicNatTestOptions extends RetransmissionOptions {
  /** The STUN server; it needs a second IP address and port (CHANGED-ADDRESS / OTHER-ADDRESS). */
  readonly server: ServerAddress;
  /** Local IP address to send from. */
  readonly localAddress?: string;
  /** Send classic RFC 3489 requests (16-byte transaction ids). Default false. */
  readonly classic?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: DiscoveryProgress) => void;
}

/** The result of {@link classicNatTest}. */
export interface ClassicNatTestResult {
  /** The classic type, or null when this server cannot tell (see `reason`). */
  readonly nat: NatClass | null;
  readonly letter: NatClassLetter | null;
  /** The step that decided. */
  readonly step: ClassicStepName;
  /** One line: why. */
  readonly reason: string;
  /** Test1's mapped address, `"ip:port"`. */
  readonly publicAddress: string | null;
  /** The tests run and what they saw, in the seed document's terms. */
  readonly observations: ClassicObservations;
}

/**
 * The classic NAT type test run step by step, in the seed document's order, from one socket:
 * STEP1 Test1; then Test2 (STEP2 or STEP3); then Test1#2 (STEP4); then Test3 (STEP5), each
 * only when the step before calls for it. {@link detectNat} reaches the same verdict faster by
 * running the tests at once on two sockets; this is the reference procedure.
 */
export async function classicNatTest(options: ClassicNatTestOptions): Promise<ClassicNatTestResult> {
  const started = performance.now();
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal, 'classic NAT test');
  const { address: server } = await resolveServer(options.server);
  const socket = await StunUdpSocket.open({
    family: server.family,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(signal ? { signal } : {}),
  });
  try {
    const ctx: ProbeContext = {
      socket,
      local: await effectiveLocalAddress(socket.localAddress, server),
      timing: {
        rto: options.rto ?? DISCOVERY_RETRANSMISSION.rto,
        rc: options.rc ?? DISCOVERY_RETRANSMISSION.rc,
        rm: options.rm ?? DISCOVERY_RETRANSMISSION.rm,
      },
      request: { classic: options.classic === true },
      signal,
      progress: (p) => options.onProgress?.({ ...p, elapsedMs: Math.round(performance.now() - started) }),
    };
    let obs: ClassicObservations = {};
    let alternate: TransportAddress | undefined;
    for (;;) {
      const step = classicNextStep(obs);
      if (step.done) {
        const t1 = obs.test1;
        return {
          nat: step.nat,
          letter: step.nat ? natClassInfo(step.nat).letter : null,
          step: step.step,
          reason: step.reason,
          publicAddress: t1?.kind === 'response' ? formatTransportAddress(t1.mapped) : null,
          observations: obs,
        };
      }
      switch (step.next) {
        case 'Test1': {
          const r = await runFirstTest(ctx, 'Test1', server);
          if (r.outcome.kind === 'response') alternate = r.outcome.alternate;
          obs = { ...obs, test1: r.outcome };
          break;
        }
        case 'Test2':
          obs = { ...obs, test2: (await runTest(ctx, 'Test2', server, { changeIp: true, changePort: true }, 'other-ip-and-port')).outcome };
          break;
        case 'Test1#2':
          obs = { ...obs, test1_2: (await runTest(ctx, 'Test1#2', alternate!, {}, 'any')).outcome };
          break;
        case 'Test3':
          obs = { ...obs, test3: (await runTest(ctx, 'Test3', server, { changePort: true }, 'same-ip-other-port')).outcome };
          break;
      }
    }
  } finally {
    await socket.close();
  }
}
