/**
 * The rendezvous service's shares and lifetimes (finding 7 of issue 14), on loopback aliases
 * 127.0.15.x: connections that send nothing are closed after the handshake timeout, one source
 * holds at most its share of connections, names are capped per key and per source address, and
 * a name whose owner stays away expires; admission by key list or invite token.
 */
import { type Socket, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RendezvousServer, type StartRendezvousOptions, startRendezvous } from '../src/rendezvous/index.js';
import { Peer, identity } from './rendezvous-helpers.js';

const running: RendezvousServer[] = [];
const sockets: Socket[] = [];
const peers: Peer[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of peers.splice(0)) p.ws.terminate();
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function server(options: Partial<StartRendezvousOptions> = {}): Promise<RendezvousServer> {
  const rv = await startRendezvous({ host: '127.0.15.1', port: 0, ...options });
  running.push(rv);
  return rv;
}

/** A raw TCP connection from `from` that sends nothing; resolves once connected. */
function silent(rv: RendezvousServer, from: string): Promise<{ socket: Socket; closedAt: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: rv.address.address, port: rv.address.port, localAddress: from });
    sockets.push(socket);
    const closedAt = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
    socket.on('error', () => {});
    socket.resume(); // read what comes (a 408), so that the end and the close are seen
    socket.once('connect', () => resolve({ socket, closedAt }));
    socket.once('error', reject);
  });
}

async function open(url: string, from: string, headers: Record<string, string> = {}): Promise<Peer> {
  const p = await Peer.open(url, { localAddress: from, headers });
  peers.push(p);
  return p;
}

const isOpen = async (s: Socket): Promise<boolean> => {
  await new Promise((r) => setTimeout(r, 200));
  return !s.destroyed && s.readyState === 'open';
};

describe('rendezvous shares and lifetimes', () => {
  it('finding 7: HTTP connections that send nothing are closed after the handshake timeout, and one source holds at most its share (pending and WebSocket)', async () => {
    const rv = await server({ limits: { handshakeTimeoutMs: 1500, maxPendingPerSource: 4, maxConnectionsPerSource: 2 } });
    const start = Date.now();
    const conns = await Promise.all(Array.from({ length: 10 }, () => silent(rv, '127.0.15.2')));
    const open4 = await Promise.all(conns.map((c) => isOpen(c.socket)));
    expect(open4.filter(Boolean)).toHaveLength(4);
    // another source is served meanwhile
    const other = await open(rv.url, '127.0.15.3');
    expect((await other.register(identity())).type).toBe('registered');
    // the silent ones are gone after the handshake timeout (not 90 s), the registered one stays
    const closed = await Promise.all(conns.map((c) => c.closedAt));
    expect(Math.max(...closed) - start).toBeLessThan(8000);
    expect(other.closeInfo).toBeUndefined();
    let stats = rv.stats();
    expect(stats.pendingRefused).toBe(6);
    // closed by the listener's governor (silent) or node:http's request timer (408), whichever comes first
    expect(stats.handshakeTimeouts + stats.idleClosed).toBe(4);
    // the server sees the closes a moment after the client does
    for (let i = 0; i < 50 && rv.stats().tcpConnections !== 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect(rv.stats().tcpConnections).toBe(1);
    // WebSockets: one source holds at most its share (2 here), then 1013
    const ws = [await open(rv.url, '127.0.15.2'), await open(rv.url, '127.0.15.2'), await open(rv.url, '127.0.15.2')];
    expect((await ws[2]!.closed).code).toBe(1013);
    expect(ws[2]!.closeInfo?.reason).toMatch(/too many connections from this address/);
    expect(ws[0]!.closeInfo).toBeUndefined();
    stats = rv.stats();
    expect(stats.refusedSourceShare).toBe(1);
  }, 20_000);

  it('finding 7: names are capped per key and per source address, and a name whose owner stays away expires', async () => {
    const rv = await server({ limits: { maxNamesPerPeer: 3, nameClaimsPerSource: 5, nameTtlMs: 1500 } });
    const a = await open(rv.url, '127.0.15.4');
    expect((await a.register(identity())).type).toBe('registered');
    const claim = async (p: Peer, name: string): Promise<string> => {
      const from = p.inbox.length;
      p.send({ v: 1, type: 'claim-name', id: `c-${name}`, name });
      const deadline = Date.now() + 2000;
      for (;;) {
        const reply = p.inbox.slice(from).find((m) => (m.type === 'name' || m.type === 'error') && 'ref' in m && m.ref === `c-${name}`);
        if (reply) return reply.type === 'name' ? 'ok' : `${(reply as { code: string }).code}: ${(reply as { message: string }).message}`;
        if (Date.now() > deadline) throw new Error(`no answer to claim ${name}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    for (const n of ['a1', 'a2', 'a3']) expect(await claim(a, n)).toBe('ok');
    expect(await claim(a, 'a4')).toMatch(/name-taken: .*holds the most names/);
    // a second key from the same address: the source's claims run out (5 per window)
    const b = await open(rv.url, '127.0.15.4');
    expect((await b.register(identity())).type).toBe('registered');
    expect(await claim(b, 'b1')).toBe('ok');
    expect(await claim(b, 'b2')).toBe('ok');
    expect(await claim(b, 'b3')).toMatch(/name-taken: .*too many names claimed from this address/);
    // another address is served
    const c = await open(rv.url, '127.0.15.5');
    expect((await c.register(identity())).type).toBe('registered');
    expect(await claim(c, 'c1')).toBe('ok');
    expect(await claim(c, 'a1')).toMatch(/name-taken: .*belongs to another peer/);
    // a's owner goes away; after the name lifetime its names are free again
    a.ws.terminate();
    await new Promise((r) => setTimeout(r, 2000));
    expect(await claim(c, 'a1')).toBe('ok');
    expect(rv.stats().nameClaimsRefused).toBe(3);
  }, 20_000);

  it('an invite token and a key list close the rendezvous to others', async () => {
    const allowed = identity();
    const rv = await server({ admission: { tokens: ['invite-0123'], peerKeys: [allowed.id] } });
    await expect(open(rv.url, '127.0.15.6')).rejects.toThrow(/401/);
    await expect(open(rv.url, '127.0.15.6', { authorization: 'Bearer wrong-token' })).rejects.toThrow(/401/);
    const stranger = await open(rv.url, '127.0.15.6', { authorization: 'Bearer invite-0123' });
    const refused = await stranger.register(identity());
    expect(refused).toMatchObject({ type: 'error', code: 'unauthorized' });
    expect((await stranger.closed).code).toBe(4002);
    const member = await open(rv.url, '127.0.15.6', { authorization: 'Bearer invite-0123' });
    expect((await member.register(allowed)).type).toBe('registered');
    expect(rv.stats().admissionRefused).toBe(3);
  });
});
