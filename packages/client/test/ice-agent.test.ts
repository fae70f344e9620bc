/**
 * Unit tests of the sans-I/O ICE agent's checklist logic, with agents wired to each other (or
 * to hand-made STUN messages) on a virtual clock.
 */
import {
  Attr,
  type IceCandidate,
  StunClass,
  StunMethod,
  type TransportAddress,
  attr,
  candidateFoundation,
  candidatePriority,
  decodeStunMessage,
  encodeStunMessage,
  pairPriority,
  shortTermKey,
  verifyMessageIntegrity,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { type BaseId, IceAgent, type IceAgentEvent, type IceAgentOptions, type IceRole, encodeCheckRequest } from '../src/ice/index.js';
import { Scheduler } from './sim/clock.js';

const A_PWD = 'a'.repeat(22);
const B_PWD = 'b'.repeat(22);
const ip = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });

function cand(type: IceCandidate['type'], address: string, port: number, localPreference = 65535): IceCandidate {
  return {
    foundation: candidateFoundation({ type, baseAddress: address, transport: 'udp', ...(type === 'host' ? {} : { serverAddress: '203.0.113.1' }) }),
    component: 1,
    transport: 'udp',
    priority: candidatePriority(type, localPreference, 1),
    address,
    port,
    type,
    extensions: [],
  };
}

/** Drains an agent. */
function drain(agent: IceAgent): { transmits: { base: BaseId; to: TransportAddress; bytes: Uint8Array }[]; events: IceAgentEvent[] } {
  const transmits = [];
  const events = [];
  for (let t = agent.pollTransmit(); t; t = agent.pollTransmit()) transmits.push(t);
  for (let e = agent.pollEvent(); e; e = agent.pollEvent()) events.push(e);
  return { transmits, events };
}

interface Node {
  readonly agent: IceAgent;
  readonly bases: Map<BaseId, TransportAddress>;
  readonly events: { at: number; event: IceAgentEvent }[];
}

/**
 * Two agents on a wire: a packet sent from base X to address Y reaches the agent with a base at
 * Y, 5 ms later, from X's address; `drop` can cut any path.
 */
class Wire {
  readonly clock = new Scheduler();
  drop: (from: TransportAddress, to: TransportAddress) => boolean = () => false;
  readonly nodes: Node[] = [];
  private readonly timers = new Map<IceAgent, { cancel(): void }>();

  add(agent: IceAgent, bases: Record<string, TransportAddress>): Node {
    const node: Node = { agent, bases: new Map(Object.entries(bases)), events: [] };
    this.nodes.push(node);
    return node;
  }

  flush(node: Node): void {
    const { agent } = node;
    const { transmits, events } = drain(agent);
    for (const e of events) node.events.push({ at: this.clock.now, event: e });
    for (const t of transmits) {
      const from = node.bases.get(t.base)!;
      if (this.drop(from, t.to)) continue;
      const target = this.nodes.find((n) => [...n.bases.values()].some((a) => a.address === t.to.address && a.port === t.to.port));
      if (target === undefined) continue;
      const base = [...target.bases.entries()].find(([, a]) => a.address === t.to.address && a.port === t.to.port)![0];
      this.clock.after(5, () => {
        target.agent.handlePacket(t.bytes, { base, from }, this.clock.now);
        this.flush(target);
      });
    }
    this.timers.get(agent)?.cancel();
    const at = agent.pollTimeout();
    if (at !== undefined) {
      this.timers.set(
        agent,
        this.clock.at(at, () => {
          agent.handleTimeout(this.clock.now);
          this.flush(node);
        }),
      );
    }
  }

  run(ms: number): void {
    for (const n of this.nodes) this.flush(n);
    this.clock.runFor(ms);
  }

  until(cond: () => boolean, limit = 60_000): boolean {
    for (const n of this.nodes) this.flush(n);
    return this.clock.runUntil(cond, this.clock.now + limit);
  }
}

function agent(role: IceRole, tieBreaker: bigint, which: 'a' | 'b', options: IceAgentOptions = {}): IceAgent {
  return new IceAgent({
    role,
    tieBreaker,
    ufrag: which === 'a' ? 'aaaa' : 'bbbb',
    pwd: which === 'a' ? A_PWD : B_PWD,
    options: { random: () => 0.5, ...options },
  });
}

