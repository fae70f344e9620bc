import { ShareCounter } from './shares.js';
import { sourceKey } from '@nat/protocol';

/** A UDP flow the client keeps a socket for this long after its last datagram (as `nat expose` does). */
export const UDP_FLOW_IDLE_MS = 120_000;
/** Flows of one public UDP port at most (as many as `nat expose` keeps sockets for). */
export const UDP_FLOWS_PER_PORT = 4096;

/**
 * The flows (public source address and port) of one exposed UDP port, with a share per source
 * prefix (see {@link sourceKey}): a source that already has `perSource` live flows gets no new
 * one (its datagrams from new ports are dropped), so one source spraying source ports cannot
 * take every flow the client keeps. Sans-I/O: the caller passes `now` in ms.
 */
export class UdpFlowShares {
  readonly #perSource: number;
  readonly #flows = new Map<string, { last: number; source: string }>();
  readonly #sources = new ShareCounter();

  constructor(perSource: number) {
    this.#perSource = perSource;
  }

  /** True when a datagram from `address`:`port` may pass (a live flow, or a new one within the shares). */
  admit(address: string, port: number, now: number): boolean {
    const key = `${address}|${port}`;
    const flow = this.#flows.get(key);
    if (flow !== undefined) {
      flow.last = now;
      return true;
    }
    if (this.#flows.size >= UDP_FLOWS_PER_PORT) return false;
    const source = sourceKey(address);
    if (!this.#sources.take(source, this.#perSource)) return false;
    this.#flows.set(key, { last: now, source });
    return true;
  }

  /** Forgets flows idle for {@link UDP_FLOW_IDLE_MS}. */
  sweep(now: number): void {
    for (const [key, f] of this.#flows) {
      if (now - f.last < UDP_FLOW_IDLE_MS) continue;
      this.#flows.delete(key);
      this.#sources.give(f.source);
    }
  }

  get size(): number {
    return this.#flows.size;
  }
}
