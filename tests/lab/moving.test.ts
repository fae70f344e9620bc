/**
 * Moving peers in the kernel-NAT pair lab (tests/lab/pair.ts, both sides behind port-restricted
 * cone NATs, so the link's path is direct): B exposes a TCP service with `nat expose`, A reaches
 * it through `nat connect`, and 4 s into a 50 MB transfer at about 5 MB/s A's LAN address
 * changes (the old address removed, a new one added, the default route set again).
 *
 * - Whatever happens to the link, the reader of the transfer (behind `nat connect` when B's
 *   service sends, behind `nat expose` when A sends) must never see a clean end of stream with
 *   fewer bytes than were sent: either every byte arrives (SHA-256 equal to the sender's), or its
 *   TCP connection is reset (ECONNRESET) and the tunnel's JSON events say why (`stream-reset`).
 *   With the default direct route, libudx resends B's packets in flight at the move only to A's
 *   old address, so B's stream times out and A's is reset; A's own packets reach B (B did not
 *   move), so the other direction arrives intact.
 * - With `nat connect --no-direct-streams` (the streams on the sealed route through the path),
 *   the link restarts ICE on the same session and the 50 MB arrive intact, the gap between the
 *   `path` event that starts the restart and the next one printed.
 * - The same across a NAT rebinding: router A forgets its mappings and maps to other ports; the
 *   expose side's consent goes unanswered, and it restarts ICE.
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
}

async function startTunnel(serviceArgs: (tool: string) => string[], connectArgs: readonly string[] = []): Promise<Tunnel> {
  const lab = await createPairLab({ a: 'port-restricted-cone', b: 'port-restricted-cone' });
  try {
    const tool = writeMovingTool(lab);
    await startNatServer(lab);
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
    // the link first: the transfer must run on a direct path when A moves
    await waitFor(
      () => jsonLines(connect).some((e) => e.event === 'path' && e.path === 'direct') || connect.hasExited(),
      30_000,
      'a direct path',
      () => connect.output(),
    );
    return { lab, service, expose, connect, tool };
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

/** The `stream-reset` reasons a tunnel command printed. */
const resets = (p: LabProcess): string =>
  `stream-reset: ${
    jsonLines(p)
      .filter((e) => e.event === 'stream-reset')
      .map((e) => String(e.reason))
      .join('; ') || 'none'
  }`;

/**
 * The reader's end is honest: a clean end of stream only with every byte, intact; otherwise a
 * reset. Returns a one-line summary for the log.
 */
function expectHonestEnd(reader: TransferReport | undefined, sender: TransferReport | undefined, log: string): string {
  expect(reader, log).toBeDefined();
  expect(sender, log).toBeDefined();
  const received = reader!.received ?? 0;
  if (reader!.end === 'eof') {
    expect(received, `a clean end of stream after ${received} of ${sender!.bytes} bytes\n${log}`).toBe(BYTES);
    expect(reader!.sha256, log).toBe(sender!.sha256);
    return `intact: ${received} bytes, SHA-256 equal`;
  }
  expect(reader!.code, log).toBe('ECONNRESET');
  return `reset after ${received} bytes`;
}

