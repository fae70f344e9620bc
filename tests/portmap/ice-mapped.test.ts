/**
 * ICE with a port-mapped candidate (issue 7): two peers behind two symmetric kernel NATs
 * (endpoint-dependent mapping on both sides, the pair ICE otherwise relays: see
 * tests/lab/ice-matrix.test.ts), miniupnpd (PCP, NAT-PMP, UPnP IGD) on router B, `nat-server`
 * (STUN, TURN, rendezvous) on the internet side. `nat listen --port-map` behind router B maps its
 * host candidate's port and offers the router's external address and port as a server-reflexive
 * candidate; `nat ping` behind router A must reach it directly through that candidate, and pings
 * must cross. The control: a listener without --port-map behind the same router is reached
 * through the relay only. The listener must remove its mapping when the connection ends.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labAvailable, listLabNamespaces, type LabProcess } from '../lab/index.js';
import { jsonLines } from '../lab/ice-lab.js';
import type { PairLab } from '../lab/pair.js';
import { createMappedPairLab, miniupnpdAvailable, type MappedPairLab, type Miniupnpd, type PortMapReport } from '../lab/portmap-lab.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_CLI = `${repo}apps/cli/dist/main.js`;
const NODE = process.execPath;
const RENDEZVOUS = 'ws://203.0.113.1:8080/';

const lab0 = labAvailable();
const daemon0 = miniupnpdAvailable();
const skipReason = !lab0.ok ? lab0.reason : !daemon0.ok ? daemon0.reason : undefined;
if (skipReason) console.warn(`[portmap] ICE mapped-candidate test skipped: ${skipReason}`);

interface Endpoint {
  type: string;
  address: string;
}
interface PingJson {
  path: 'direct' | 'relay';
  localCandidate: Endpoint;
  remoteCandidate: Endpoint;
  connectMs: number;
  directMs: number | null;
  rttMs: number[];
  portMapping: PortMapReport | null;
}

async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(skipReason !== undefined)('ICE gathers a port-mapped candidate (miniupnpd) between two symmetric NATs', () => {
  let mapped: MappedPairLab | undefined;
  let lab: PairLab | undefined;
  let daemon: Miniupnpd | undefined;

  beforeAll(async () => {
    // nat-server on the internet side, miniupnpd on router B
    mapped = await createMappedPairLab('symmetric', 'symmetric');
    ({ lab, daemon } = mapped);
  }, 45_000);

  afterAll(async () => {
    await mapped?.destroy();
    for (const ns of lab?.namespaces ?? []) expect(listLabNamespaces()).not.toContain(ns);
  }, 30_000);

  it('connects directly through the mapped server-reflexive candidate with --port-map, through the relay without', { timeout: 45_000 }, async () => {
    const l = lab!;
    const listen = (name: string, extra: readonly string[]): LabProcess =>
      l.spawn('clientB', [NODE, NAT_CLI, 'listen', '--rendezvous', RENDEZVOUS, '--json', '--identity', join(l.tmpDir, `${name}.key`), ...extra]);
    const idOf = async (p: LabProcess): Promise<string> => {
      await waitFor(() => jsonLines(p).some((j) => typeof j.id === 'string') || p.hasExited(), 20_000, 'nat listen id');
      const id = jsonLines(p).find((j) => typeof j.id === 'string')?.id;
      if (typeof id !== 'string') throw new Error(`nat listen printed no id:\n${p.output()}`);
      return id;
    };
    const ping = async (id: string, name: string): Promise<{ code: number | null; json: PingJson | undefined; log: string }> => {
      const r = await l.exec(
        'clientA',
        [NODE, NAT_CLI, 'ping', id, '--rendezvous', RENDEZVOUS, '--json', '--count', '3', '--interval', '50', '--identity', join(l.tmpDir, `${name}.key`)],
        { timeoutMs: 30_000 },
      );
      const line = r.stdout.split('\n').find((x) => x.startsWith('{'));
      return {
        code: r.code,
        json: line === undefined ? undefined : (JSON.parse(line) as PingJson),
        log: `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
      };
    };

    const mappedListener = listen('b-mapped', ['--port-map']);
    const plainListener = listen('b-plain', []);
    const [mappedId, plainId] = await Promise.all([idOf(mappedListener), idOf(plainListener)]);
    expect(jsonLines(mappedListener)[0]?.portMapping).toEqual({ gateway: l.b.router.lan });
    expect(jsonLines(plainListener)[0]?.portMapping).toBeUndefined();

    const t = Date.now();
    // Beside them, a human-readable ping that asks router A, which maps nothing, for a mapping too:
    // the failure is reported and the ping still goes direct through the listener's mapping.
    const humanPing = l.exec(
      'clientA',
      [
        NODE,
        NAT_CLI,
        'ping',
        mappedId,
        '--rendezvous',
        RENDEZVOUS,
        '--count',
        '12',
        '--interval',
        '250',
        '--port-map',
        '--identity',
        join(l.tmpDir, 'a-human.key'),
      ],
      { timeoutMs: 30_000 },
    );
    const [mapped, plain] = await Promise.all([ping(mappedId, 'a-mapped'), ping(plainId, 'a-plain')]);
    const log = (which: string, r: { log: string }, p: LabProcess): string =>
      `${which} ping ${r.log}\nlistener: ${p.output()}\nminiupnpd: ${daemon?.process.output().slice(-2000)}`;
    console.log(
      `symmetric <-> symmetric in ${Date.now() - t} ms: with --port-map ${mapped.json?.path} (${mapped.json?.localCandidate.type} -> ${mapped.json?.remoteCandidate.type} ${mapped.json?.remoteCandidate.address}, connectMs ${mapped.json?.connectMs}, directMs ${mapped.json?.directMs}, rtt ${mapped.json?.rttMs.join('/')}); without ${plain.json?.path} (connectMs ${plain.json?.connectMs})`,
    );

    // The mapping the listener made: miniupnpd's grant of its host candidate's port, on router B's WAN address.
    const reports = jsonLines(mappedListener)
      .filter((j) => j.event === 'port-mapping')
      .map((j) => j.portMapping as PortMapReport);
    const granted = reports.find((r) => r.error === null && r.externalAddress === mapped.json?.remoteCandidate.address);
    expect(granted, log('mapped', mapped, mappedListener)).toBeDefined();
    expect(granted!.method).toMatch(/^(pcp|natpmp|upnp)$/);
    expect(granted!.gateway).toBe(l.b.router.lan);
    expect(granted!.internalAddress?.startsWith(`${l.b.client.lanAddress}:`)).toBe(true);
    expect(granted!.externalAddress?.startsWith(`${l.b.router.wan}:`)).toBe(true);

    // With it: direct, to the mapped candidate, and data crosses.
    expect(mapped.code, log('mapped', mapped, mappedListener)).toBe(0);
    expect(mapped.json?.path, log('mapped', mapped, mappedListener)).toBe('direct');
    expect(mapped.json?.remoteCandidate).toEqual({ type: 'srflx', address: granted!.externalAddress });
    expect(mapped.json?.rttMs.length ?? 0).toBeGreaterThan(0);
    expect(mapped.json?.portMapping).toBeNull();
    const paths = jsonLines(mappedListener).filter((j) => j.event === 'path');
    expect(paths.at(-1)?.path).toBe('direct');

    // Without it (the control): the same pair of NATs takes the relay, and data crosses.
    expect(plain.code, log('plain', plain, plainListener)).toBe(0);
    expect(plain.json?.path, log('plain', plain, plainListener)).toBe('relay');
    expect(plain.json?.remoteCandidate.type === 'relay' || plain.json?.localCandidate.type === 'relay').toBe(true);
    expect(plain.json?.rttMs.length ?? 0).toBeGreaterThan(0);
    expect(jsonLines(plainListener).some((j) => j.event === 'port-mapping')).toBe(false);

    const human = await humanPing;
    expect(human.code, human.stdout + human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^connected to \S+ in [\d.]+ ms: (direct|relay) \(/m);
    expect(human.stdout).toMatch(/^ping \d+: [\d.]+ ms over direct$/m);
    expect(human.stdout).toContain(`port mapping: failed (gateway ${l.a.router.lan}): no port mapping method works with ${l.a.router.lan}`);
    const grants = reports.filter((r) => r.error === null);
    expect(grants.length).toBe(2);
    expect(new Set(grants.map((r) => r.externalAddress)).size).toBe(2);

    // The connections ended (the pingers said bye): their mappings are gone from the router while the listener still runs.
    await waitFor(async () => (await daemon!.natRules()).length === 0, 8_000, 'the listener to remove its mappings').catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}: ${(await daemon!.natRules()).join('\n')}\n${mappedListener.output()}`);
    });
    expect(mappedListener.hasExited()).toBe(false);

    // Ctrl-C: the listener exits (no renewal timer keeps it alive).
    for (const p of [mappedListener, plainListener]) process.kill(p.pid, 'SIGINT');
    const exits = await Promise.race([
      Promise.all([mappedListener.exited, plainListener.exited]),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 8000)),
    ]);
    expect(
      exits?.map((e) => e.code),
      `${mappedListener.output()}\n${plainListener.output()}`,
    ).toEqual([0, 0]);
  });
});
