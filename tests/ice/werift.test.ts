// Interop of our ICE driver (connectPeer / acceptPeers: the IceAgent on node:dgram sockets) with
// an independent ICE agent, werift-ice's Connection, on loopback only.
//
// Signalling: the werift side is a peer of our rendezvous service like any other. A small bridge
// (WeriftPeer below) registers a RendezvousClient and translates between the service's
// offer / answer / candidate / end-of-candidates messages and werift's API
// (setRemoteParams, addRemoteCandidate, onIceCandidate). So our side runs exactly the code `nat
// ping` and `nat listen` run, unchanged; only the ICE agent on the other end is foreign.
//
// Network rule: werift-ice, by default, gathers on every non-internal interface address and asks
// a public STUN server for a server-reflexive candidate. Here it is configured so that neither
// happens (see WERIFT_LOOPBACK_OPTIONS), and the tests check that every candidate it signals is on
// 127.0.0.1.
//
// Cases: each role; our agent learning werift as peer-reflexive (its candidates revealed late),
// with each role; our side reachable only through our TURN relay; and a role conflict.
//
// Application data: our connection frames each datagram with a 1-byte type (framing.ts); the
// werift side sends and expects those frames, so both ends verify exact bytes.
import { randomBytes } from 'node:crypto';
import {
  FRAME_DATA,
  type IceConnection,
  type IceConnectionOptions,
  RendezvousClient,
  type RendezvousInbound,
  acceptPeers,
  connectPeer,
  encodeDataFrame,
  generateIdentity,
} from '@nat/client';
import { type RendezvousServer, type StunServer, startRendezvous, startStunServer, staticUsers } from '@nat/server';
import { type Candidate as WeriftCandidate, Candidate, Connection, type IceOptions, type IceState } from 'werift-ice';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let stun: StunServer;
let rendezvous: RendezvousServer;
let stunPort: number;

const TURN_USER = 'werift';
const TURN_PASSWORD = 'werift-interop';

/** Our side: host candidates on 127.0.0.1 only (no STUN/TURN servers are advertised by the rendezvous). */
const OURS: IceConnectionOptions = { hostAddresses: ['127.0.0.1'], agent: { failureTimeout: 8000 } };

/**
 * werift-ice options that keep it on loopback (werift-ice 0.2.3, lib/ice/src/ice.js):
 * - `gatherCandidates` takes `getHostAddresses(useIpv4, useIpv6)` (every non-internal interface
 *   address), filters it by `interfaceAddresses` (falling back to all when nothing matches), then
 *   adds `additionalHostAddresses`. With both families off the list is empty and only 127.0.0.1
 *   is added; `interfaceAddresses.udp4` makes its socket bind 127.0.0.1 rather than 0.0.0.0.
 * - `stunServer` defaults to a public server when absent or invalid: it points at our STUN server
 *   on 127.0.0.1 instead (werift then learns a srflx candidate equal to its host candidate).
 * - no `turnServer`, `useTcp` off; mDNS is used only for remote `.local` candidates, and ours are IPs.
 */
function weriftLoopbackOptions(): Partial<IceOptions> {
  return {
    useIpv4: false,
    useIpv6: false,
    useTcp: false,
    additionalHostAddresses: ['127.0.0.1'],
    interfaceAddresses: { udp4: '127.0.0.1' },
    stunServer: ['127.0.0.1', stunPort],
  };
}

beforeAll(async () => {
  stun = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    turn: { realm: 'werift.test', auth: staticUsers({ [TURN_USER]: TURN_PASSWORD }), peers: { allow: ['127.0.0.0/8'] } },
  });
  stunPort = stun.listeners.find((l) => l.transport === 'udp')!.address.port;
  rendezvous = await startRendezvous({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await rendezvous?.close();
  await stun?.close();
});

interface WeriftPeerInit {
  /** werift's initial role. */
  readonly controlling: boolean;
  /**
   * Keep werift's own candidates from our side until `reveal()` is called (our agent then learns
   * werift's address as peer-reflexive from its checks, RFC 8445 section 7.3.1.3).
   */
  readonly withholdCandidates?: boolean;
}

/** werift-ice's Connection, signalled through our rendezvous service. */
class WeriftPeer {
  readonly ice: Connection;
  readonly received: Buffer[] = [];
  readonly states: IceState[] = [];
  /** Every candidate werift gathered, as it signalled it (or would have). */
  readonly gathered: WeriftCandidate[] = [];
  /** Settles when werift's `connect()` resolves (its nominated pair exists) or throws. */
  connected: Promise<void> | undefined;
  peerId: string | undefined;
  sessionId: string | undefined;
  #withheld: string[] = [];
  #revealed: boolean;
  #gathering: Promise<void> | undefined;
  /** True when werift answers an offer (it is the callee), false when it offers. */
  #answering = false;

