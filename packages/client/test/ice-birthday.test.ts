/**
 * Birthday hole punching and port prediction: the sans-I/O BirthdayPuncher on its own (roles,
 * signalling payload, probe pacing and budgets, authentication of hits), then beside the ICE
 * agents in the simulated network, where a symmetric NAT (random or sequential ports) reaches
 * endpoint-independent NATs directly, deterministically, within the default budget; two symmetric
 * NATs go to the relay without a single probe.
 */
import {
  AppPayload,
  Attr,
  type IceCandidate,
  StunClass,
  StunMethod,
  type TransportAddress,
  decodeStunMessage,
  encodeStunMessage,
  attr,
  shortTermKey,
  verifyMessageIntegrity,
} from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import {
  BIRTHDAY_DEFAULTS,
  BirthdayPuncher,
  type BirthdayPuncherInit,
  IceAgent,
  type PunchEvent,
  type PunchTransmit,
  addPunchedPath,
  classifyPortAllocation,
  encodeCheckRequest,
  punchInfoFromApp,
  punchInfoToApp,
  punchRole,
  punchTarget,
} from '../src/ice/index.js';
import { seededRandom } from './sim/clock.js';
import type { NatConfig } from './sim/network.js';
import { NAT_TYPES, type ScenarioResult, expectedPath, expectedPathWithBirthday, runScenario } from './sim/scenario.js';

const v4 = (address: string, port: number): TransportAddress => ({ family: 'IPv4', address, port });
const HARD = { localUfrag: 'hard', localPwd: 'h'.repeat(22), remoteUfrag: 'easy', remotePwd: 'e'.repeat(22) };
const EASY = { localUfrag: 'easy', localPwd: 'e'.repeat(22), remoteUfrag: 'hard', remotePwd: 'h'.repeat(22) };

function drain(p: BirthdayPuncher): { transmits: PunchTransmit[]; events: PunchEvent[] } {
  const transmits: PunchTransmit[] = [];
  const events: PunchEvent[] = [];
  for (let t = p.pollTransmit(); t !== undefined; t = p.pollTransmit()) transmits.push(t);
  for (let e = p.pollEvent(); e !== undefined; e = p.pollEvent()) events.push(e);
  return { transmits, events };
}

/** Runs a puncher alone on its own timeouts until `until` ms; every transmit, with its time. */
function runAlone(p: BirthdayPuncher, until: number): { at: number; t: PunchTransmit }[] {
  const out: { at: number; t: PunchTransmit }[] = [];
  p.start(0);
  for (let now = 0; ;) {
    for (let t = p.pollTransmit(); t !== undefined; t = p.pollTransmit()) out.push({ at: now, t });
    const next = p.pollTimeout();
    if (next === undefined || next > until) return out;
    expect(next).toBeGreaterThan(now);
    now = next;
    p.handleTimeout(now);
  }
}

const puncher = (init: Partial<BirthdayPuncherInit> & Pick<BirthdayPuncherInit, 'role'>): BirthdayPuncher =>
  new BirthdayPuncher({ peer: v4('198.51.100.1', 49152), credentials: init.role === 'hard' ? HARD : EASY, ...init });