describe.skipIf(!availability.ok)('a peer that moves mid-transfer (kernel NATs)', () => {
  it('the reader behind nat connect never sees a clean end of a cut-short stream', { timeout: 180_000 }, async () => {
    const t = await startTunnel(() => ['source', String(SERVICE_PORT), String(BYTES), String(RATE)]);
    labs.push(t.lab);
    const read = t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 120_000 });
    await delay(MOVE_AFTER_MS);
    await moveClient(t.lab, 'a', NEW_ADDRESS);
    const moved = Date.now();
    const r = await read;
    const reader = transferReports(r.stdout).find((x) => x.event === 'received');
    await waitFor(
      () => transferReports(t.service.output()).some((x) => x.event === 'sent'),
      60_000,
      'the source to report',
      () => t.service.output(),
    );
    const sender = transferReports(t.service.output()).find((x) => x.event === 'sent');
    const log = describeRun(t, reader, sender);
    // MOVING_LOG=1 (a developer's shortcut): every event of both tunnel commands
    if (process.env.MOVING_LOG === '1') console.log(log);
    const summary = expectHonestEnd(reader, sender, log);
    console.log(`moving (reader behind nat connect): ${summary}; the reader ended ${Date.now() - moved} ms after the move; ${resets(t.connect)}`);
    if (reader!.end === 'error')
      // the tunnel says why it reset the connection
      expect(
        jsonLines(t.connect).some((e) => e.event === 'stream-reset' && typeof e.reason === 'string'),
        log,
      ).toBe(true);
  });

  it('the reader behind nat expose never sees a clean end of a cut-short stream', { timeout: 180_000 }, async () => {
    const t = await startTunnel(() => ['sink', String(SERVICE_PORT)]);
    labs.push(t.lab);
    const write = t.lab.exec('clientA', [process.execPath, t.tool, 'write', String(TUNNEL_PORT), String(BYTES), String(RATE)], { timeoutMs: 120_000 });
    await delay(MOVE_AFTER_MS);
    await moveClient(t.lab, 'a', NEW_ADDRESS);
    const moved = Date.now();
    const w = await write;
    const sender = transferReports(w.stdout).find((x) => x.event === 'sent');
    await waitFor(
      () => transferReports(t.service.output()).some((x) => x.event === 'received'),
      90_000,
      'the sink to report',
      () => t.service.output(),
    );
    const reader = transferReports(t.service.output()).find((x) => x.event === 'received');
    const log = describeRun(t, reader, sender);
    // MOVING_LOG=1 (a developer's shortcut): every event of both tunnel commands
    if (process.env.MOVING_LOG === '1') console.log(log);
    const summary = expectHonestEnd(reader, sender, log);
    console.log(`moving (reader behind nat expose): ${summary}; the writer ended ${Date.now() - moved} ms after the move; ${resets(t.expose)}`);
    if (reader!.end === 'error')
      expect(
        jsonLines(t.expose).some((e) => e.event === 'stream-reset' && typeof e.reason === 'string'),
        log,
      ).toBe(true);
  });

  it(
    'a 50 MB transfer finishes intact across the address change: ICE restarts on the same link, and the gap is reported as path events',
    { timeout: 180_000 },
    async () => {
      const t = await startTunnel(() => ['source', String(SERVICE_PORT), String(BYTES), String(RATE)], ['--no-direct-streams']);
      labs.push(t.lab);
      const read = t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 120_000 });
      await delay(MOVE_AFTER_MS);
      await moveClient(t.lab, 'a', NEW_ADDRESS);
      const r = await read;
      const reader = transferReports(r.stdout).find((x) => x.event === 'received');
      await waitFor(
        () => transferReports(t.service.output()).some((x) => x.event === 'sent'),
        60_000,
        'the source to report',
        () => t.service.output(),
      );
      const sender = transferReports(t.service.output()).find((x) => x.event === 'sent');
      const log = describeRun(t, reader, sender);
      if (process.env.MOVING_LOG === '1') console.log(log);
      // every byte, intact, and no reset: the link and its stream lived through the move
      expect(reader?.end, log).toBe('eof');
      expect(reader?.received, log).toBe(BYTES);
      expect(reader?.sha256, log).toBe(sender?.sha256);
      const events = jsonLines(t.connect);
      expect(
        events.filter((e) => e.event === 'stream-reset' || e.event === 'link-lost'),
        log,
      ).toEqual([]);
      // the gap: from the path event that starts the restart to the next one (the new pair, from A's new address)
      const paths = events.filter((e) => e.event === 'path');
      const start = paths.findIndex((e) => e.restarting === true);
      expect(start, log).toBeGreaterThanOrEqual(0);
      const next = paths.slice(start + 1).find((e) => e.restarting !== true);
      expect(next, log).toBeDefined();
      const gapMs = Date.parse(String(next!.time)) - Date.parse(String(paths[start]!.time));
      console.log(
        `moving (ICE restart): ${reader!.received} bytes, SHA-256 equal; path gap ${gapMs} ms (${JSON.stringify(paths[start]!.localCandidate)} -> ${JSON.stringify(next!.localCandidate)})`,
      );
    },
  );

  it(
    'a 50 MB transfer finishes intact across a NAT rebinding (router A maps to new ports): ICE restarts when consent goes unanswered',
    { timeout: 180_000 },
    async () => {
      const t = await startTunnel(() => ['source', String(SERVICE_PORT), String(BYTES), String(RATE)], ['--no-direct-streams']);
      labs.push(t.lab);
      const read = t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 120_000 });
      await delay(MOVE_AFTER_MS);
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
      const r = await read;
      const reader = transferReports(r.stdout).find((x) => x.event === 'received');
      await waitFor(
        () => transferReports(t.service.output()).some((x) => x.event === 'sent'),
        60_000,
        'the source to report',
        () => t.service.output(),
      );
      const sender = transferReports(t.service.output()).find((x) => x.event === 'sent');
      const log = describeRun(t, reader, sender);
      if (process.env.MOVING_LOG === '1') console.log(log);
      expect(reader?.end, log).toBe('eof');
      expect(reader?.received, log).toBe(BYTES);
      expect(reader?.sha256, log).toBe(sender?.sha256);
      const paths = jsonLines(t.connect).filter((e) => e.event === 'path');
      const rebound = paths.slice(before.length).find((e) => e.restarting !== true);
      expect(rebound, log).toBeDefined();
      console.log(
        `moving (NAT rebinding): ${reader!.received} bytes, SHA-256 equal; new path at ${String(rebound!.time)} from ${JSON.stringify(rebound!.localCandidate)}`,
      );
    },
  );

  it('a 50 MB transfer finishes intact when the exposing side moves: it restarts ICE through a new rendezvous connection', { timeout: 180_000 }, async () => {
    const t = await startTunnel(() => ['source', String(SERVICE_PORT), String(BYTES), String(RATE)], ['--no-direct-streams']);
    labs.push(t.lab);
    const read = t.lab.exec('clientA', [process.execPath, t.tool, 'read', String(TUNNEL_PORT)], { timeoutMs: 120_000 });
    await delay(MOVE_AFTER_MS);
    await moveClient(t.lab, 'b', '198.19.1.77');
    const r = await read;
    const reader = transferReports(r.stdout).find((x) => x.event === 'received');
    await waitFor(
      () => transferReports(t.service.output()).some((x) => x.event === 'sent'),
      60_000,
      'the source to report',
      () => t.service.output(),
    );
    const sender = transferReports(t.service.output()).find((x) => x.event === 'sent');
    const log = describeRun(t, reader, sender);
    if (process.env.MOVING_LOG === '1') console.log(log);
    expect(reader?.end, log).toBe('eof');
    expect(reader?.received, log).toBe(BYTES);
    expect(reader?.sha256, log).toBe(sender?.sha256);
    const paths = jsonLines(t.expose).filter((e) => e.event === 'path');
    const start = paths.findIndex((e) => e.restarting === true);
    expect(start, log).toBeGreaterThanOrEqual(0);
    const next = paths.slice(start + 1).find((e) => e.restarting !== true);
    expect(next, log).toBeDefined();
    const gapMs = Date.parse(String(next!.time)) - Date.parse(String(paths[start]!.time));
    console.log(`moving (the exposing side moves): ${reader!.received} bytes, SHA-256 equal; path gap ${gapMs} ms`);
  });
});
