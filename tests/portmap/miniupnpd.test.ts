/**
 * Port mapping against a real router daemon: miniupnpd (UPnP IGD v2, NAT-PMP, PCP) in the
 * router namespace of the kernel-NAT lab, `nat map` and `nat detect` (ours) in the client
 * namespace, and a host on the "internet" side that must reach a LAN service through the
 * mapped external port, over UDP and TCP, for each of the three protocols.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { classifiersAvailable, createLab, labAvailable, listLabNamespaces, startCoturnStun, type Lab, type LabProcess } from '../lab/index.js';
import {
  DOUBLE_NAT_ADDRESSES,
  ECHO_SERVICE,
  PROBE,
  allowStunAnswers,
  createDoubleNatLab,
  installMiniupnpdTables,
  miniupnpdAvailable,
  startMiniupnpd,
  startStunIn,
  type DoubleNatLab,
  type Miniupnpd,
} from '../lab/portmap-lab.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_CLI = `${repo}apps/cli/dist/main.js`;
const NODE = process.execPath;

const lab0 = labAvailable();
const daemon0 = miniupnpdAvailable();
const tools0 = classifiersAvailable();
const skipReason = !lab0.ok ? lab0.reason : !daemon0.ok ? daemon0.reason : !tools0.ok ? tools0.reason : undefined;
if (skipReason) console.warn(`[portmap] miniupnpd tests skipped: ${skipReason}`);

type Method = 'pcp' | 'natpmp' | 'upnp';
const METHODS: readonly Method[] = ['pcp', 'natpmp', 'upnp'];
interface MapEvent {
  event: string;
  method: Method;
  protocol: 'udp' | 'tcp';
  internalPort: number;
  externalAddress: string | null;
  externalPort: number;
  lifetime: number;
  reason?: string;
  error?: string;
  code?: string;
}

/** The JSON lines a `nat map add --json` process has printed so far. */
function events(p: LabProcess): MapEvent[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as MapEvent);
}