describe('punching decisions and signalling', () => {
  it('punches only when exactly one mapping depends on the destination; both hard: relay', () => {
    const EIM = 'endpoint-independent';
    expect(punchRole('address-and-port-dependent', EIM)).toBe('hard');
    expect(punchRole('address-dependent', EIM)).toBe('hard');
    expect(punchRole(EIM, 'address-and-port-dependent')).toBe('easy');
    expect(punchRole(EIM, 'address-dependent')).toBe('easy');
    expect(punchRole('address-and-port-dependent', 'address-dependent')).toBe('relay');
    expect(punchRole('address-and-port-dependent', 'address-and-port-dependent')).toBe('relay');
    expect(punchRole(EIM, EIM)).toBe('none');
    expect(punchRole(null, 'address-and-port-dependent')).toBe('none');
    expect(punchRole('address-and-port-dependent', null)).toBe('none');
  });

  it('carries the NAT info in a valid offer/answer app payload, and reads it back', () => {
    const app = punchInfoToApp({ mapping: 'address-and-port-dependent', portAllocation: 'sequential' });
    expect(app).toEqual({ 'nat.mapping': 'address-and-port-dependent', 'nat.ports': 'sequential' });
    expect(AppPayload.parse({ noise: 'x', ...app })).toEqual({ noise: 'x', ...app });
    expect(punchInfoFromApp({ noise: 'x', ...app })).toEqual({ mapping: 'address-and-port-dependent', portAllocation: 'sequential' });
    const unknown = punchInfoToApp({ mapping: null, portAllocation: null });
    expect(unknown).toEqual({ 'nat.mapping': 'unknown', 'nat.ports': 'unknown' });
    expect(punchInfoFromApp(unknown)).toEqual({ mapping: null, portAllocation: null });
    expect(punchInfoFromApp({ 'nat.mapping': 'endpoint-independent' })).toEqual({ mapping: 'endpoint-independent', portAllocation: null });
    // a peer that does not announce its NAT does not punch
    expect(punchInfoFromApp({ noise: 'x' })).toBeUndefined();
    expect(punchInfoFromApp(undefined)).toBeUndefined();
  });

  it('classifies port allocation from successive mapped ports', () => {
    expect(classifyPortAllocation([5000, 5000, 5000], 5000)).toBe('preserving');
    expect(classifyPortAllocation([49152, 49153, 49155])).toBe('sequential');
    expect(classifyPortAllocation([49152, 3411, 60001])).toBe('random');
    expect(classifyPortAllocation([49152, 49152])).toBe('random');
    expect(classifyPortAllocation([49152])).toBeNull();
  });

  it("punches towards the peer's server-reflexive address, or its public host address", () => {
    const c = (type: 'host' | 'srflx' | 'relay', address: string, port: number): IceCandidate => ({
      foundation: type,
      component: 1,
      transport: 'udp',
      priority: 1,
      address,
      port,
      type,
      extensions: [],
    });
    expect(punchTarget([c('host', '192.168.1.2', 5000), c('relay', '203.0.113.2', 40000), c('srflx', '198.51.100.7', 6000)])).toEqual(v4('198.51.100.7', 6000));
    expect(punchTarget([c('host', '10.0.0.2', 5000), c('host', '198.18.1.10', 5000), c('relay', '203.0.113.2', 40000)])).toBeUndefined();
    expect(punchTarget([c('host', '172.20.0.2', 5000), c('host', '203.0.113.20', 5000)])).toEqual(v4('203.0.113.20', 5000));
  });
});

