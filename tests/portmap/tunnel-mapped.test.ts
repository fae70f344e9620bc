/**
 * The peer tunnel with a port-mapped candidate (issues 6 and 7): two symmetric kernel NATs (the
 * pair that ICE otherwise relays), miniupnpd (PCP, NAT-PMP, UPnP IGD) on router B, `nat-server`
 * on the internet side. `nat expose --port-map` behind router B, next to a TCP service that
 * answers the SHA-256 of what it gets, maps each peer link's ports; `nat connect` behind router A
 * must get a direct link through that mapping and carry megabytes intact. Router A maps nothing:
 * a `nat connect --port-map` there reports the failure and still goes direct.
 *
 * No mapping may outlive its link: a second `nat connect --port-map` behind router B (which maps)
 * and both links end; the exposer's mappings go with its links, the connector's with each
 * attempt to relink, and the exposer stopped by SIGTERM leaves miniupnpd's table empty.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labAvailable, listLabNamespaces, type LabProcess } from '../lab/index.js';
import { NAT_CLI, RENDEZVOUS, jsonLines as events, waitFor } from '../lab/ice-lab.js';
import type { PairNsRef } from '../lab/pair.js';
import { createMappedPairLab, miniupnpdAvailable, type MappedPairLab, type PortMapReport } from '../lab/portmap-lab.js';

const TOOL = fileURLToPath(new URL('../tunnel/tcp-tool.mjs', import.meta.url));
const NODE = process.execPath;
const SERVICE_PORT = 15441;
const PORT_A = 15442;
const PORT_B = 15443;

const lab0 = labAvailable();
const daemon0 = miniupnpdAvailable();
const skipReason = !lab0.ok ? lab0.reason : !daemon0.ok ? daemon0.reason : undefined;
if (skipReason) console.warn(`[portmap] tunnel mapped-candidate test skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('the tunnel through a port-mapped candidate (miniupnpd) between two symmetric NATs', () => {
  let mapped: MappedPairLab | undefined;

  beforeAll(async () => {
    mapped = await createMappedPairLab();
  }, 45_000);

  afterAll(async () => {
    await mapped?.destroy();
    for (const ns of mapped?.lab.namespaces ?? []) expect(listLabNamespaces()).not.toContain(ns);
  }, 30_000);

  it('expose --port-map behind B: connect behind A links directly, 4 MB by hash; mappings end with their links', { timeout: 60_000 }, async () => {
    const l = mapped!.lab;
    const d = mapped!.daemon;
    const cli = (ns: PairNsRef, key: string, args: readonly string[]): LabProcess =>
      l.spawn(ns, [NODE, NAT_CLI, ...args, '--rendezvous', RENDEZVOUS, '--identity', join(l.tmpDir, `${key}.key`), '--keepalive', '2000']);
    const service = l.spawn('clientB', [NODE, TOOL, 'serve', String(SERVICE_PORT)]);
    const expose = cli('clientB', 'expose', ['expose', `127.0.0.1:${SERVICE_PORT}`, '--name', 'mapped-svc', '--allow-any', '--port-map', '--json']);
    let connectA: LabProcess | undefined;
    let connectB: LabProcess | undefined;
    const log = (): string =>
      `expose:\n${expose.output()}\nconnect A:\n${connectA?.output() ?? ''}\nconnect B:\n${connectB?.output() ?? ''}\nminiupnpd:\n${d.process.output().slice(-2000)}`;
    const until = async (pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> => {
      const end = Date.now() + ms;
      while (!(await pred())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${log()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const rules = (): Promise<string[]> => d.natRules();
    const send = async (port: number, ns: PairNsRef, bytes: number): Promise<unknown> => {
      const r = await l.exec(ns, [NODE, TOOL, 'send', String(port), String(bytes)], { timeoutMs: 20_000 });
      const line = r.stdout.split('\n').find((x) => x.startsWith('{'));
      return line === undefined ? { exit: r.code, stderr: r.stderr } : JSON.parse(line);
    };

    await waitFor(() => /serving/.test(service.output()) || service.hasExited(), 10_000, 'the service');
    await until(() => events(expose).some((e) => e.event === 'ready') || expose.hasExited(), 20_000, 'nat expose ready');
    expect(events(expose).find((e) => e.event === 'ready')?.portMapping).toEqual({ gateway: l.b.router.lan });

    const t = Date.now();
    // Behind A, whose router maps nothing, with --port-map (reported as failed); behind B, human-readable, with a mapping of its own.
    connectA = cli('clientA', 'a', ['connect', 'mapped-svc', '--listen', `127.0.0.1:${PORT_A}`, '--port-map', '--json']);
    connectB = cli('clientB', 'b2', ['connect', 'mapped-svc', '--listen', `127.0.0.1:${PORT_B}`, '--port-map']);
    const a = connectA;
    const b = connectB;
    await until(() => events(a).some((e) => e.event === 'link') || a.hasExited(), 20_000, 'the link from behind A');
    await until(() => events(a).some((e) => e.event === 'path' && e.path === 'direct') || a.hasExited(), 10_000, 'the direct path from behind A');
    const linkedMs = Date.now() - t;
    const idA = events(a).find((e) => e.event === 'listening')?.id;
    expect(events(a).find((e) => e.event === 'listening')?.portMapping).toEqual({ gateway: l.a.router.lan });

    // The exposer's mapping for A's link: a grant on router B's WAN address, and A's direct path goes to it.
    const granted = events(expose)
      .filter((e) => e.event === 'port-mapping' && e.peer === idA)
      .map((e) => e.portMapping as PortMapReport)
      .find((r) => r.error === null);
    expect(granted, log()).toBeDefined();
    expect(granted!.method).toMatch(/^(pcp|natpmp|upnp)$/);
    expect(granted!.gateway).toBe(l.b.router.lan);
    expect(granted!.internalAddress?.startsWith(`${l.b.client.lanAddress}:`)).toBe(true);
    expect(granted!.externalAddress?.startsWith(`${l.b.router.wan}:`)).toBe(true);
    const directA = events(a)
      .filter((e) => e.event === 'path' && e.path === 'direct')
      .at(-1);
    expect(directA?.remoteCandidate, log()).toEqual({ type: 'srflx', address: granted!.externalAddress });
    // A's own --port-map: router A offers no method, which is reported, and changes nothing else.
    await until(() => events(a).some((e) => e.event === 'port-mapping'), 10_000, "the port-mapping report of A's connector");
    const failedA = events(a).find((e) => e.event === 'port-mapping')?.portMapping as PortMapReport | undefined;
    expect(failedA?.gateway).toBe(l.a.router.lan);
    expect(failedA?.error, log()).not.toBeNull();
    expect(failedA?.externalAddress).toBeNull();

    // 4 MB from behind A to the service behind B, checked by SHA-256, over the direct path.
    const transfer = (await send(PORT_A, 'clientA', 4 << 20)) as { ms?: number };
    expect(transfer, log()).toMatchObject({ ok: 1, bad: 0, errors: [] });
    expect(
      events(a)
        .filter((e) => e.event === 'path')
        .at(-1)?.path,
      log(),
    ).toBe('direct');
    expect(events(a).filter((e) => e.event === 'link' || e.event === 'reconnected' || e.event === 'link-lost')).toHaveLength(1);

    // Behind B, human-readable: its own mapping on router B is reported, and the tunnel works.
    await until(() => /peer link up to mapped-svc/.test(b.output()) || b.hasExited(), 20_000, 'the link from behind B');
    expect(b.output()).toContain(`port mapping: each peer link's ports are mapped on ${l.b.router.lan} and unmapped when the link ends`);
    await until(() => /^port mapping: (pcp|natpmp|upnp) /m.test(b.output()) || b.hasExited(), 10_000, "the mapping of B's connector");
    expect(b.output()).toMatch(
      new RegExp(
        `^port mapping: (pcp|natpmp|upnp) ${l.b.router.wan.replaceAll('.', '\\.')}:\\d+ -> ${l.b.client.lanAddress.replaceAll('.', '\\.')}:\\d+ \\(gateway ${l.b.router.lan.replaceAll('.', '\\.')}\\)$`,
        'm',
      ),
    );
    expect(await send(PORT_B, 'clientB', 1 << 20), log()).toMatchObject({ ok: 1, bad: 0 });
    // One mapping per link on the exposer (A's, B's) plus B's connector's own.
    const grantsOfExpose = events(expose).filter((e) => e.event === 'port-mapping' && (e.portMapping as PortMapReport).error === null);
    expect(grantsOfExpose.length, log()).toBe(2);
    expect((await rules()).length, log()).toBe(3);

    // A stops (SIGTERM): its link ends, and the exposer unmaps that link's port while it keeps running.
    process.kill(a.pid, 'SIGTERM');
    expect((await a.exited).code, log()).toBe(0);
    await until(async () => (await rules()).length === 2, 8_000, 'the exposer to unmap the ended link');
    expect(expose.hasExited()).toBe(false);

    // The exposer stops (SIGTERM): every mapping it made is removed. B's connector loses its link
    // and tries to relink; its old link's mapping and each failed attempt's are removed too.
    process.kill(expose.pid, 'SIGTERM');
    expect((await expose.exited).code, log()).toBe(0);
    await until(() => /peer link lost/.test(b.output()), 10_000, "B's connector to see the link lost");
    await until(() => /reconnecting failed/.test(b.output()), 10_000, "a failed relink of B's connector");
    await until(async () => (await rules()).length === 0, 8_000, 'no mapping left on router B').catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\nrules: ${(await rules()).join('\n')}`);
    });
    expect(b.hasExited()).toBe(false);
    process.kill(b.pid, 'SIGTERM');
    expect((await b.exited).code, log()).toBe(0);
    expect(await rules()).toEqual([]);
    console.log(
      `[portmap] tunnel sym/sym with expose --port-map: direct link in ${linkedMs} ms (remote ${granted!.externalAddress} by ${granted!.method}), 4 MB by hash in ${transfer.ms} ms`,
    );
  });
});
