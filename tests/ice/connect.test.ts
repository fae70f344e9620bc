// End to end on loopback: two peers meet at our rendezvous service, gather candidates (host,
// and relayed on our TURN server), run ICE checks on real UDP sockets and exchange data over
// the selected pair; then `nat ping` against `nat listen`, both run in-process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { RendezvousClient, connectPeer, generateIdentity, peerIdOf } from '@nat/client';
import { type RendezvousServer, type StunServer, anonymousRelayTier, startRendezvous, startStunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPair, echo } from './peers.js';
import { runCli } from '@nat/cli';

const SECRET = 'ice-connect-test-secret';
/** TURN's anonymous tier relays only toward what the rendezvous recorded of each peer's sessions. */
const tier = anonymousRelayTier({ secrets: [SECRET], ownRelayIps: ['127.0.0.1'] });
let stun: StunServer;
let rv: RendezvousServer;
let turnPort: number;
let dir: string;

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: { realm: 'ice.test', ...tier.turn(), peers: { allow: ['127.0.0.0/8'] } },
  });
  turnPort = stun.listeners.find((l) => l.transport === 'udp')!.address.port;
  rv = await startRendezvous({
    host: '127.0.0.1',
    port: 0,
    ...tier.rendezvous([`stun:127.0.0.1:${turnPort}`, `turn:127.0.0.1:${turnPort}`], 300),
  });
  dir = await mkdtemp(join(tmpdir(), 'nat-ice-'));
});

afterAll(async () => {
  await rv?.close();
  await stun?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('ICE connections through the rendezvous service (loopback)', () => {
  it('connects directly over loopback host candidates and exchanges data both ways', async () => {
    const p = await connectPair(rv.url, { hostAddresses: ['127.0.0.1'] });
    try {
      expect(p.connectMs).toBeLessThan(3000);
      expect(p.conn.path).toMatchObject({
        path: 'direct',
        localCandidate: { type: 'host', address: { address: '127.0.0.1' } },
        remoteCandidate: { type: 'host', address: { address: '127.0.0.1' } },
      });
      expect(p.conn.directAt).toBeDefined();
      // the callee's side is connected too, on the same pair seen from the other end
      const callee = p.accepted[0]!;
      const calleePath = await callee.ready;
      expect(calleePath.path).toBe('direct');
      expect(calleePath.localCandidate.address.port).toBe(p.conn.path!.remoteCandidate.address.port);
      expect(calleePath.remoteCandidate.address.port).toBe(p.conn.path!.localCandidate.address.port);
      // alice -> bob -> alice
      expect(await echo(p.conn, 'hello bob')).toBe('hello bob!');
      // bob -> alice, directly
      const got = new Promise<string>((resolve) => p.conn.on('data', (d) => resolve(Buffer.from(d).toString())));
      callee.send(Buffer.from('hello alice'));
      expect(await got).toBe('hello alice');
      const rtts = [await p.conn.ping(), await p.conn.ping(), await callee.ping()];
      for (const r of rtts) expect(r).toBeGreaterThan(0);
      for (const r of rtts) expect(r).toBeLessThan(1000);
    } finally {
      await p.cleanup();
    }
  });

  it('connects through our TURN relay when host candidates are disabled, and exchanges data', async () => {
    const p = await connectPair(rv.url, { hostCandidates: false });
    try {
      expect(p.conn.path).toMatchObject({
        path: 'relay',
        localCandidate: { type: 'relay', address: { address: '127.0.0.1' } },
        remoteCandidate: { type: 'relay', address: { address: '127.0.0.1' } },
      });
      expect(p.conn.directAt).toBeUndefined();
      expect(await echo(p.conn, 'via relay')).toBe('via relay!');
      const callee = p.accepted[0]!;
      expect((await callee.ready).path).toBe('relay');
      const got = new Promise<string>((resolve) => p.conn.on('data', (d) => resolve(Buffer.from(d).toString())));
      callee.send(Buffer.from('back via relay'));
      expect(await got).toBe('back via relay');
      expect(await p.conn.ping()).toBeGreaterThan(0);
    } finally {
      await p.cleanup();
    }
  });

  it('trickles: host candidates in the offer, then the relayed one, then end-of-candidates; fails in bounded time when nobody answers', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const mute = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const seen: { type: string; at: number; lines: string[] }[] = [];
    const started = performance.now();
    mute.on('message', (m) => {
      if (m.type === 'offer') seen.push({ type: m.type, at: performance.now() - started, lines: [...m.candidates] });
      else if (m.type === 'candidate') seen.push({ type: m.type, at: performance.now() - started, lines: [m.candidate] });
      else seen.push({ type: m.type, at: performance.now() - started, lines: [] });
    });
    try {
      const failing = connectPeer(alice, mute.id, { hostAddresses: ['127.0.0.1'], agent: { failureTimeout: 1500 } });
      await expect(failing).rejects.toMatchObject({ name: 'IceError', code: 'no-remote-candidates' });
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(1400);
      expect(elapsed).toBeLessThan(3000);
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.map((m) => m.type)).toEqual(['offer', 'candidate', 'end-of-candidates', 'bye']);
      expect(seen[0]!.lines).toHaveLength(1);
      expect(seen[0]!.lines[0]).toMatch(/^candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host$/);
      expect(seen[1]!.lines[0]).toMatch(/ 127\.0\.0\.1 \d+ typ relay raddr 127\.0\.0\.1 rport \d+$/);
      // The Binding request to the STUN server shared the host socket with the checks: its
      // response was recognised by transaction id (no srflx: loopback has no NAT), so gathering
      // ended at once rather than after the retransmissions.
      expect(seen[2]!.at).toBeLessThan(1000);
    } finally {
      await Promise.all([alice.close(), mute.close()]);
    }
  });

  it("reports the peer's bye, and aborts connecting with its signal", async () => {
    const p = await connectPair(rv.url, { hostAddresses: ['127.0.0.1'] });
    try {
      const closed = new Promise<string>((resolve) => p.conn.on('close', resolve));
      await p.accepted[0]!.close('done');
      expect(await closed).toBe('bye');
      expect(p.conn.closed).toBe(true);
      expect(p.conn.send(Buffer.from('x'))).toBe(false);
    } finally {
      await p.cleanup();
    }
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const mute = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const ac = new AbortController();
      const connecting = connectPeer(alice, mute.id, { hostAddresses: ['127.0.0.1'], signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await expect(connecting).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      await Promise.all([alice.close(), mute.close()]);
    }
  });

  it('rejects promptly with peer-offline / unknown-peer for an id nobody registered', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const started = performance.now();
      await expect(connectPeer(alice, peerIdOf(generateIdentity()), { hostAddresses: ['127.0.0.1'] })).rejects.toMatchObject({
        name: 'RendezvousError',
        code: expect.stringMatching(/^(unknown-peer|peer-offline)$/),
      });
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      await alice.close();
    }
  });
});