describe('BirthdayPuncher (sans-I/O)', () => {
  it('hard side: one authenticated probe from each of 256 sockets to the peer, again every second, until it gives up', () => {
    const p = puncher({ role: 'hard' });
    expect(p.socketCount).toBe(256);
    const sent = runAlone(p, 10_000);
    const first = sent.filter((s) => s.at === 0).map((s) => s.t);
    expect(first.map((t) => t.socket)).toEqual([...Array(256).keys()]);
    for (const t of first) expect(t.to).toEqual(v4('198.51.100.1', 49152));
    // rounds at 0, 1000, ... 5000; gives up at 6000
    expect(new Set(sent.map((s) => s.at))).toEqual(new Set([0, 1000, 2000, 3000, 4000, 5000]));
    expect(sent.length).toBe(6 * 256);
    const { events } = drain(p);
    expect(events).toEqual([{ type: 'done', outcome: 'timeout', keep: undefined, probesSent: 1536, at: 6000 }]);
    expect(p.pollTimeout()).toBeUndefined();
    // the probe: a Binding indication, USERNAME RFRAG:LFRAG, signed with the receiver's password
    const m = decodeStunMessage(first[0]!.bytes);
    expect([m.method, m.class]).toEqual([StunMethod.Binding, StunClass.Indication]);
    expect(m.get(Attr.Username)).toBe('easy:hard');
    expect(verifyMessageIntegrity(m, shortTermKey(EASY.localPwd))).toBe(true);
  });

  it('easy side: random distinct ports of the peer IP at 1000 per second, 2000 in all', () => {
    const p = puncher({ role: 'easy', peerPortAllocation: 'random', options: { random: seededRandom(5) } });
    expect(p.socketCount).toBe(0);
    const sent = runAlone(p, 10_000);
    expect(sent.length).toBe(BIRTHDAY_DEFAULTS.probeBudget);
    for (const { t } of sent) {
      expect(t.socket).toBe('primary');
      expect(t.to.address).toBe('198.51.100.1');
      expect(t.to.port).toBeGreaterThanOrEqual(1024);
      expect(t.to.port).toBeLessThanOrEqual(65535);
    }
    expect(new Set(sent.map((s) => s.t.to.port)).size).toBe(2000);
    // paced: about 1000 in the first second (10 ms ticks), the last one before 2 s
    const firstSecond = sent.filter((s) => s.at < 1000).length;
    expect(firstSecond).toBeGreaterThanOrEqual(990);
    expect(firstSecond).toBeLessThanOrEqual(1010);
    expect(sent.at(-1)!.at).toBeLessThanOrEqual(2000);
    // no prediction for a NAT known to pick random ports
    expect(sent.slice(0, 10).some((s) => s.t.to.port === 49153)).toBe(false);
    expect(drain(p).events).toEqual([{ type: 'done', outcome: 'timeout', keep: undefined, probesSent: 2000, at: 6000 }]);
  });

  it('easy side: predicts ports above the last mapped one, first for a sequential NAT, interleaved when unknown', () => {
    const seq = runAlone(puncher({ role: 'easy', peerPortAllocation: 'sequential', options: { random: seededRandom(1) } }), 10_000);
    expect(seq.slice(0, 320).map((s) => s.t.to.port)).toEqual(Array.from({ length: 320 }, (_, i) => 49153 + i));
    const unknown = runAlone(puncher({ role: 'easy', peerPortAllocation: null, options: { random: seededRandom(1) } }), 10_000);
    const ports = unknown.map((s) => s.t.to.port);
    expect(ports.filter((_, i) => i % 2 === 0).slice(0, 320)).toEqual(Array.from({ length: 320 }, (_, i) => 49153 + i));
    expect(new Set(ports).size).toBe(2000);
  });

  it('budgets and rates are settable', () => {
    const p = puncher({
      role: 'easy',
      options: { probesPerSecond: 1000, probeBudget: 50, giveUpAfter: 500, minPort: 2000, maxPort: 2099, predictionWindow: 0, random: seededRandom(2) },
    });
    const sent = runAlone(p, 10_000);
    expect(sent.length).toBe(50);
    expect(sent.at(-1)!.at).toBeLessThanOrEqual(50);
    for (const { t } of sent) expect(t.to.port >= 2000 && t.to.port <= 2099).toBe(true);
    expect(drain(p).events.at(-1)).toMatchObject({ type: 'done', outcome: 'timeout', at: 500 });
    const h = puncher({ role: 'hard', options: { sockets: 16, hardRoundInterval: 250, giveUpAfter: 1000 } });
    expect(h.socketCount).toBe(16);
    expect(runAlone(h, 10_000).length).toBe(16 * 4);
  });

  it('is deterministic for a seed', () => {
    const ports = (seed: number) =>
      runAlone(puncher({ role: 'easy', peerPortAllocation: 'random', options: { random: seededRandom(seed) } }), 10_000).map((s) => s.t.to.port);
    expect(ports(9)).toEqual(ports(9));
    expect(ports(9)).not.toEqual(ports(10));
  });

  it("a peer's probe is a hit: answered once from the socket it reached, then punching ends", () => {
    const hard = puncher({ role: 'hard' });
    const easy = puncher({ role: 'easy', peer: v4('198.51.100.1', 0) });
    hard.start(0);
    easy.start(0);
    const probe = drain(easy).transmits[0]!;
    drain(hard);
    // the easy side's probe reaches extra socket 17 of the hard side
    expect(hard.handlePacket(probe.bytes, 17, v4('192.0.2.9', 7000), 30)).toBe(true);
    const { transmits, events } = drain(hard);
    expect(transmits).toHaveLength(1);
    expect(transmits[0]).toMatchObject({ socket: 17, to: v4('192.0.2.9', 7000) });
    expect(events).toEqual([
      { type: 'hit', socket: 17, remote: v4('192.0.2.9', 7000), at: 30 },
      { type: 'done', outcome: 'hit', keep: 17, probesSent: 256, at: 30 },
    ]);
    expect(hard.done).toBe(true);
    expect(hard.pollTimeout()).toBeUndefined();
    // the answer is a hit on the easy side's primary socket
    expect(easy.handlePacket(transmits[0]!.bytes, 'primary', v4('198.51.100.1', 31337), 40)).toBe(true);
    expect(drain(easy).events[0]).toEqual({ type: 'hit', socket: 'primary', remote: v4('198.51.100.1', 31337), at: 40 });
    // once done, probes are still consumed but neither answered nor reported
    expect(hard.handlePacket(probe.bytes, 3, v4('192.0.2.9', 7000), 50)).toBe(true);
    expect(drain(hard)).toEqual({ transmits: [], events: [] });
  });

  it('a forged probe is no hit; ICE checks on an extra socket are, application data is not', () => {
    const hard = puncher({ role: 'hard' });
    hard.start(0);
    drain(hard);
    const forged = encodeStunMessage(
      { method: StunMethod.Binding, class: StunClass.Indication, attributes: [attr(Attr.Username, 'hard:easy')] },
      { integrity: shortTermKey('x'.repeat(22)), fingerprint: true },
    );
    expect(hard.handlePacket(forged, 1, v4('192.0.2.66', 1), 10)).toBe(true);
    expect(hard.handlePacket(new TextEncoder().encode('hello'), 1, v4('192.0.2.9', 7000), 10)).toBe(false);
    expect(drain(hard).events).toEqual([]);
    const check = encodeCheckRequest({
      localUfrag: 'easy',
      remoteUfrag: 'hard',
      remotePwd: HARD.localPwd,
      role: 'controlling',
      tieBreaker: 1n,
      priority: 1,
      useCandidate: false,
    });
    // on the primary socket a check is the agent's business alone
    expect(hard.handlePacket(check, 'primary', v4('192.0.2.9', 7000), 20)).toBe(false);
    expect(drain(hard).events).toEqual([]);
    expect(hard.handlePacket(check, 5, v4('192.0.2.9', 7000), 20)).toBe(false);
    const { transmits, events } = drain(hard);
    expect(transmits).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['hit', 'done']);
  });

  it('stop() ends punching without a hit', () => {
    const easy = puncher({ role: 'easy' });
    easy.start(0);
    easy.handleTimeout(100);
    easy.stop(105);
    const { events } = drain(easy);
    expect(events).toEqual([{ type: 'done', outcome: 'stopped', keep: undefined, probesSent: 101, at: 105 }]);
    easy.handleTimeout(200);
    expect(drain(easy)).toEqual({ transmits: [], events: [] });
  });

  it('addPunchedPath gives the agent a new base (own foundation) and a peer-reflexive remote candidate', () => {
    const agent = new IceAgent({ role: 'controlling', tieBreaker: 1n, ufrag: 'hard', pwd: HARD.localPwd });
    agent.setRemoteCredentials('easy', EASY.localPwd);
    agent.addLocalCandidate(
      { foundation: 'h1', component: 1, transport: 'udp', priority: 2130706431, address: '10.0.0.2', port: 5000, type: 'host', extensions: [] },
      'udp',
    );
    addPunchedPath(agent, { type: 'hit', socket: 7, remote: v4('192.0.2.9', 7000), at: 0 }, { base: 'bday-7', address: v4('10.0.0.2', 40007) });
    const pairs = agent.pairs();
    expect(pairs.map((p) => [p.base, `${p.remote.address}:${p.remote.port}`, p.remote.type, p.state])).toEqual([
      ['udp', '192.0.2.9:7000', 'prflx', 'waiting'],
      ['bday-7', '192.0.2.9:7000', 'prflx', 'waiting'],
    ]);
    expect(agent.localCandidates().find((c) => c.base === 'bday-7')?.candidate.foundation).toBe('bday7');
  });
});