  private constructor(
    readonly rv: RendezvousClient,
    readonly init: WeriftPeerInit,
  ) {
    this.ice = new Connection(init.controlling, weriftLoopbackOptions());
    this.#revealed = init.withholdCandidates !== true;
    this.ice.onData.subscribe((d) => void this.received.push(Buffer.from(d)));
    this.ice.stateChanged.subscribe((s) => void this.states.push(s));
    this.ice.onIceCandidate.subscribe((c) => {
      this.gathered.push(c);
      this.#signalCandidate(`candidate:${c.toSdp()}`);
    });
    rv.on('message', (m) => void this.#onMessage(m));
  }

  static async create(init: WeriftPeerInit): Promise<WeriftPeer> {
    const rv = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
    return new WeriftPeer(rv, init);
  }

  get id(): string {
    return this.rv.id;
  }

  /** werift offers to our peer `peerId` (werift is then the caller). */
  async offer(peerId: string): Promise<void> {
    this.peerId = peerId;
    this.sessionId = randomBytes(16).toString('base64url');
    await this.#gather();
  }

  /** Sends the withheld candidates now (trickled late). */
  reveal(): void {
    this.#revealed = true;
    for (const line of this.#withheld) this.#send({ type: 'candidate', candidate: line });
    this.#withheld = [];
  }

  /** werift's selected (nominated) pair. */
  get nominated(): { local: [string, number]; remote: [string, number]; remoteType: string } | undefined {
    const p = this.ice.nominated;
    if (p === undefined) return undefined;
    return { local: [p.localCandidate.host, p.localCandidate.port], remote: [p.remoteAddr[0], p.remoteAddr[1]], remoteType: p.remoteCandidate.type };
  }

  /** Sends one of our connection's data frames carrying `payload`. */
  async sendData(payload: Uint8Array): Promise<void> {
    await this.ice.send(Buffer.from(encodeDataFrame(payload)));
  }

  async close(): Promise<void> {
    await this.ice.close().catch(() => {});
    await this.rv.close().catch(() => {});
  }

  #send(m: { type: 'candidate'; candidate: string } | { type: 'end-of-candidates' }): void {
    if (this.peerId === undefined || this.sessionId === undefined) return;
    this.rv.send({ ...m, to: this.peerId, sessionId: this.sessionId });
  }

  #signalCandidate(line: string): void {
    if (this.#revealed) this.#send({ type: 'candidate', candidate: line });
    else this.#withheld.push(line);
  }

  /** Gathers, then sends the offer or answer (candidates trickle as werift finds them), then end-of-candidates. */
  async #gather(): Promise<void> {
    const description = {
      to: this.peerId!,
      sessionId: this.sessionId!,
      ufrag: this.ice.localUsername,
      pwd: this.ice.localPassword,
      candidates: [],
    };
    this.rv.send({ type: this.#answering ? 'answer' : 'offer', ...description });
    this.#gathering = this.ice.gatherCandidates();
    await this.#gathering;
    this.#send({ type: 'end-of-candidates' });
  }

  async #onMessage(m: RendezvousInbound): Promise<void> {
    if (m.type === 'error') return;
    if (m.type === 'offer' && this.peerId === undefined) {
      this.peerId = m.from;
      this.sessionId = m.sessionId;
      this.#answering = true;
      this.ice.setRemoteParams({ iceLite: false, usernameFragment: m.ufrag, password: m.pwd });
      for (const line of m.candidates) await this.ice.addRemoteCandidate(Candidate.fromSdp(line.slice('candidate:'.length)));
      await this.#gather();
      this.connected = this.ice.connect();
      this.connected.catch(() => {});
      return;
    }
    if (m.from !== this.peerId || m.sessionId !== this.sessionId) return;
    if (m.type === 'answer') {
      this.ice.setRemoteParams({ iceLite: false, usernameFragment: m.ufrag, password: m.pwd });
      for (const line of m.candidates) await this.ice.addRemoteCandidate(Candidate.fromSdp(line.slice('candidate:'.length)));
      await this.#gathering;
      this.connected = this.ice.connect();
      this.connected.catch(() => {});
    } else if (m.type === 'candidate') {
      await this.ice.addRemoteCandidate(Candidate.fromSdp(m.candidate.slice('candidate:'.length)));
    } else if (m.type === 'end-of-candidates') {
      await this.ice.addRemoteCandidate(undefined);
    }
  }
}

/** Resolves when `cond()` holds, checked every 10 ms; rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Our connection receives `n` data events. */
function collect(conn: IceConnection): Uint8Array[] {
  const got: Uint8Array[] = [];
  conn.on('data', (d) => got.push(Uint8Array.from(d)));
  return got;
}

/** Sends datagrams both ways on the selected pairs and checks every byte on both ends. */
async function exchangeData(ours: IceConnection, got: Uint8Array[], werift: WeriftPeer): Promise<void> {
  const toWerift = [Buffer.from('hello werift'), randomBytes(1000), Buffer.alloc(0), randomBytes(1200)];
  const toUs = [Buffer.from('hello from werift'), randomBytes(900), randomBytes(1)];
  const before = werift.received.length;
  for (const p of toWerift) expect(ours.send(p)).toBe(true);
  await until(() => werift.received.length >= before + toWerift.length, 3000, 'werift to receive our datagrams');
  // Loopback keeps order; werift gets our frames: FRAME_DATA then the payload, byte for byte.
  expect(werift.received.slice(before)).toEqual(toWerift.map((p) => Buffer.concat([Buffer.from([FRAME_DATA]), p])));
  const gotBefore = got.length;
  for (const p of toUs) await werift.sendData(p);
  await until(() => got.length >= gotBefore + toUs.length, 3000, 'our side to receive werift datagrams');
  expect(got.slice(gotBefore).map((d) => Buffer.from(d))).toEqual(toUs);
}

/** werift's candidates: all on 127.0.0.1 (host, and srflx from our loopback STUN server). */
function expectLoopbackOnly(w: WeriftPeer): void {
  expect(w.gathered.length).toBeGreaterThanOrEqual(1);
  for (const c of w.gathered) expect(c.host).toBe('127.0.0.1');
  expect(w.gathered.some((c) => c.type === 'host')).toBe(true);
  expect(w.ice.stunServer).toEqual(['127.0.0.1', stunPort]);
  expect(w.ice.turnServer).toBeUndefined();
}

describe('werift-ice against our ICE driver (loopback)', () => {
  it('ours controlling (connectPeer), werift controlled: both connect on host candidates and data crosses both ways', async () => {
    const werift = await WeriftPeer.create({ controlling: false });
    const us = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
    let conn: IceConnection | undefined;
    try {
      const started = performance.now();
      conn = await connectPeer(us, werift.id, OURS);
      const got = collect(conn);
      await until(() => werift.connected !== undefined, 3000, 'werift to call connect()');
      await werift.connected;
      const connectMs = performance.now() - started;
      expect(werift.states).toContain('connected');
      expect(werift.ice.iceControlling).toBe(false);
      expectLoopbackOnly(werift);
      const ourPort = conn.path!.localCandidate.address.port;
      const weriftHost = werift.gathered.find((c) => c.type === 'host')!;
      expect(conn.path).toMatchObject({
        path: 'direct',
        localCandidate: { type: 'host', address: { address: '127.0.0.1' } },
        remoteCandidate: { type: 'host', address: { address: '127.0.0.1', port: weriftHost.port } },
      });
      // werift nominated the same pair, seen from its end
      expect(werift.nominated).toEqual({ local: ['127.0.0.1', weriftHost.port], remote: ['127.0.0.1', ourPort], remoteType: 'host' });
      await until(() => conn!.state === 'completed', 2000, 'our agent to complete');
      await exchangeData(conn, got, werift);
      console.log(`[werift] ours controlling: connected in ${connectMs.toFixed(0)} ms; werift states ${werift.states.join(' ')}`);
    } finally {
      await conn?.close();
      await werift.close();
      await us.close();
    }
  });

  it('werift controlling (it offers), ours controlled (acceptPeers): both connect and data crosses both ways', async () => {
    const werift = await WeriftPeer.create({ controlling: true });
    const us = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
    const accepted: IceConnection[] = [];
    const stop = acceptPeers(us, (c) => accepted.push(c), OURS);
    try {
      await werift.offer(us.id);
      await until(() => accepted.length === 1, 3000, 'our side to accept the offer');
      const conn = accepted[0]!;
      const got = collect(conn);
      const path = await conn.ready;
      await until(() => werift.connected !== undefined, 3000, 'werift to call connect()');
      await werift.connected;
      expect(werift.ice.iceControlling).toBe(true);
      expect(conn.role).toBe('controlled');
      expectLoopbackOnly(werift);
      const weriftHost = werift.gathered.find((c) => c.type === 'host')!;
      expect(path).toMatchObject({
        path: 'direct',
        localCandidate: { type: 'host' },
        remoteCandidate: { address: { address: '127.0.0.1', port: weriftHost.port } },
      });
      expect(werift.nominated).toEqual({ local: ['127.0.0.1', weriftHost.port], remote: ['127.0.0.1', path.localCandidate.address.port], remoteType: 'host' });
      await until(() => conn.state === 'completed', 2000, 'our agent to complete');
      // The pair our agent uses is the one werift nominated (USE-CANDIDATE honoured).
      expect(conn.path!.remoteCandidate.address.port).toBe(weriftHost.port);
      await exchangeData(conn, got, werift);
    } finally {
      stop();
      await Promise.all(accepted.map((c) => c.close()));
      await werift.close();
      await us.close();
    }
  });

  it.each([
    ['werift controlling', true],
    ['ours controlling', false],
  ] as const)(
    "peer-reflexive: werift's candidates revealed only after connecting (%s); our agent learns werift from its checks",
    async (_name, weriftControlling) => {
      const werift = await WeriftPeer.create({ controlling: weriftControlling, withholdCandidates: true });
      const us = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
      const accepted: IceConnection[] = [];
      const stop = acceptPeers(us, (c) => accepted.push(c), OURS);
      let conn: IceConnection | undefined;
      try {
        if (weriftControlling) {
          await werift.offer(us.id);
          await until(() => accepted.length === 1, 3000, 'our side to accept the offer');
          conn = accepted[0]!;
          await conn.ready;
        } else {
          conn = await connectPeer(us, werift.id, OURS);
        }
        const got = collect(conn);
        await until(() => werift.connected !== undefined, 3000, 'werift to call connect()');
        await werift.connected;
        const weriftHost = werift.gathered.find((c) => c.type === 'host')!;
        // RFC 8445 section 7.3.1.3: learned from werift's Binding request, typed prflx.
        expect(conn.path).toMatchObject({ path: 'direct', remoteCandidate: { type: 'prflx', address: { address: '127.0.0.1', port: weriftHost.port } } });
        expect(werift.nominated).toMatchObject({ local: ['127.0.0.1', weriftHost.port], remote: ['127.0.0.1', conn.path!.localCandidate.address.port] });
        await exchangeData(conn, got, werift);
        // Now the candidates arrive, late: nothing breaks, the same path stays selected.
        werift.reveal();
        await new Promise((r) => setTimeout(r, 300));
        expect(conn.closed).toBe(false);
        expect(conn.path!.remoteCandidate.address.port).toBe(weriftHost.port);
        expect(werift.ice.state).toBe('connected');
        await exchangeData(conn, got, werift);
      } finally {
        stop();
        await conn?.close();
        await Promise.all(accepted.map((c) => c.close()));
        await werift.close();
        await us.close();
      }
    },
  );

  it("through our TURN relay: our side has only a relayed candidate; werift's checks and data cross the relay", async () => {
    const werift = await WeriftPeer.create({ controlling: false });
    const us = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
    let conn: IceConnection | undefined;
    try {
      conn = await connectPeer(us, werift.id, {
        hostCandidates: false,
        iceServers: [{ urls: `turn:127.0.0.1:${stunPort}`, username: TURN_USER, credential: TURN_PASSWORD }],
        agent: { failureTimeout: 8000 },
      });
      const got = collect(conn);
      await until(() => werift.connected !== undefined, 3000, 'werift to call connect()');
      await werift.connected;
      const weriftHost = werift.gathered.find((c) => c.type === 'host')!;
      const relayed = conn.path!.localCandidate.address;
      expect(conn.path).toMatchObject({
        path: 'relay',
        localCandidate: { type: 'relay', address: { address: '127.0.0.1' } },
        remoteCandidate: { address: { address: '127.0.0.1', port: weriftHost.port } },
      });
      // werift sent its checks to our relayed address and nominated that pair
      expect(werift.nominated).toEqual({ local: ['127.0.0.1', weriftHost.port], remote: ['127.0.0.1', relayed.port], remoteType: 'relay' });
      await exchangeData(conn, got, werift);
    } finally {
      await conn?.close();
      await werift.close();
      await us.close();
    }
  });

  it('role conflict: both start controlling; the 487 / tie-breaker exchange leaves one controlling and they connect', async () => {
    // werift answers our offer but believes it is controlling too (RFC 8445 section 7.3.1.1).
    const werift = await WeriftPeer.create({ controlling: true });
    const us = await RendezvousClient.connect({ url: rendezvous.url, identity: generateIdentity() });
    let conn: IceConnection | undefined;
    try {
      conn = await connectPeer(us, werift.id, OURS);
      const got = collect(conn);
      await until(() => werift.connected !== undefined, 3000, 'werift to call connect()');
      await werift.connected;
      expect(conn.path?.path).toBe('direct');
      expect(werift.nominated).toBeDefined();
      expect(werift.nominated!.remote).toEqual(['127.0.0.1', conn.path!.localCandidate.address.port]);
      await exchangeData(conn, got, werift);
      console.log(`[werift] role conflict: werift ended ${werift.ice.iceControlling ? 'controlling' : 'controlled'}`);
    } finally {
      await conn?.close();
      await werift.close();
      await us.close();
    }
  });
});
