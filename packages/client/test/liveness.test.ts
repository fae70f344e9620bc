import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PingDeadline } from '../src/rendezvous/liveness.js';

// The rendezvous heartbeat (one for the slow 30 s heartbeat and the fast failover ping), on
// vitest's fake clock: timers, setImmediate and performance.now advance together.
describe('PingDeadline', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('follows an answered ping with the next one on time, even when the deadline is longer than the interval', async () => {
    let sent = 0;
    let dead = 0;
    const d: PingDeadline = new PingDeadline(
      100,
      150,
      () => {
        sent++;
        queueMicrotask(() => d.heard()); // the pong
      },
      () => dead++,
    );
    await vi.advanceTimersByTimeAsync(1000);
    d.stop();
    expect(sent).toBe(10);
    expect(dead).toBe(0);
  });

  it('declares the connection dead once, a deadline after an unanswered ping', async () => {
    let sent = 0;
    const deaths: number[] = [];
    const d = new PingDeadline(
      100,
      150,
      () => sent++,
      (silentMs) => deaths.push(silentMs),
    );
    await vi.advanceTimersByTimeAsync(249);
    expect(deaths).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(deaths).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(deaths).toHaveLength(1);
    expect(sent).toBe(1);
    d.stop();
  });

  it('with the deadline equal to the interval (the slow heartbeat): a ping each interval while answered, dead at the next when not', async () => {
    let sent = 0;
    let answer = true;
    let dead = 0;
    const d: PingDeadline = new PingDeadline(
      100,
      100,
      () => {
        sent++;
        if (answer) queueMicrotask(() => d.heard());
      },
      () => dead++,
    );
    await vi.advanceTimersByTimeAsync(500);
    expect(sent).toBe(5);
    answer = false;
    await vi.advanceTimersByTimeAsync(100); // the 6th ping goes unanswered
    expect(dead).toBe(0);
    await vi.advanceTimersByTimeAsync(101);
    expect(dead).toBe(1);
    expect(sent).toBe(6);
    d.stop();
  });
});