// ---------------------------------------------------------------------------------------------
// In the simulator

const SYMMETRIC_SEQUENTIAL: NatConfig = { mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', portAllocation: 'sequential' };
const EASY_TYPES = ['full-cone', 'restricted', 'port-restricted', 'symmetric-firewall'] as const;

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

interface Stats {
  readonly label: string;
  readonly runs: number;
  readonly direct: number;
  readonly median: number;
  readonly p95: number;
  readonly max: number;
  readonly probesMedian: number;
}

function measure(label: string, seeds: number, run: (seed: number) => ScenarioResult): Stats {
  const times: number[] = [];
  const probes: number[] = [];
  let direct = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const r = run(seed);
    expect(r.connected && r.dataOk, `${label} seed ${seed}`).toBe(true);
    if (r.path === 'direct' && r.directMs !== undefined) {
      direct++;
      times.push(r.directMs);
    }
    probes.push((r.birthday?.[0].probesSent ?? 0) + (r.birthday?.[1].probesSent ?? 0));
  }
  times.sort((x, y) => x - y);
  probes.sort((x, y) => x - y);
  return {
    label,
    runs: seeds,
    direct,
    median: times.length > 0 ? quantile(times, 0.5) : Number.NaN,
    p95: times.length > 0 ? quantile(times, 0.95) : Number.NaN,
    max: times.at(-1) ?? Number.NaN,
    probesMedian: quantile(probes, 0.5),
  };
}