/** Two agents with one host candidate each on a wire, credentials and candidates exchanged. */
function pairUp(roleA: IceRole, roleB: IceRole, tbA = 10n, tbB = 20n, options: IceAgentOptions = {}) {
  const wire = new Wire();
  const a = agent(roleA, tbA, 'a', options);
  const b = agent(roleB, tbB, 'b', options);
  const na = wire.add(a, { udp: ip('10.0.0.1', 1000) });
  const nb = wire.add(b, { udp: ip('10.0.0.2', 2000) });
  a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'udp');
  b.addLocalCandidate(cand('host', '10.0.0.2', 2000), 'udp');
  a.setRemoteCredentials('bbbb', B_PWD);
  b.setRemoteCredentials('aaaa', A_PWD);
  a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
  b.addRemoteCandidate(cand('host', '10.0.0.1', 1000));
  return { wire, a, b, na, nb };
}

const states = (n: Node): string[] => n.events.flatMap(({ event }) => (event.type === 'state' ? [event.state + (event.reason ? `:${event.reason}` : '')] : []));

describe('IceAgent checklist', () => {
  it('orders pairs by RFC 8445 pair priority and unfreezes by foundation', () => {
    const a = agent('controlling', 1n, 'a');
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'u1');
    a.addLocalCandidate(cand('host', '10.0.0.1', 1001, 65534), 'u2'); // same foundation (same base IP)
    a.addLocalCandidate(cand('relay', '203.0.113.2', 5000), 'r');
    a.setRemoteCredentials('bbbb', B_PWD);
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    a.addRemoteCandidate(cand('srflx', '198.51.100.2', 2000));
    const pairs = a.pairs();
    expect(pairs).toHaveLength(6);
    // descending priority, and each equals 2^32*min(G,D) + 2*max(G,D) + (G>D)
    for (let i = 1; i < pairs.length; i++) expect(pairs[i - 1]!.priority >= pairs[i]!.priority).toBe(true);
    for (const p of pairs) expect(p.priority).toBe(pairPriority(p.local.priority, p.remote.priority));
    expect(pairs[0]!.local.port).toBe(1000);
    expect(pairs[0]!.remote.type).toBe('host');
    expect(pairs.at(-1)!.local.type).toBe('relay');
    // RFC 8445 section 6.1.2.6: one pair per foundation waits, the others are frozen
    const byFoundation = new Map<string, string[]>();
    for (const p of pairs) {
      const f = `${p.local.foundation}:${p.remote.foundation}`;
      byFoundation.set(f, [...(byFoundation.get(f) ?? []), p.state]);
    }
    for (const list of byFoundation.values()) expect(list.filter((s) => s === 'waiting')).toHaveLength(1);
    expect(pairs.find((p) => p.base === 'u1' && p.remote.type === 'srflx')!.state).toBe('waiting'); // another foundation
    const frozen = pairs.filter((p) => p.state === 'frozen');
    expect(frozen.map((p) => p.local.port)).toEqual([1001, 1001]);

    // checks go out one per Ta, highest priority first
    a.handleTimeout(0);
    const first = drain(a).transmits;
    expect(first).toHaveLength(1);
    expect(first[0]!.base).toBe('u1');
    expect(first[0]!.to).toEqual(ip('10.0.0.2', 2000));
    expect(a.pollTimeout()).toBe(50);
    a.handleTimeout(49);
    expect(drain(a).transmits).toHaveLength(0);
    a.handleTimeout(50);
    expect(drain(a).transmits[0]!.to).toEqual(ip('198.51.100.2', 2000));

    // a success on u1 -> host unfreezes u2 -> host (same foundation)
    const req = decodeStunMessage(first[0]!.bytes);
    const resp = encodeStunMessage(
      {
        method: StunMethod.Binding,
        class: StunClass.SuccessResponse,
        transactionId: req.transactionId,
        attributes: [attr(Attr.XorMappedAddress, ip('10.0.0.1', 1000))],
      },
      { integrity: shortTermKey(B_PWD), fingerprint: true },
    );
    expect(a.handlePacket(resp, { base: 'u1', from: ip('10.0.0.2', 2000) }, 60)).toBe(true);
    const after = a.pairs();
    expect(after.find((p) => p.base === 'u1' && p.remote.type === 'host')!.state).toBe('succeeded');
    expect(after.find((p) => p.base === 'u2' && p.remote.type === 'host')!.state).toBe('waiting');
  });

  it('checks are signed for the peer and carry PRIORITY, the role attribute and the tie-breaker', () => {
    const a = agent('controlling', 77n, 'a');
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'u');
    a.setRemoteCredentials('bbbb', B_PWD);
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    a.handleTimeout(0);
    const m = decodeStunMessage(drain(a).transmits[0]!.bytes);
    expect(m.get(Attr.Username)).toBe('bbbb:aaaa');
    expect(m.get(Attr.IceControlling)).toBe(77n);
    expect(m.get(Attr.Priority)).toBe(candidatePriority('prflx', 65535, 1));
    expect(m.has(Attr.UseCandidate)).toBe(false);
    expect(verifyMessageIntegrity(m, shortTermKey(B_PWD))).toBe(true);
  });

  it('answers a check from an unknown address, learns a remote prflx candidate and sends a triggered check', () => {
    const b = agent('controlled', 5n, 'b');
    b.addLocalCandidate(cand('host', '10.0.0.2', 2000), 'u');
    b.setRemoteCredentials('aaaa', A_PWD);
    const from = ip('198.51.100.9', 4444);
    const req = encodeCheckRequest({
      localUfrag: 'aaaa',
      remoteUfrag: 'bbbb',
      remotePwd: B_PWD,
      role: 'controlling',
      tieBreaker: 9n,
      priority: 1234567,
      useCandidate: false,
    });
    expect(b.handlePacket(req, { base: 'u', from }, 100)).toBe(true);
    const { transmits, events } = drain(b);
    const response = decodeStunMessage(transmits[0]!.bytes);
    expect(response.class).toBe(StunClass.SuccessResponse);
    expect(response.get(Attr.XorMappedAddress)).toEqual(from);
    expect(verifyMessageIntegrity(response, shortTermKey(B_PWD))).toBe(true);
    const prflx = events.find((e) => e.type === 'remote-candidate');
    expect(prflx).toMatchObject({ candidate: { type: 'prflx', address: '198.51.100.9', port: 4444, priority: 1234567 } });
    // the triggered check to the new candidate (sent at once, the Ta pacer being idle)
    const check = transmits
      .slice(1)
      .map((t) => ({ t, m: decodeStunMessage(t.bytes) }))
      .find(({ m }) => m.class === StunClass.Request);
    expect(check?.t.to).toEqual(from);
    expect(check?.m.get(Attr.IceControlled)).toBe(5n);
  });

  it('rejects checks with the wrong ufrag or password (401) and lets non-STUN data through', () => {
    const b = agent('controlled', 5n, 'b');
    b.addLocalCandidate(cand('host', '10.0.0.2', 2000), 'u');
    const bad = encodeCheckRequest({
      localUfrag: 'aaaa',
      remoteUfrag: 'bbbb',
      remotePwd: 'x'.repeat(22),
      role: 'controlling',
      tieBreaker: 9n,
      priority: 1,
      useCandidate: false,
    });
    b.handlePacket(bad, { base: 'u', from: ip('10.0.0.1', 1) }, 0);
    const m = decodeStunMessage(drain(b).transmits[0]!.bytes);
    expect(m.get(Attr.ErrorCode)?.code).toBe(401);
    expect(b.handlePacket(Buffer.from('hello'), { base: 'u', from: ip('10.0.0.1', 1) }, 0)).toBe(false);
  });

  it('learns a local prflx candidate from an unknown XOR-MAPPED-ADDRESS', () => {
    const a = agent('controlling', 1n, 'a');
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'u');
    a.setRemoteCredentials('bbbb', B_PWD);
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    a.handleTimeout(0);
    const req = decodeStunMessage(drain(a).transmits[0]!.bytes);
    const mapped = ip('198.51.100.1', 61000);
    const resp = encodeStunMessage(
      { method: StunMethod.Binding, class: StunClass.SuccessResponse, transactionId: req.transactionId, attributes: [attr(Attr.XorMappedAddress, mapped)] },
      { integrity: shortTermKey(B_PWD), fingerprint: true },
    );
    a.handlePacket(resp, { base: 'u', from: ip('10.0.0.2', 2000) }, 30);
    const ev = drain(a).events.find((e) => e.type === 'local-candidate');
    expect(ev).toMatchObject({ candidate: { type: 'prflx', address: '198.51.100.1', port: 61000, priority: req.get(Attr.Priority) }, base: 'u' });
    expect(a.pairs()[0]!.mappedLocal.type).toBe('prflx');
    expect(a.pairs()[0]!.rttMs).toBe(30);
  });

  it('fails a pair whose response comes from another address (non-symmetric)', () => {
    const a = agent('controlling', 1n, 'a');
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'u');
    a.setRemoteCredentials('bbbb', B_PWD);
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    a.handleTimeout(0);
    const req = decodeStunMessage(drain(a).transmits[0]!.bytes);
    const resp = encodeStunMessage(
      {
        method: StunMethod.Binding,
        class: StunClass.SuccessResponse,
        transactionId: req.transactionId,
        attributes: [attr(Attr.XorMappedAddress, ip('10.0.0.1', 1000))],
      },
      { integrity: shortTermKey(B_PWD), fingerprint: true },
    );
    a.handlePacket(resp, { base: 'u', from: ip('10.0.0.2', 2001) }, 10);
    expect(a.pairs()[0]!.state).toBe('failed');
  });
});

