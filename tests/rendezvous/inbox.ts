/** Reading a RendezvousClient's inbox in tests. */
import type { RendezvousInbound } from '@nat/client';

/** The next message from `iter` (a RendezvousClient's `messages()`) of the given type, within `ms`. */
export async function next<T extends RendezvousInbound['type']>(
  iter: AsyncIterator<RendezvousInbound>,
  type: T,
  ms = 2000,
): Promise<Extract<RendezvousInbound, { type: T }>> {
  const deadline = AbortSignal.timeout(ms);
  for (;;) {
    const r = await Promise.race([iter.next(), new Promise<never>((_, rej) => deadline.addEventListener('abort', () => rej(new Error(`no ${type}`))))]);
    if (r.done) throw new Error(`closed before ${type}`);
    if (r.value.type === type) return r.value as Extract<RendezvousInbound, { type: T }>;
  }
}
