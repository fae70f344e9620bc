/**
 * The event sink of a running TURN server (startStunServer with `events`), fed by a real
 * TurnClient: the allocation's life from created to ended (server-close when the server closes),
 * the traffic it relayed, the challenge and the wrong password, and the stream connection's events.
 */
import { type ServerEvent, ServerEventHub, startStunServer, staticUsers } from '@nat/server';
import { formatTransportAddress } from '@nat/protocol';
import { TurnClient } from '@nat/client';
import { describe, expect, it } from 'vitest';

describe('a TURN server emits its events', () => {
  it('allocation created, relayed, ended with the server; auth failures; TCP connections opened and closed', { timeout: 30_000 }, async () => {
    const hub = new ServerEventHub();
    const seen: ServerEvent[] = [];
    hub.subscribe((e) => seen.push(e));
    const server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      events: hub.sink,
      turn: { realm: 'events.test', auth: staticUsers({ alice: 'alice-pw' }), peers: { allow: ['127.0.0.0/8'] } },
    });
    const at = (t: 'udp' | 'tcp'): string => formatTransportAddress(server.listeners.find((l) => l.transport === t && l.role === 'PP')!.address);
    const connect = (transport: 'udp' | 'tcp', password = 'alice-pw') =>
      TurnClient.connect({ server: at(transport), username: 'alice', password, transport, signal: AbortSignal.timeout(10_000) });
    try {
      const a = await connect('udp');
      const b = await connect('tcp');
      await connect('udp', 'wrong').catch(() => undefined);
      await a.createPermission(b.relayedAddress);
      await b.createPermission(a.relayedAddress);
      const got = new Promise<void>((resolve) => b.on('data', () => resolve()));
      a.send(b.relayedAddress, new Uint8Array(200));
      await got;
    } finally {
      await server.close();
    }
    const created = seen.filter((e) => e.type === 'allocation-created');
    expect(created.map((e) => e.type === 'allocation-created' && [e.user, e.transport, e.relay, e.anonymous])).toEqual([
      ['alice', 'udp', 'udp', false],
      ['alice', 'tcp', 'udp', false],
    ]);
    const ended = seen.filter((e) => e.type === 'allocation-ended');
    expect(ended.map((e) => e.type === 'allocation-ended' && e.cause)).toEqual(['server-close', 'server-close']);
    const relayed = seen.filter((e) => e.type === 'relayed');
    const toPeer = relayed.reduce((n, e) => n + (e.type === 'relayed' ? e.bytesToPeer : 0), 0);
    const toClient = relayed.reduce((n, e) => n + (e.type === 'relayed' ? e.bytesToClient : 0), 0);
    expect(toPeer).toBe(200);
    expect(toClient).toBe(200);
    const failures = seen.filter((e) => e.type === 'auth-failure').map((e) => e.type === 'auth-failure' && e.reason);
    expect(failures).toContain('bad-integrity');
    expect(failures).toContain('missing');
    const tcp = seen.filter((e) => (e.type === 'connection-opened' || e.type === 'connection-closed') && e.transport === 'tcp');
    expect(tcp.map((e) => e.type)).toEqual(['connection-opened', 'connection-closed']);
    expect(JSON.stringify(seen)).not.toContain('alice-pw');
  });
});