describe('IceAgent roles and nomination', () => {
  it('connects two agents: regular nomination by the controlling agent, selected pair on both sides', () => {
    const { wire, a, b, na, nb } = pairUp('controlling', 'controlled');
    expect(wire.until(() => a.state === 'completed' && b.state === 'completed')).toBe(true);
    const sa = a.selectedPair()!;
    expect(sa.nominated).toBe(true);
    expect(sa.path).toBe('direct');
    expect(sa.remoteAddress).toEqual(ip('10.0.0.2', 2000));
    expect(b.selectedPair()!.remoteAddress).toEqual(ip('10.0.0.1', 1000));
    expect(states(na)).toEqual(['checking', 'completed']);
    expect(states(nb)).toEqual(['checking', 'completed']);
    // the nomination is a second check with USE-CANDIDATE after the first succeeded
    expect(na.events.filter((e) => e.event.type === 'selected-pair')).toHaveLength(1);
    expect(wire.clock.now).toBeLessThan(100);
  });

  it('487 role conflict: two controlling agents, the larger tie-breaker stays controlling', () => {
    const { wire, a, b, na, nb } = pairUp('controlling', 'controlling', 10n, 20n);
    expect(wire.until(() => a.selectedPair() !== undefined && b.selectedPair() !== undefined)).toBe(true);
    expect(a.role).toBe('controlled');
    expect(b.role).toBe('controlling');
    expect(na.events.some((e) => e.event.type === 'role' && e.event.role === 'controlled')).toBe(true);
    expect(nb.events.some((e) => e.event.type === 'role')).toBe(false);
  });

  it('487 role conflict: two controlled agents, the larger tie-breaker becomes controlling', () => {
    const { wire, a, b } = pairUp('controlled', 'controlled', 30n, 20n);
    expect(wire.until(() => a.selectedPair() !== undefined && b.selectedPair() !== undefined)).toBe(true);
    expect(a.role).toBe('controlling');
    expect(b.role).toBe('controlled');
  });

  it('answers 487 when it keeps its role, and switches without 487 when it loses', () => {
    const make = (tb: bigint) => {
      const x = agent('controlling', tb, 'b');
      x.addLocalCandidate(cand('host', '10.0.0.2', 2000), 'u');
      return x;
    };
    const req = encodeCheckRequest({
      localUfrag: 'aaaa',
      remoteUfrag: 'bbbb',
      remotePwd: B_PWD,
      role: 'controlling',
      tieBreaker: 100n,
      priority: 1,
      useCandidate: false,
    });
    const keeps = make(200n);
    keeps.handlePacket(req, { base: 'u', from: ip('10.0.0.1', 1000) }, 0);
    const r1 = decodeStunMessage(drain(keeps).transmits[0]!.bytes);
    expect(r1.get(Attr.ErrorCode)?.code).toBe(487);
    expect(verifyMessageIntegrity(r1, shortTermKey(B_PWD))).toBe(true);
    expect(keeps.role).toBe('controlling');
    const loses = make(50n);
    loses.handlePacket(req, { base: 'u', from: ip('10.0.0.1', 1000) }, 0);
    const out = drain(loses);
    expect(decodeStunMessage(out.transmits[0]!.bytes).class).toBe(StunClass.SuccessResponse);
    expect(loses.role).toBe('controlled');
    expect(out.events).toContainEqual({ type: 'role', role: 'controlled' });
  });
});

