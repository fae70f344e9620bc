import { describe, expect, it } from 'vitest';
import { type ServerEvent, ServerEventHub } from '../src/index.js';

const opened: ServerEvent = { type: 'connection-opened', service: 'turn', transport: 'tcp', source: '192.0.2.1' };
const failure: ServerEvent = { type: 'auth-failure', service: 'turn', reason: 'bad-integrity', source: '192.0.2.1', user: 'alice' };

describe('ServerEventHub', () => {
  it('fans events out to every subscriber, and `on` filters by type', () => {
    const hub = new ServerEventHub();
    const all: ServerEvent[] = [];
    const reasons: string[] = [];
    hub.subscribe((e) => all.push(e));
    hub.on('auth-failure', (e) => reasons.push(e.reason));
    hub.sink(opened);
    hub.sink(failure);
    expect(all).toEqual([opened, failure]);
    expect(reasons).toEqual(['bad-integrity']);
  });

  it('removes a subscriber that throws, reports it, and still delivers to the others', () => {
    const errors: unknown[] = [];
    const hub = new ServerEventHub({ onError: (e) => errors.push(e) });
    const seen: string[] = [];
    hub.subscribe(() => {
      throw new Error('broken metrics');
    });
    hub.subscribe((e) => seen.push(e.type));
    hub.sink(opened);
    hub.sink(failure);
    expect(seen).toEqual(['connection-opened', 'auth-failure']);
    expect(errors.map(String)).toEqual(['Error: broken metrics']);
    expect(hub.size).toBe(1);
  });

  it('unsubscribes', () => {
    const hub = new ServerEventHub();
    const seen: string[] = [];
    const off = hub.subscribe((e) => seen.push(e.type));
    hub.sink(opened);
    off();
    hub.sink(failure);
    expect(seen).toEqual(['connection-opened']);
  });
});