// Generous: CI machines are shared, and a `nat map add` starts a node process in a namespace.
async function waitFor(p: LabProcess, pred: (e: MapEvent[]) => boolean, what: string, timeoutMs = 25_000): Promise<MapEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = events(p);
    if (pred(e)) return e;
    if (Date.now() > deadline || (p.hasExited() && !pred(events(p)))) {
      throw new Error(`${what}: ${p.hasExited() ? 'process exited' : 'timed out'}\n${p.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const count = (e: MapEvent[], type: string): number => e.filter((x) => x.event === type).length;

/**
 * How long a `nat map add` gets from SIGTERM to exit before SIGKILL: it removes its mappings first
 * (UPnP: a SOAP request over HTTP), which on a loaded machine (test files run several at once)
 * can take more than 5 s; a SIGKILLed one leaves its mapping and fails the check that follows.
 */
const STOP_GRACE_MS = 20_000;

/** Kills miniupnpd, removes the lab's namespaces, and checks that none is left. */
async function teardown(daemon: Miniupnpd | undefined, lab: { namespaces: readonly string[]; destroy(): Promise<void> } | undefined): Promise<void> {
  await daemon?.stop();
  await lab?.destroy();
  for (const ns of lab?.namespaces ?? []) expect(listLabNamespaces()).not.toContain(ns);
}

describe.skipIf(skipReason !== undefined)('port mapping against miniupnpd in the kernel-NAT lab', () => {
  let lab: Lab;
  let daemon: Miniupnpd;
  let echo: LabProcess;
  const gateway = '198.18.0.1';
  let stateN = 0;
  const live: LabProcess[] = [];

  /** Starts `nat map add` in the client namespace, with its own state file unless given. */
  const mapAdd = (args: readonly string[], state = join(lab.tmpDir, `state-${++stateN}.json`)): LabProcess => {
    const p = lab.spawn('client', [NODE, NAT_CLI, 'map', 'add', ...args, '--json', '--gateway', gateway, '--state', state]);
    live.push(p);
    return p;
  };
  /** Sends from the internet side to the router's public address and returns the echo (or null). */
  const probe = async (proto: 'udp' | 'tcp', port: number, payload: string, timeoutMs = 1500): Promise<string | null> => {
    const r = await lab.exec('server', [NODE, '-e', PROBE, proto, lab.router.wan, String(port), payload, String(timeoutMs)], { timeoutMs: timeoutMs + 5000 });
    return r.code === 0 ? r.stdout.trim() : null;
  };

  beforeAll(async () => {
    lab = await createLab({ behaviour: 'port-restricted-cone', name: 'portmap' });
    await startCoturnStun(lab);
    await allowStunAnswers(lab, lab.router.ns, 'wan0', [lab.server.primary, lab.server.secondary]);
    await installMiniupnpdTables(lab, lab.router.ns);
    daemon = await startMiniupnpd(lab, { ns: lab.router.ns, extIf: 'wan0', lanIf: 'lan0', lanPrefix: '198.18.0.0/24', stunHost: lab.server.primary });
    echo = lab.spawn('client', [NODE, '-e', ECHO_SERVICE, '7001', '7002', '7003', '7004', '7005', '7006']);
    const deadline = Date.now() + 10_000;
    while (!echo.output().includes('ready')) {
      if (echo.hasExited() || Date.now() > deadline) throw new Error(`echo service: ${echo.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 40_000);

  // A failed test must not leave its mappings to the next one.
  afterEach(async () => {
    await Promise.all(live.splice(0).map((p) => p.stop(STOP_GRACE_MS)));
  }, STOP_GRACE_MS + 10_000);

  afterAll(() => teardown(daemon, lab), 30_000);

  it('nothing reaches the LAN service before a mapping exists', async () => {
    expect(await probe('udp', 7001, 'before', 800)).toBeNull();
    expect(await probe('tcp', 7001, 'before', 800)).toBeNull();
  });

  it('PCP, NAT-PMP and UPnP each map UDP and TCP that the internet side reaches, and remove them on SIGTERM', async () => {
    const ports: Record<Method, number> = { pcp: 7001, natpmp: 7002, upnp: 7003 };
    const procs = METHODS.flatMap((m) =>
      (['udp', 'tcp'] as const).map((proto) => ({ m, proto, p: mapAdd([String(ports[m]), '--protocol', proto, '--method', m, '--lifetime', '600']) })),
    );
    for (const { m, proto, p } of procs) {
      const [mapped] = (await waitFor(p, (e) => count(e, 'mapped') === 1, `${m} ${proto} mapped`)).filter((e) => e.event === 'mapped');
      expect(mapped).toMatchObject({ method: m, protocol: proto, internalPort: ports[m], externalAddress: lab.router.wan, externalPort: ports[m] });
    }
    const rules = await daemon.natRules();
    for (const m of METHODS) {
      expect(rules.filter((r) => r.includes(`dport ${ports[m]} `) && r.includes(`${lab.client.lanAddress}:${ports[m]}`))).toHaveLength(2);
      expect(await probe('udp', ports[m], `u-${m}`)).toBe(`echo:${ports[m]}:u-${m}`);
      expect(await probe('tcp', ports[m], `t-${m}`)).toBe(`echo:${ports[m]}:t-${m}`);
    }
    await Promise.all(procs.map(({ p }) => p.stop(STOP_GRACE_MS)));
    for (const { m, proto, p } of procs) {
      // 'exit' may come before the last output: wait for the line itself.
      await waitFor(p, (e) => count(e, 'removed') === 1, `${m} ${proto} removed`, 5000);
      expect((await p.exited).code).toBe(0);
    }
    expect(await daemon.natRules()).toEqual([]);
    // A fresh source port, so that no conntrack entry of the earlier probe can help it.
    for (const m of METHODS) {
      expect(await probe('udp', ports[m], 'after', 800)).toBeNull();
      expect(await probe('tcp', ports[m], 'after', 800)).toBeNull();
    }
  }, 90_000);

  it('renews every lease before it ends (half-life), and the port stays open past the first lease', async () => {
    const ports: Record<Method, number> = { pcp: 7004, natpmp: 7005, upnp: 7006 };
    const procs = METHODS.map((m) => ({ m, p: mapAdd([String(ports[m]), '--method', m, '--lifetime', '2']) }));
    for (const { m, p } of procs) {
      const e = await waitFor(p, (x) => count(x, 'renewed') >= 2, `${m} renewed twice`);
      expect(e.find((x) => x.event === 'mapped')?.lifetime).toBe(2);
      expect(count(e, 'error')).toBe(0);
    }
    for (const m of METHODS) expect(await probe('udp', ports[m], `r-${m}`)).toBe(`echo:${ports[m]}:r-${m}`);
    await Promise.all(procs.map(({ p }) => p.stop(STOP_GRACE_MS)));
    expect(await daemon.natRules()).toEqual([]);
  }, 90_000);

  it('a taken external port falls back to another one (reported), or fails with --exact', async () => {
    const holder = mapAdd(['7001', '--method', 'upnp', '--lifetime', '600']);
    await waitFor(holder, (e) => count(e, 'mapped') === 1, 'holder mapped');
    const internal: Record<Method, number> = { pcp: 7004, natpmp: 7005, upnp: 7006 };
    const procs = METHODS.map((m) => ({ m, p: mapAdd([String(internal[m]), '--external', '7001', '--method', m, '--lifetime', '600']) }));
    for (const { m, p } of procs) {
      const mapped = (await waitFor(p, (e) => count(e, 'mapped') === 1, `${m} mapped`)).find((e) => e.event === 'mapped')!;
      expect(mapped.externalPort, m).not.toBe(7001);
      expect(await probe('udp', mapped.externalPort, `f-${m}`)).toBe(`echo:${internal[m]}:f-${m}`);
    }
    // The holder's port still leads to the holder.
    expect(await probe('udp', 7001, 'h')).toBe('echo:7001:h');
    const exact = mapAdd(['7004', '--external', '7001', '--exact', '--method', 'upnp']);
    const failed = (await waitFor(exact, (e) => count(e, 'failed') === 1, '--exact failed')).find((e) => e.event === 'failed');
    expect(failed?.code).toBe('PORT_TAKEN');
    expect((await exact.exited).code).toBe(1);
    await Promise.all([holder, ...procs.map((x) => x.p)].map((p) => p.stop(STOP_GRACE_MS)));
    expect(await daemon.natRules()).toEqual([]);
  }, 90_000);

  it('a router reboot (epoch reset for NAT-PMP and PCP, a lost entry for UPnP) is detected and every mapping restored', async () => {
    const ports: Record<Method, number> = { pcp: 7001, natpmp: 7002, upnp: 7003 };
    const procs = METHODS.map((m) => ({ m, p: mapAdd([String(ports[m]), '--method', m, '--lifetime', '4']) }));
    for (const { m, p } of procs) await waitFor(p, (e) => count(e, 'mapped') === 1, `${m} mapped`);
    // Let the epoch grow past the RFCs' slack so that a reset is unambiguous.
    await new Promise((r) => setTimeout(r, 3000));
    daemon = await daemon.reboot();
    for (const { m, p } of procs) {
      const e = await waitFor(p, (x) => count(x, 'restored') >= 1, `${m} restored`);
      expect(e.find((x) => x.event === 'restored')?.reason, m).toBe(m === 'upnp' ? 'mapping-lost' : 'epoch-reset');
      expect(await probe('udp', ports[m], `b-${m}`)).toBe(`echo:${ports[m]}:b-${m}`);
    }
    await Promise.all(procs.map(({ p }) => p.stop(STOP_GRACE_MS)));
    // each exited by itself after removing its mapping, not by the SIGKILL after the grace
    for (const { m, p } of procs) expect(await p.exited, `${m}: ${p.output()}`).toEqual({ code: 0, signal: null });
    expect(await daemon.natRules()).toEqual([]);
  }, 90_000);

  it('a later run removes the mappings a crashed run left (state file)', async () => {
    const state = join(lab.tmpDir, 'shared-state.json');
    const crashed = mapAdd(['7002', '--method', 'natpmp', '--lifetime', '600'], state);
    await waitFor(crashed, (e) => count(e, 'mapped') === 1, 'mapped');
    process.kill(crashed.pid, 'SIGKILL');
    await crashed.exited;
    expect((await daemon.natRules()).some((r) => r.includes('dport 7002 '))).toBe(true);
    const list = await lab.exec('client', [NODE, NAT_CLI, 'map', 'list', '--json', '--gateway', gateway, '--state', state], { timeoutMs: 15_000 });
    const listed = JSON.parse(list.stdout) as { mappings: { internalPort: number; alive: boolean }[]; methods: { method: string; available: boolean }[] };
    expect(listed.mappings).toMatchObject([{ internalPort: 7002, alive: false }]);
    expect(listed.methods.map((m) => m.available)).toEqual([true, true, true]);
    const next = mapAdd(['7003', '--method', 'pcp', '--lifetime', '600'], state);
    const e = await waitFor(next, (x) => count(x, 'mapped') === 1, 'next mapped');
    expect(e.find((x) => x.event === 'stale-removed')).toMatchObject({ internalPort: 7002, method: 'natpmp', error: null });
    const rules = await daemon.natRules();
    expect(rules.some((r) => r.includes('dport 7002 '))).toBe(false);
    expect(rules.some((r) => r.includes('dport 7003 '))).toBe(true);
    // `nat map remove` stops the live holder, which removes its mapping.
    const rm = await lab.exec('client', [NODE, NAT_CLI, 'map', 'remove', '7003', '--json', '--state', state], { timeoutMs: 20_000 });
    expect(rm.code, rm.stderr).toBe(0);
    expect(JSON.parse(rm.stdout)).toMatchObject({ removed: [{ internalPort: 7003, method: 'pcp' }] });
    await waitFor(next, (x) => count(x, 'removed') === 1, 'holder removed', 5000);
    expect(await daemon.natRules()).toEqual([]);
  }, 90_000);

  it('mappedAddressSource gives ICE a server-reflexive address the internet side reaches (the mapped candidate)', async () => {
    const script = `
      const { PortMapper, mappedAddressSource } = await import(${JSON.stringify(`${repo}packages/client/dist/index.js`)});
      const dgram = await import('node:dgram');
      const sock = dgram.createSocket('udp4');
      await new Promise((r) => sock.bind(0, '${lab.client.lanAddress}', r));
      sock.on('message', (m, r) => sock.send(Buffer.concat([Buffer.from('ice:'), m]), r.port, r.address));
      const mapper = await PortMapper.create({ gateway: '${gateway}' });
      const source = mappedAddressSource(mapper, { lifetime: 600 });
      const base = { family: 'IPv4', address: '${lab.client.lanAddress}', port: sock.address().port };
      const mapped = await source(base);
      const again = await source(base);
      const loop = await source({ family: 'IPv4', address: '127.0.0.1', port: 9 });
      console.log(JSON.stringify({ base, mapped, same: JSON.stringify(again) === JSON.stringify(mapped), loop: loop ?? null }));
      process.on('SIGTERM', async () => { await mapper.close(); sock.close(); console.log('closed'); });
    `;
    const p = lab.spawn('client', [NODE, '--input-type=module', '-e', script]);
    live.push(p);
    const deadline = Date.now() + 25_000;
    while (!p.output().includes('"mapped"')) {
      if (p.hasExited() || Date.now() > deadline) throw new Error(p.output());
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = JSON.parse(
      p
        .output()
        .split('\n')
        .find((l) => l.startsWith('{'))!,
    ) as { base: { port: number }; mapped: { address: string; port: number }; same: boolean; loop: null };
    expect(out.mapped.address).toBe(lab.router.wan);
    expect(out.same).toBe(true);
    expect(out.loop).toBeNull();
    expect(await probe('udp', out.mapped.port, 'cand')).toBe('ice:cand');
    await p.stop(STOP_GRACE_MS);
    expect(await daemon.natRules()).toEqual([]);
  }, 60_000);

  it('nat detect reports all three methods, the external address each reports, and that a mapping makes this host reachable', async () => {
    const r = await lab.exec('client', [NODE, NAT_CLI, 'detect', '--server', lab.server.primary, '--json'], { timeoutMs: 30_000 });
    const j = JSON.parse(r.stdout) as {
      classic: string;
      publicAddress: string;
      portMapping: {
        gateway: string;
        methods: { method: string; available: boolean; externalAddress: string; upnp?: { serviceType: string; firewall?: unknown } }[];
        doubleNat: boolean;
        reachable: boolean;
      };
    };
    expect(j.classic).toBe('port-restricted-cone');
    expect(j.portMapping.gateway).toBe(gateway);
    expect(j.portMapping.methods.map((m) => [m.method, m.available, m.externalAddress])).toEqual([
      ['pcp', true, lab.router.wan],
      ['natpmp', true, lab.router.wan],
      ['upnp', true, lab.router.wan],
    ]);
    expect(j.portMapping.doubleNat).toBe(false);
    expect(j.portMapping.reachable).toBe(true);
    // IGD v2 with the IPv6 firewall control service (GetFirewallStatus answered).
    expect(j.portMapping.methods[2]?.upnp).toMatchObject({
      serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2',
      firewall: { firewallEnabled: true, inboundPinholeAllowed: true },
    });
  }, 40_000);
});

describe.skipIf(skipReason !== undefined)('double NAT: miniupnpd on the inner of two routers', () => {
  let lab: DoubleNatLab;
  let daemon: Miniupnpd | undefined;
  const A = DOUBLE_NAT_ADDRESSES;
  const detect = async (): Promise<{
    ms: number;
    json: {
      publicAddress: string;
      portMapping: {
        externalAddress: string | null;
        doubleNat: boolean | null;
        reachable: boolean | null;
        methods: { available: boolean; externalAddress: string | null; durationMs: number }[];
      };
    };
  }> => {
    const t0 = performance.now();
    const r = await lab.exec(lab.ns.client, [NODE, NAT_CLI, 'detect', '--server', A.serverPrimary, '--json', '--no-hairpinning'], { timeoutMs: 30_000 });
    return { ms: performance.now() - t0, json: JSON.parse(r.stdout) as never };
  };

  beforeAll(async () => {
    lab = await createDoubleNatLab();
    await startStunIn(lab, lab.ns.server, A.serverPrimary, A.serverSecondary);
    await startStunIn(lab, lab.ns.outer, A.outerLan, A.outerLanStun);
  }, 40_000);

  afterAll(() => teardown(daemon, lab), 30_000);

  it('detect stays fast when no router answers port-mapping requests', async () => {
    const { ms, json } = await detect();
    expect(json.portMapping.methods.every((m) => !m.available)).toBe(true);
    expect(json.portMapping.reachable).toBe(false);
    // Each probe is bounded (2.5 s) and they run beside the STUN tests; slack for a loaded CI.
    for (const m of json.portMapping.methods) expect(m.durationMs).toBeLessThan(6000);
    expect(ms).toBeLessThan(15_000);
    // `nat map add` says no router answered: exit code 3.
    const r = await lab.exec(lab.ns.client, [NODE, NAT_CLI, 'map', 'add', '7000', '--json', '--state', join(lab.tmpDir, 'none.json')], { timeoutMs: 30_000 });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toMatchObject({ event: 'failed', code: 'UNSUPPORTED' });
  }, 30_000);

  it('reports double NAT: the router maps, but its external address is not the public one', async () => {
    await allowStunAnswers(lab, lab.ns.inner, 'wan0', [A.outerLan, A.outerLanStun]);
    await installMiniupnpdTables(lab, lab.ns.inner);
    daemon = await startMiniupnpd(lab, { ns: lab.ns.inner, extIf: 'wan0', lanIf: 'lan0', lanPrefix: '198.18.0.0/24', stunHost: A.outerLan });
    const { json } = await detect();
    expect(json.publicAddress.startsWith(`${A.outerWan}:`)).toBe(true);
    expect(json.portMapping.methods.map((m) => [m.available, m.externalAddress])).toEqual([
      [true, A.innerWan],
      [true, A.innerWan],
      [true, A.innerWan],
    ]);
    expect(json.portMapping.externalAddress).toBe(A.innerWan);
    expect(json.portMapping.doubleNat).toBe(true);
    expect(json.portMapping.reachable).toBe(false);
  }, 40_000);

  it('and the verdict is right: the mapping opens the inner router only, the internet side still cannot reach the host', async () => {
    const echo = lab.spawn(lab.ns.client, [NODE, '-e', ECHO_SERVICE, '7001']);
    const map = lab.spawn(lab.ns.client, [
      NODE,
      NAT_CLI,
      'map',
      'add',
      '7001',
      '--method',
      'natpmp',
      '--json',
      '--gateway',
      A.innerLan,
      '--state',
      join(lab.tmpDir, 'dn.json'),
    ]);
    try {
      const mapped = (await waitFor(map, (e) => count(e, 'mapped') === 1, 'mapped')).find((e) => e.event === 'mapped')!;
      expect(mapped).toMatchObject({ externalAddress: A.innerWan, externalPort: 7001 });
      const probeFrom = async (ns: string, host: string): Promise<string | null> => {
        const r = await lab.exec(ns, [NODE, '-e', PROBE, 'udp', host, '7001', 'dn', '1500'], { timeoutMs: 10_000 });
        return r.code === 0 ? r.stdout.trim() : null;
      };
      // From the segment between the routers the mapped port is open ...
      expect(await probeFrom(lab.ns.outer, A.innerWan)).toBe('echo:7001:dn');
      // ... from the internet nothing gets through the outer NAT.
      expect(await probeFrom(lab.ns.server, A.outerWan)).toBeNull();
    } finally {
      await map.stop(STOP_GRACE_MS);
      await echo.stop();
    }
    await waitFor(map, (e) => count(e, 'removed') === 1, 'removed', 5000);
  }, 60_000);
});
