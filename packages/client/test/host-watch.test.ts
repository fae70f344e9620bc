/**
 * The host-address watcher behind ICE restart on a network change (connect/restart.ts): it acts
 * once per stable change of the host's addresses, not on a passing state (an address removed
 * before the new one is added) and not again and again for the same set.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { watchHostAddresses } from '../src/connect/restart.js';

describe('watchHostAddresses', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('calls onChange once per stable change, never with no address, and stops', () => {
    let addresses = ['198.18.1.2'];
    const changes: string[][] = [];
    const stop = watchHostAddresses({ current: () => addresses, onChange: () => changes.push([...addresses]), intervalMs: 100 });
    vi.advanceTimersByTime(1000);
    expect(changes).toEqual([]); // nothing changed
    addresses = []; // the old address removed ...
    vi.advanceTimersByTime(1000);
    expect(changes).toEqual([]); // ... no address: nothing to gather on
    addresses = ['198.18.1.77']; // ... and the new one added
    vi.advanceTimersByTime(100);
    expect(changes).toEqual([]); // not yet stable
    vi.advanceTimersByTime(1000);
    expect(changes).toEqual([['198.18.1.77']]); // once, not at every read
    addresses = ['198.18.1.77', '198.51.100.9'];
    vi.advanceTimersByTime(1000);
    expect(changes).toEqual([['198.18.1.77'], ['198.18.1.77', '198.51.100.9']]);
    stop();
    addresses = ['203.0.113.9'];
    vi.advanceTimersByTime(1000);
    expect(changes).toHaveLength(2);
  });

  it('takes a reordering of the same addresses for no change', () => {
    let addresses = ['198.18.1.2', '198.51.100.9'];
    let calls = 0;
    const stop = watchHostAddresses({ current: () => addresses, onChange: () => void calls++, intervalMs: 100 });
    addresses = ['198.51.100.9', '198.18.1.2'];
    vi.advanceTimersByTime(1000);
    expect(calls).toBe(0);
    stop();
  });
});
