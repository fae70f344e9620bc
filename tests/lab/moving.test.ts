/**
 * Moving peers in the kernel-NAT pair lab (tests/lab/pair.ts, both sides behind port-restricted
 * cone NATs, so the link's path is direct): B exposes a TCP service with `nat expose`, A reaches
 * it through `nat connect`, and 4 s into a 50 MB transfer at about 5 MB/s A's LAN address
 * changes (the old address removed, a new one added, the default route set again).
 *
 * - With the default settings (the streams straight on the direct pair's socket, route `direct`
 *   before the move and again after it), the link restarts ICE on the same session and the 50 MB
 *   arrive intact (SHA-256 equal), in either direction, with no `stream-reset` nor `link-lost`:
 *   libudx resends the packets in flight at the move only to A's old address, so the link resumes
 *   each stream on a new udx stream pair from the receiver's byte count (link/channel.ts). The
 *   gap between the `path` event that starts the restart and the next one is printed.
 * - The same with `nat connect --no-direct-streams` (the streams on the sealed route).
 * - The same across a NAT rebinding: router A forgets its mappings and maps to other ports; the
 *   expose side's consent goes unanswered, and it restarts ICE.
 * - The same when B (the exposing side) moves.
 * - Whatever happens, the reader never sees a clean end of stream short of the bytes sent.
 *
 * MOVING_LOG=1 prints every event of both tunnel commands.
 */
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { NAT_CLI, RENDEZVOUS, jsonLines, startNatServer, waitFor } from './ice-lab.js';
import { labAvailable, listLabNamespaces } from './index.js';
import type { LabProcess } from './netns.js';
import { createPairLab, type PairLab } from './pair.js';
import { type TransferReport, moveClient, transferReports, writeMovingTool } from './moving-lab.js';
import { type Json, expectIntact, pathGap, routes } from './moving-checks.js';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] moving-peer lab skipped: ${availability.reason}`);

const BYTES = 50 * 1000 * 1000;
const RATE = 5 * 1000 * 1000;
const SERVICE_PORT = 15461;
const TUNNEL_PORT = 15462;
/** When A moves, ms after the transfer starts. */
const MOVE_AFTER_MS = 4000;
/** A's new LAN address (the old one is 198.18.1.2, pair.ts). */
const NEW_ADDRESS = '198.18.1.77';

/** The lab with `nat-server`, the service and `nat expose` behind B, `nat connect` behind A, all up. */
interface Tunnel {
  lab: PairLab;
  service: LabProcess;
  expose: LabProcess;
  connect: LabProcess;
  tool: string;
  /** nat-server (STUN, TURN, rendezvous); restartServer() replaces it. */
  server: LabProcess;
}

async function startTunnel(serviceArgs: (tool: string) => string[], connectArgs: readonly string[] = []): Promise<Tunnel> {
  const lab = await createPairLab({ a: 'port-restricted-cone', b: 'port-restricted-cone' });
  try {
    const tool = writeMovingTool(lab);
    const server = await startNatServer(lab);
    const service = lab.spawn('clientB', [process.execPath, tool, ...serviceArgs(tool)]);
    await waitFor(() => /serving/.test(service.output()) || service.hasExited(), 10_000, 'the service');
    const expose = lab.spawn('clientB', [
      process.execPath,
      NAT_CLI,
      'expose',
      `127.0.0.1:${SERVICE_PORT}`,
      '--name',
      'moving',
      '--allow-any',
      '--rendezvous',
      RENDEZVOUS,
      '--identity',
      join(lab.tmpDir, 'expose.key'),
      '--json',
    ]);
    await waitFor(
      () => jsonLines(expose).some((e) => e.event === 'ready') || expose.hasExited(),
      20_000,
      'nat expose ready',
      () => expose.output(),
    );
    const connect = lab.spawn('clientA', [
      process.execPath,
      NAT_CLI,
      'connect',
      'moving',
      '--listen',
      `127.0.0.1:${TUNNEL_PORT}`,
      '--rendezvous',
      RENDEZVOUS,
      '--identity',
      join(lab.tmpDir, 'connect.key'),
      '--json',
      ...connectArgs,
    ]);
    // the link first: the transfer must run on a direct path (or the relay with --relay-only) when A moves
    const path = connectArgs.includes('--relay-only') ? 'relay' : 'direct';
    await waitFor(
      () => jsonLines(connect).some((e) => e.event === 'path' && e.path === path) || connect.hasExited(),
      30_000,
      `a ${path} path`,
      () => connect.output(),
    );
    return { lab, service, expose, connect, tool, server };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

const labs: PairLab[] = [];
afterEach(async () => {
  const done = labs.splice(0);
  await Promise.all(done.map((l) => l.destroy()));
  for (const l of done) expect(listLabNamespaces().filter((n) => l.namespaces.includes(n))).toEqual([]);
});

/** The gap the tunnel reported, and every event, for the log. */
function describeRun(t: Tunnel, reader: TransferReport | undefined, sender: TransferReport | undefined): string {
  return [`reader: ${JSON.stringify(reader)}`, `sender: ${JSON.stringify(sender)}`, `connect: ${t.connect.output()}`, `expose: ${t.expose.output()}`].join(
    '\n',
  );
}

describe.skipIf(!availability.ok)('a peer that moves mid-transfer (kernel NATs)', () => {
  /**
   * B's service sends 50 MB (or A sends them to B's sink with `direction: 'up'`) through the
   * tunnel; `move` runs 4 s in. Checks every byte intact by hash, no reset, and (default settings)
   * the direct route before the move and at the end on both sides; returns the tunnel and the log.
   */
  async function transferAcross(
    move: (t: Tunnel) => Promise<void>,
    o: { readonly connectArgs?: readonly string[]; readonly direction?: 'down' | 'up' } = {},
  ): Promise<{ t: Tunnel; log: string }> {
    const up = o.direction === 'up';
    const t = await startTunnel(() => (up ? ['sink', String(SERVICE_PORT)] : ['source', String(SERVICE_PORT), String(BYTES), String(RATE)]), o.connectArgs);
    labs.push(t.lab);
    const client = up
      ? t.lab.exec('clientA', [process.execPath, t.tool, 'write', String(TUNNEL_PORT), String(BYTES), String(RATE)], { timeoutMs: 120_000 })
      : t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 120_000 });
    await delay(MOVE_AFTER_MS);
    const direct = o.connectArgs === undefined;
    // steady state: the streams run straight on the direct pair's socket
    if (direct) for (const p of [t.connect, t.expose]) expect(routes(p).at(-1), p.output()).toBe('direct');
    await move(t);
    const c = await client;
    const service = up ? 'received' : 'sent';
    await waitFor(
      () => transferReports(t.service.output()).some((x) => x.event === service),
      90_000,
      'the service to report',
      () => t.service.output(),
    );
    const mine = transferReports(c.stdout).find((x) => x.event === (up ? 'sent' : 'received'));
    const theirs = transferReports(t.service.output()).find((x) => x.event === service);
    const [reader, sender] = up ? [theirs, mine] : [mine, theirs];
    const log = describeRun(t, reader, sender);
    if (process.env.MOVING_LOG === '1') console.log(log);
    expectIntact(reader, sender, BYTES, log);
    for (const p of [t.connect, t.expose])
      expect(
        jsonLines(p).filter((e) => e.event === 'stream-reset' || e.event === 'link-lost'),
        log,
      ).toEqual([]);
    if (direct) for (const p of [t.connect, t.expose]) expect(routes(p).at(-1), log).toBe('direct');
    return { t, log };
  }

  /** A one-line summary: bytes, hash, the gap on `side`'s path events, the routes. */
  const summary = (t: Tunnel, side: LabProcess, log: string): string => {
    const gap = pathGap(jsonLines(side) as Json[]);
    expect(gap, log).toBeDefined();
    return `${BYTES} bytes, SHA-256 equal; path gap ${gap!.ms} ms (${gap!.from} -> ${gap!.to}); routes connect ${routes(t.connect).join(',')} expose ${routes(t.expose).join(',')}`;
  };

  it("default settings: 50 MB from B arrive intact at A across A's address change (direct route before and after)", { timeout: 180_000 }, async () => {
    const { t, log } = await transferAcross((t) => moveClient(t.lab, 'a', NEW_ADDRESS));
    console.log(`moving (A moves, reader behind nat connect): ${summary(t, t.connect, log)}`);
  });

  it("default settings: 50 MB from A arrive intact at B across A's address change", { timeout: 180_000 }, async () => {
    const { t, log } = await transferAcross((t) => moveClient(t.lab, 'a', NEW_ADDRESS), { direction: 'up' });
    console.log(`moving (A moves, reader behind nat expose): ${summary(t, t.connect, log)}`);
  });

  it('--no-direct-streams: 50 MB arrive intact when the exposing side moves', { timeout: 180_000 }, async () => {
    const { t, log } = await transferAcross((t) => moveClient(t.lab, 'b', '198.19.1.77'), { connectArgs: ['--no-direct-streams'] });
    console.log(`moving (the exposing side moves, --no-direct-streams): ${summary(t, t.expose, log)}`);
  });

  it('--no-direct-streams: 50 MB arrive intact across the address change on the sealed route', { timeout: 180_000 }, async () => {
    const { t, log } = await transferAcross((t) => moveClient(t.lab, 'a', NEW_ADDRESS), { connectArgs: ['--no-direct-streams'] });
    console.log(`moving (A moves, --no-direct-streams): ${summary(t, t.connect, log)}`);
  });

  it(
    'default settings: 50 MB arrive intact across a NAT rebinding (router A maps to new ports): ICE restarts when consent goes unanswered',
    { timeout: 180_000 },
    async () => {
      const { t, log } = await transferAcross(async (t) => {
        // the mapping A's packets had is gone, and the router gives them another port from now on
        const before = jsonLines(t.connect).filter((e) => e.event === 'path');
        const oldPort = Number(
          String((before.at(-1)?.localCandidate as { address?: string } | undefined)?.address ?? ':0')
            .split(':')
            .at(-1),
        );
        const range = oldPort >= 20_000 && oldPort < 30_000 ? '40000-49999' : '20000-29999';
        await t.lab.exec('routerA', ['nft', `insert rule inet natlab postrouting oifname "wan0" meta l4proto udp snat ip to ${t.lab.a.router.wan}:${range}`], {
          check: true,
        });
        await t.lab.exec('routerA', ['conntrack', '-F'], { timeoutMs: 5000 });
      });
      console.log(`moving (NAT rebinding): ${summary(t, t.expose, log)}`);
    },
  );

  it(
    'default settings: 50 MB arrive intact when the exposing side moves: it restarts ICE through a new rendezvous connection',
    { timeout: 180_000 },
    async () => {
      const { t, log } = await transferAcross((t) => moveClient(t.lab, 'b', '198.19.1.77'));
      console.log(`moving (the exposing side moves): ${summary(t, t.expose, log)}`);
    },
  );
});

describe.skipIf(!availability.ok)('the relay restarts mid-transfer (kernel NATs)', () => {
  it('50 MB through a TURN relay arrive intact when nat-server restarts: ICE restarts with a new allocation', { timeout: 180_000 }, async () => {
    const t = await startTunnel(() => ['source', String(SERVICE_PORT), String(BYTES), String(RATE)], ['--relay-only']);
    labs.push(t.lab);
    const read = t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 150_000 });
    await delay(MOVE_AFTER_MS);
    const before = jsonLines(t.connect).filter((e) => e.event === 'path');
    const oldRelay = JSON.stringify(before.at(-1)?.localCandidate);
    // the TURN server forgets every allocation (and the rendezvous every registration)
    await t.server.stop(1000);
    const restarted = Date.now();
    t.server = await startNatServer(t.lab);
    const r = await read;
    const reader = transferReports(r.stdout).find((x) => x.event === 'received');
    await waitFor(
      () => transferReports(t.service.output()).some((x) => x.event === 'sent'),
      60_000,
      'the source to report',
      () => describeRun(t, transferReports(r.stdout).at(-1), undefined),
    );
    const sender = transferReports(t.service.output()).find((x) => x.event === 'sent');
    const log = describeRun(t, reader, sender);
    if (process.env.MOVING_LOG === '1') console.log(log);
    expectIntact(reader, sender, BYTES, log);
    for (const p of [t.connect, t.expose])
      expect(
        jsonLines(p).filter((e) => e.event === 'stream-reset' || e.event === 'link-lost'),
        log,
      ).toEqual([]);
    // a new path through a new allocation: A's relayed candidate is another one
    const after = jsonLines(t.connect)
      .filter((e) => e.event === 'path')
      .slice(before.length)
      .filter((e) => e.restarting !== true);
    expect(after.length, log).toBeGreaterThan(0);
    const last = after.at(-1)!;
    expect(last.path, log).toBe('relay');
    expect((last.localCandidate as { type?: string }).type, log).toBe('relay');
    expect(JSON.stringify(last.localCandidate), log).not.toBe(oldRelay);
    const sinceStop = Date.parse(String(after[0]!.time)) - restarted;
    const gap = pathGap(jsonLines(t.connect) as Json[]);
    console.log(
      `moving (nat-server restarts, relay path): ${BYTES} bytes, SHA-256 equal; path gap ${gap?.ms} ms, new relay path ${sinceStop} ms after nat-server stopped (${oldRelay} -> ${JSON.stringify(last.localCandidate)}); routes connect ${routes(t.connect).join(',')} expose ${routes(t.expose).join(',')}`,
    );
  });
});