/** An Io that keeps what is written, and tells when a line arrives. */
function capture() {
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  const stdout = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      for (const w of waiters.splice(0)) w();
      cb();
    },
  });
  const stderr = new Writable({
    write(chunk, _enc, cb) {
      err += chunk.toString();
      cb();
    },
  });
  const firstLine = async (): Promise<string> => {
    const deadline = Date.now() + 5000;
    while (!out.includes('\n')) {
      if (Date.now() > deadline) throw new Error(`no output; stderr: ${err}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return out.slice(0, out.indexOf('\n'));
  };
  return { io: { stdout, stderr }, out: () => out, err: () => err, firstLine };
}

describe('nat ping against nat listen (in-process)', () => {
  it('prints the documented JSON: path, candidates, connectMs, directMs, rttMs', async () => {
    const listenIo = capture();
    const stopListen = new AbortController();
    const listening = runCli(
      ['listen', '--rendezvous', rv.url, '--identity', join(dir, 'listen.pem'), '--host-address', '127.0.0.1', '--json'],
      listenIo.io,
      stopListen.signal,
    );
    try {
      const { id } = JSON.parse(await listenIo.firstLine()) as { id: string };
      expect(id).toMatch(/^[a-z2-7]+$/);
      const pingIo = capture();
      const code = await runCli(
        ['ping', id, '--rendezvous', rv.url, '--identity', join(dir, 'ping.pem'), '--host-address', '127.0.0.1', '--count', '3', '--interval', '50', '--json'],
        pingIo.io,
      );
      expect(code, pingIo.err()).toBe(0);
      const result = JSON.parse(pingIo.out()) as Record<string, unknown>;
      expect(result).toMatchObject({
        path: 'direct',
        localCandidate: { type: 'host', address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
        remoteCandidate: { type: 'host', address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
        connectMs: expect.any(Number),
        directMs: expect.any(Number),
      });
      expect(result.rttMs).toHaveLength(3);
      for (const r of result.rttMs as number[]) expect(r).toBeGreaterThan(0);
      // the listener reported the connection, its path, and the caller's bye
      const deadline = Date.now() + 3000;
      while (!listenIo.out().includes('"bye"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const events = listenIo
        .out()
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => JSON.parse(l) as { event: string; path?: string });
      expect(events.map((e) => e.event)).toEqual(['connection', 'path', 'bye']);
      expect(events[1]!.path).toBe('direct');
    } finally {
      stopListen.abort();
      expect(await listening).toBe(0);
    }
  });

  it('exits 3 promptly for a peer id nobody registered', async () => {
    const pingIo = capture();
    const started = performance.now();
    const code = await runCli(
      ['ping', peerIdOf(generateIdentity()), '--rendezvous', rv.url, '--identity', join(dir, 'ping.pem'), '--host-address', '127.0.0.1', '--json'],
      pingIo.io,
    );
    expect(code).toBe(3);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(JSON.parse(pingIo.out())).toMatchObject({ error: expect.stringMatching(/^(unknown-peer|peer-offline)$/) });
  });
});
