/**
 * The simulator's virtual clock and event queue, and its seeded PRNG. Events run in time order,
 * ties in the order they were scheduled, so a run is a pure function of its seed.
 */

/** A seeded PRNG (mulberry32): numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Entry {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  cancelled: boolean;
}

/** A handle to cancel a scheduled event. */
export interface Scheduled {
  cancel(): void;
}

/** Virtual time in ms and a min-heap of events. */
export class Scheduler {
  now = 0;
  private heap: Entry[] = [];
  private seq = 0;
  /** Events run so far. */
  executed = 0;

  /** Runs `run` at virtual time `at` (not before now). */
  at(at: number, run: () => void): Scheduled {
    const entry: Entry = { at: Math.max(at, this.now), seq: this.seq++, run, cancelled: false };
    this.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  /** Runs `run` after `delay` ms. */
  after(delay: number, run: () => void): Scheduled {
    return this.at(this.now + delay, run);
  }

  /** Runs events until `until()` is true, the queue is empty, or time passes `limit`. Returns whether `until()` held. */
  runUntil(until: () => boolean, limit: number): boolean {
    while (!until()) {
      const next = this.pop(limit);
      if (next === undefined) return until();
      this.now = next.at;
      this.executed++;
      next.run();
    }
    return true;
  }

  /** Runs every event up to time `t`, then sets the clock to `t`. */
  runFor(ms: number): void {
    const end = this.now + ms;
    this.runUntil(() => false, end);
    this.now = Math.max(this.now, end);
  }

  private pop(limit: number): Entry | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > limit) return undefined;
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.down(0);
      }
      if (!top.cancelled) return top;
    }
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
