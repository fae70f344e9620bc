import { StunClass, StunMethod, type TransportAddress, encodeStunMessage } from '@nat/protocol';
import { encodeBindingRequest } from '../binding.js';
import { StunUdpSocket } from '../driver/udp.js';
import { transactionBudget } from '../transaction/options.js';
import { type ProbeContext, ignoreFailure, runFirstTest } from './probes.js';

/** What the hairpinning test needs. */
export interface HairpinTestInit {
  /** The first socket, whose mapped address is known. */
  readonly target: ProbeContext;
  /** The first socket's mapped address (from its Test I). */
  readonly targetMapped: TransportAddress;
  /** The STUN server's primary address (the second socket's Test I goes there). */
  readonly server: TransportAddress;
}

/**
 * RFC 5780 section 4.5: does the NAT hairpin? A second socket sends a Binding request to the
 * mapped address of the first; hairpinning works when the first receives it.
 *
 * Before that, the second socket learns its own mapped address (a Test I) and the first sends
 * it one Binding indication, so that a NAT that filters by address and port (which would drop
 * an unsolicited hairpinned packet from the second socket's public address) lets the probe in:
 * what is measured is the hairpin, not the filter.
 *
 * Resolves true (received), false (not received within the retransmission budget), or null
 * when the test could not run. Rejects only when aborted.
 */
export async function testHairpinning(init: HairpinTestInit): Promise<boolean | null> {
  const { target, targetMapped, server } = init;
  const local = target.socket.localAddress;
  const second = await ignoreFailure(
    StunUdpSocket.open({ localAddress: local.address, family: local.family, ...(target.signal ? { signal: target.signal } : {}) }),
  );
  if (!second) return null;
  const ctx: ProbeContext = { ...target, socket: second, local: { ...target.local, port: second.localAddress.port } };
  const abort = new AbortController();
  const onOuterAbort = (): void => abort.abort(target.signal?.reason);
  target.signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    target.progress({ test: 'hairpinning', state: 'start', detail: `from a second socket to ${targetMapped.address}:${targetMapped.port}` });
    const first = await runFirstTest({ ...ctx, progress: () => {} }, 'hairpinning-I', server);
    if (first.outcome.kind === 'response') {
      const indication = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Indication, classic: target.request.classic === true });
      await ignoreFailure(target.socket.send(indication, first.outcome.mapped));
    }
    const request = encodeBindingRequest({ ...target.request });
    const key = Buffer.from(request.subarray(4, 20)).toString('hex');
    const seen = target.socket.waitForMessage((m) => m.message.transactionKey === key, {
      timeoutMs: transactionBudget(target.timing),
      signal: abort.signal,
    });
    // The request's own outcome does not matter: only whether the first socket saw it.
    second.request(request, targetMapped, { ...target.timing, signal: abort.signal }).catch(() => undefined);
    const got = await seen;
    const result = got !== undefined;
    target.progress({
      test: 'hairpinning',
      state: result ? 'response' : 'no-response',
      detail: result ? 'the probe came back through the NAT' : 'the probe never arrived',
    });
    return result;
  } finally {
    target.signal?.removeEventListener('abort', onOuterAbort);
    abort.abort();
    await second.close();
  }
}