describe('IceAgent failure, consent and restart', () => {
  it('fails with no-remote-candidates at the failure timeout', () => {
    const a = agent('controlling', 1n, 'a', { failureTimeout: 3000 });
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'u');
    a.setRemoteCredentials('bbbb', B_PWD);
    a.handleTimeout(1000);
    expect(a.pollTimeout()).toBe(4000);
    a.handleTimeout(3999);
    expect(a.state).not.toBe('failed');
    a.handleTimeout(4000);
    expect(a.state).toBe('failed');
    expect(drain(a).events).toContainEqual({ type: 'state', state: 'failed', reason: 'no-remote-candidates' });
    expect(a.pollTimeout()).toBeUndefined();
  });

  it('fails with all-pairs-failed once both sides ended their candidates and every check timed out', () => {
    const { wire, a, b, na } = pairUp('controlling', 'controlled', 1n, 2n, { checkRto: 100, checkTransmissions: 3 });
    wire.drop = () => true;
    a.endOfLocalCandidates();
    a.endOfRemoteCandidates();
    expect(wire.until(() => a.state === 'failed')).toBe(true);
    expect(states(na).at(-1)).toBe('failed:all-pairs-failed');
    // 100 + 200 + 400 ms of retransmissions
    expect(wire.clock.now).toBe(700);
    expect(b.state).not.toBe('failed'); // b never ended its candidates: it waits for the timeout
    expect(wire.until(() => b.state === 'failed')).toBe(true);
    expect(wire.clock.now).toBe(10_000);
    expect(b.state).toBe('failed');
  });

  it('fails with timeout when candidates exist but nothing answers, in the settable time', () => {
    const { wire, a, na } = pairUp('controlling', 'controlled', 1n, 2n, { failureTimeout: 2500 });
    wire.drop = () => true;
    expect(wire.until(() => a.state === 'failed')).toBe(true);
    expect(wire.clock.now).toBe(2500);
    expect(states(na)).toEqual(['checking', 'failed:timeout']);
  });

  it('consent: disconnected after 8 s without responses, back when they return, failed after 30 s', () => {
    const { wire, a, b, na } = pairUp('controlling', 'controlled');
    wire.until(() => a.state === 'completed' && b.state === 'completed');
    const t0 = wire.clock.now;
    // consent checks flow every 5 s: nothing changes in a minute
    wire.run(60_000);
    expect(a.state).toBe('completed');
    const consentChecks = na.events.length;
    expect(consentChecks).toBeGreaterThan(0);
    // the path goes silent
    wire.drop = () => true;
    const cut = wire.clock.now;
    expect(wire.until(() => a.state === 'disconnected')).toBe(true);
    expect(wire.clock.now - cut).toBeGreaterThanOrEqual(8000 - 5000);
    expect(wire.clock.now - cut).toBeLessThanOrEqual(8000);
    wire.drop = () => false;
    expect(wire.until(() => a.state === 'completed')).toBe(true);
    wire.drop = () => true;
    const cut2 = wire.clock.now;
    expect(wire.until(() => a.state === 'failed')).toBe(true);
    expect(wire.clock.now - cut2).toBeLessThanOrEqual(30_000);
    expect(wire.clock.now - cut2).toBeGreaterThan(30_000 - 6000);
    expect(states(na).slice(-2)).toEqual(['disconnected', 'failed:consent-expired']);
    expect(states(na).at(-1)).toBe('failed:consent-expired');
    expect(a.selectedPair()).toBeUndefined();
    expect(t0).toBeLessThan(100);
  });

  it('ICE restart: new credentials, a new checklist and a new selected pair; old credentials are refused', () => {
    const { wire, a, b, na, nb } = pairUp('controlling', 'controlled');
    wire.until(() => a.state === 'completed' && b.state === 'completed');
    const before = a.selectedPair()!;
    a.restart('aaa2', 'c'.repeat(22));
    b.restart('bbb2', 'd'.repeat(22));
    expect(a.selectedPair()?.id).toBe(before.id); // still usable for data
    expect(a.pairs()).toHaveLength(0);
    a.setRemoteCredentials('bbb2', 'd'.repeat(22));
    b.setRemoteCredentials('aaa2', 'c'.repeat(22));
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    b.addRemoteCandidate(cand('host', '10.0.0.1', 1000));
    const selectedBefore = na.events.filter((e) => e.event.type === 'selected-pair').length;
    expect(wire.until(() => na.events.filter((e) => e.event.type === 'selected-pair').length > selectedBefore)).toBe(true);
    expect(wire.until(() => b.selectedPair()!.id !== before.id)).toBe(true);
    expect(a.selectedPair()!.id).not.toBe(before.id);
    expect(a.selectedPair()!.remoteAddress).toEqual(ip('10.0.0.2', 2000));
    // a check with the old credentials gets 401
    const old = encodeCheckRequest({
      localUfrag: 'bbbb',
      remoteUfrag: 'aaaa',
      remotePwd: A_PWD,
      role: 'controlled',
      tieBreaker: 2n,
      priority: 1,
      useCandidate: false,
    });
    a.handlePacket(old, { base: 'udp', from: ip('10.0.0.2', 2000) }, wire.clock.now);
    const reply = drain(a)
      .transmits.map((t) => decodeStunMessage(t.bytes))
      .find((m) => m.class === StunClass.ErrorResponse);
    expect(reply?.get(Attr.ErrorCode)?.code).toBe(401);
    expect(nb.events.length).toBeGreaterThan(0);
  });

  it('relay first, then upgrade: selects the relayed pair, keeps checking, switches to the direct pair', () => {
    const wire = new Wire();
    const a = agent('controlling', 10n, 'a');
    const b = agent('controlled', 20n, 'b');
    const na = wire.add(a, { udp: ip('10.0.0.1', 1000), relay: ip('203.0.113.2', 50001) });
    const nb = wire.add(b, { udp: ip('10.0.0.2', 2000) });
    a.addLocalCandidate(cand('host', '10.0.0.1', 1000), 'udp');
    a.addLocalCandidate(cand('relay', '203.0.113.2', 50001), 'relay');
    b.addLocalCandidate(cand('host', '10.0.0.2', 2000), 'udp');
    a.setRemoteCredentials('bbbb', B_PWD);
    b.setRemoteCredentials('aaaa', A_PWD);
    a.addRemoteCandidate(cand('host', '10.0.0.2', 2000));
    b.addRemoteCandidate(cand('host', '10.0.0.1', 1000));
    b.addRemoteCandidate(cand('relay', '203.0.113.2', 50001));
    // the direct path opens only after 1.2 s (a NAT binding that takes time, say)
    wire.drop = (from, to) => wire.clock.now < 1200 && (from.address === '10.0.0.1' || to.address === '10.0.0.1');
    expect(wire.until(() => a.selectedPair()?.path === 'direct' && b.selectedPair()?.path === 'direct')).toBe(true);
    const selections = na.events.flatMap((e) => (e.event.type === 'selected-pair' ? [e.event.pair.path] : []));
    expect(selections).toEqual(['relay', 'direct']);
    expect(nb.events.flatMap((e) => (e.event.type === 'selected-pair' ? [e.event.pair.path] : []))).toEqual(['relay', 'direct']);
    const first = na.events.find((e) => e.event.type === 'selected-pair')!;
    expect(first.at).toBeLessThan(300);
    expect(states(na)).toEqual(['checking', 'connected', 'completed']);
  });
});
