/**
 * Issue 14, one governance layer for every listener: the rendezvous HTTP server, and the expose
 * control connections that share it, accept connections through a StreamGovernor. One source
 * holding its share of the listener (WebSockets and expose control connections together) is
 * refused at accept while another source is served; the listener's cap holds across sources; a
 * connection that sends nothing is closed on time, while upgraded connections (whose services
 * have their own heartbeats) are not cut by that rule. Loopback aliases 127.0.19.x.
 */
import { RendezvousClient, generateIdentity } from '@nat/client';
import { type ExposeHandle, type RendezvousServer, attachExpose, startRendezvous, staticUsers } from '@nat/server';
import { afterEach, describe, expect, it } from 'vitest';
import { portBlock } from '../expose/harness.js';
import { type RawSession, rawSession } from '../expose/raw.js';
import { rawTcp, rawWebSocket } from './raw.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(options: Partial<Parameters<typeof startRendezvous>[0]>): Promise<{ rv: RendezvousServer; expose: ExposeHandle }> {
  const rv = await startRendezvous({ host: '127.0.19.1', port: 0, ...options });
  const expose = attachExpose(rv.httpServer, { host: '127.0.19.1', ports: portBlock(4), auth: staticUsers({ alice: 'alice-pw' }) });
  cleanups.push(() => rv.close());
  cleanups.push(() => expose.close());
  return { rv, expose };
}

async function registers(url: string): Promise<boolean> {
  const c = await RendezvousClient.connect({ url, identity: generateIdentity() });
  cleanups.push(() => c.close());
  return /^[a-z2-7]{32}$/.test(c.id);
}

async function aliceSession(url: string, from: string): Promise<RawSession> {
  const s = await rawSession(url, 'alice', 'alice-pw', from);
  cleanups.push(() => s.socket.destroy());
  await s.waitFor((m) => m.type === 'welcome');
  return s;
}

describe('the rendezvous listener goes through a StreamGovernor', () => {
  it('one source holding its share (WebSockets and expose control connections together) is refused at accept; another source is served; upgraded connections outlive the silence rule', async () => {
    // share of the listener per source: maxConnectionsPerSource + maxPendingPerSource = 4
    const { rv } = await server({ limits: { maxConnectionsPerSource: 2, maxPendingPerSource: 2, handshakeTimeoutMs: 1000 } });
    const ws = [await rawWebSocket(rv.url, '127.0.19.2'), await rawWebSocket(rv.url, '127.0.19.2')];
    for (const s of ws) cleanups.push(() => s.destroy());
    const sessions = [await aliceSession(rv.url, '127.0.19.2'), await aliceSession(rv.url, '127.0.19.2')];
    const fifth = await rawTcp(rv.url, '127.0.19.2');
    cleanups.push(() => fifth.socket.destroy());
    expect(await fifth.within(3000)).toBe('refused');
    expect(await registers(rv.url)).toBe(true);
    expect(rv.stats()).toMatchObject({ refusedTcpSourceShare: 1 });
    // silent for more than the listener's 1 s rule: the upgraded connections are their services' to govern
    await new Promise((r) => setTimeout(r, 2500));
    expect(ws.map((s) => s.destroyed)).toEqual([false, false]);
    expect(sessions.map((s) => s.closed())).toEqual([false, false]);
    expect(rv.stats().idleClosed).toBe(0);
  }, 30_000);

  it('a connection that sends nothing is closed on time; one that sent its request in time is served', async () => {
    const { rv } = await server({ limits: { handshakeTimeoutMs: 1000 } });
    const start = Date.now();
    const silent = await rawTcp(rv.url, '127.0.19.3');
    cleanups.push(() => silent.socket.destroy());
    expect(await silent.within(6000)).not.toBe('open');
    expect((await silent.closedAt) - start).toBeLessThan(6000);
    const s = rv.stats();
    expect(s.idleClosed + s.handshakeTimeouts).toBe(1);
    expect(await registers(rv.url)).toBe(true);
  }, 30_000);

  it("the listener's cap holds across sources: over it a connection is refused at accept; once one leaves, another is served", async () => {
    const { rv } = await server({ connections: { maxConnections: 3 } });
    const held = [await rawTcp(rv.url, '127.0.19.4'), await rawTcp(rv.url, '127.0.19.5'), await rawTcp(rv.url, '127.0.19.6')];
    for (const h of held) cleanups.push(() => h.socket.destroy());
    const over = await rawTcp(rv.url, '127.0.19.7');
    cleanups.push(() => over.socket.destroy());
    expect(await over.within(3000)).toBe('refused');
    expect(rv.stats()).toMatchObject({ refusedTcpConnections: 1, tcpConnections: 3 });
    held[0]!.socket.destroy();
    await held[0]!.closedAt;
    for (let i = 0; i < 50 && rv.stats().tcpConnections > 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await registers(rv.url)).toBe(true);
  }, 30_000);
});