function printStats(title: string, rows: readonly Stats[]): void {
  const lines = [title, `${'pair'.padEnd(46)}${'direct'.padEnd(10)}${'median'.padEnd(10)}${'p95'.padEnd(10)}${'max'.padEnd(10)}probes (median, both sides)`];
  for (const r of rows) {
    lines.push(
      `${r.label.padEnd(46)}${`${r.direct}/${r.runs}`.padEnd(10)}${`${Math.round(r.median)}ms`.padEnd(10)}${`${Math.round(r.p95)}ms`.padEnd(10)}${`${Math.round(r.max)}ms`.padEnd(10)}${r.probesMedian}`,
    );
  }
  lines.push('(virtual ms from start until both sides have a direct selected pair; 10 ms one-way delay)');
  console.log(lines.join('\n'));
}

describe('birthday punching in the simulated network', () => {
  it('without punching, symmetric vs port-restricted goes through the relay (the control)', () => {
    const r = runScenario('symmetric', 'port-restricted', { seed: 1 });
    expect(r.path).toBe('relay');
    expect(r.birthday).toBeUndefined();
  });

  it('symmetric (random ports) vs every endpoint-independent NAT connects direct, relay first, then the upgrade', () => {
    for (const easy of EASY_TYPES) {
      for (const [a, b] of [['symmetric', easy] as const, [easy, 'symmetric'] as const]) {
        const r = runScenario(a, b, { seed: 11, birthday: true });
        const what = `${a} vs ${b}`;
        expect(r.connected && r.dataOk, what).toBe(true);
        expect(r.path, what).toBe('direct');
        expect(r.directMs!, what).toBeLessThan(5000);
        const roles = r.birthday!.map((s) => s.role);
        expect(roles, what).toEqual(a === 'symmetric' ? ['hard', 'easy'] : ['easy', 'hard']);
        const hard = r.birthday!.find((s) => s.role === 'hard')!;
        const easySide = r.birthday!.find((s) => s.role === 'easy')!;
        expect(hard.sockets, what).toBe(256);
        expect(easySide.probesSent, what).toBeLessThanOrEqual(2000);
        if (easy === 'port-restricted' || easy === 'symmetric-firewall') {
          // only punching gets through these: the direct path never before the connection (relay
          // first; a quick hit may make the punched pair the first one selected)
          expect(r.connectMs!, what).toBeLessThanOrEqual(r.directMs!);
          expect(hard.outcome, what).toBe('hit');
        }
      }
    }
  });

  it('connects direct through the punched path alone when there is no relay', () => {
    const r = runScenario('symmetric', 'port-restricted', { seed: 5, birthday: true, relay: false });
    expect(r.connected && r.dataOk).toBe(true);
    expect(r.path).toBe('direct');
    expect(r.connectMs).toBe(r.directMs);
  });

  it('is deterministic: the same seed gives the same run', () => {
    const x = runScenario('symmetric', 'port-restricted', { seed: 77, birthday: true });
    const y = runScenario('symmetric', 'port-restricted', { seed: 77, birthday: true });
    expect(y).toEqual(x);
    const z = runScenario('symmetric', 'port-restricted', { seed: 78, birthday: true });
    expect(z.birthday).not.toEqual(x.birthday);
  });

  it('symmetric vs symmetric goes to the relay at once: no sockets, no probes', () => {
    const plain = runScenario('symmetric', 'symmetric', { seed: 3 });
    const r = runScenario('symmetric', 'symmetric', { seed: 3, birthday: true });
    expect(r.path).toBe('relay');
    expect(r.connectMs!).toBeLessThan(1000);
    expect(r.birthday!.map((s) => [s.role, s.sockets, s.probesSent, s.startedAt])).toEqual([
      ['relay', 0, 0, undefined],
      ['relay', 0, 0, undefined],
    ]);
    expect(r.packets).toBe(plain.packets);
  });

  it('a budget that runs out ends punching on time and leaves the relay path', () => {
    const r = runScenario('symmetric', 'port-restricted', {
      seed: 4,
      birthday: { options: { sockets: 2, probeBudget: 20, giveUpAfter: 1000 } },
      expectDirect: false,
      runAfter: 2000,
    });
    expect(r.connected && r.dataOk).toBe(true);
    expect(r.path).toBe('relay');
    const [hard, easy] = r.birthday!;
    expect([hard!.outcome, easy!.outcome]).toEqual(['timeout', 'timeout']);
    expect(easy!.probesSent).toBe(20);
    expect(hard!.probesSent).toBe(2);
  });

  it('the whole NAT matrix with punching: direct wherever one side is endpoint-independent', () => {
    const lines = ['NAT matrix with birthday punching (path, virtual ms to the final path):'];
    for (const a of NAT_TYPES) {
      let line = a.padEnd(20);
      for (const b of NAT_TYPES) {
        const r = runScenario(a, b, { seed: 1, birthday: true });
        const what = `${a} vs ${b}`;
        expect(r.connected && r.dataOk, what).toBe(true);
        expect(r.path, what).toBe(expectedPathWithBirthday(a, b));
        // punching only where ICE alone fails
        if (expectedPath(a, b) === 'direct') expect(r.directMs!, what).toBeLessThan(2000);
        line += `${r.path} ${Math.round((r.path === 'direct' ? r.directMs : r.connectMs)!)}ms`.padEnd(20);
      }
      lines.push(line);
    }
    console.log(lines.join('\n'));
  });

  it('port prediction: a sequential symmetric NAT is reached in a few probes', () => {
    const seqSide = { label: 'symmetric-sequential', config: SYMMETRIC_SEQUENTIAL };
    const r = runScenario(seqSide, 'port-restricted', { seed: 2, birthday: true, expectDirect: true });
    expect(r.path).toBe('direct');
    expect(r.directMs!).toBeLessThan(1000);
    expect(r.birthday![1].probesSent).toBeLessThan(50);
  });

  it('measured over 50 seeds at the default budget: direct every time, p95 under 5 s', () => {
    const SEEDS = 50;
    const seqSide = { label: 'symmetric-sequential', config: SYMMETRIC_SEQUENTIAL };
    const rows: Stats[] = [
      measure('symmetric (random) vs port-restricted', SEEDS, (seed) => runScenario('symmetric', 'port-restricted', { seed, birthday: true })),
      measure('port-restricted vs symmetric (random)', SEEDS, (seed) => runScenario('port-restricted', 'symmetric', { seed, birthday: true })),
      measure('symmetric (random) vs symmetric-firewall', SEEDS, (seed) => runScenario('symmetric', 'symmetric-firewall', { seed, birthday: true })),
      measure('symmetric (random) vs port-restricted, 10% loss', SEEDS, (seed) =>
        runScenario('symmetric', 'port-restricted', { seed, birthday: true, link: { loss: 0.1, delay: 10, jitter: 10 }, limit: 20_000 }),
      ),
      measure('symmetric (sequential) vs port-restricted', SEEDS, (seed) =>
        runScenario(seqSide, 'port-restricted', { seed, birthday: true, expectDirect: true }),
      ),
      measure('  same, ports announced unknown (interleaved)', SEEDS, (seed) =>
        runScenario(seqSide, 'port-restricted', {
          seed,
          birthday: { infoA: { mapping: 'address-and-port-dependent', portAllocation: null } },
          expectDirect: true,
        }),
      ),
      measure('  same, no prediction (pure birthday)', SEEDS, (seed) =>
        runScenario(seqSide, 'port-restricted', {
          seed,
          birthday: { infoA: { mapping: 'address-and-port-dependent', portAllocation: 'random' } },
          expectDirect: true,
        }),
      ),
    ];
    printStats(`Birthday punching, ${SEEDS} seeds, default budget (256 sockets, 2000 probes at 400/s, give up at 6 s):`, rows);
    for (const row of rows) {
      const lossy = row.label.includes('loss');
      // (1 - 256/64512)^2000 misses about once in 3000; loss costs a little more
      expect(row.direct, row.label).toBeGreaterThanOrEqual(lossy ? row.runs - 3 : row.runs);
      if (!lossy) expect(row.p95, row.label).toBeLessThan(5000);
    }
    // prediction beats chance on a sequential NAT
    expect(rows[4]!.median).toBeLessThan(rows[6]!.median);
    expect(rows[4]!.probesMedian).toBeLessThan(rows[6]!.probesMedian);
  });
});
