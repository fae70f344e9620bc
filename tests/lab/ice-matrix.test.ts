/**
 * ICE between two peers behind two real kernel NATs (tests/lab/pair.ts): `nat-server` (STUN,
 * TURN and rendezvous) on the internet side, `nat listen` behind NAT B, `nat ping` behind NAT A.
 * For every pair of behaviours the ping must connect, take the expected path
 * ({@link expectedIcePath}: relay when both sides are symmetric, direct otherwise, through
 * birthday punching where ordinary checks cannot get through) and get RTT samples. The matrix
 * (path and connectMs) is printed. One pair runs again with 20% UDP loss on both routers.
 *
 * A 'udp-blocked' side lets only TCP through: it gets its relayed candidate from TURN over TCP
 * (the rendezvous hands out `turn:...?transport=tcp` beside the UDP URIs), so every pair with
 * one must connect through the relay.
 *
 * The same labs carry the peer tunnel's matrix (issue 6): an echo service and `nat expose` behind
 * NAT B, and for every pair `nat connect` behind NAT A; one TCP connection through the tunnel
 * carries 1 MiB each way (SHA-256 of what came back equals that of what went out) and the link's
 * last path (`path` events of `nat connect --json`) must be {@link expectedIcePath}'s, a relay
 * pair never going direct. The link's route (`link`/`route` events) must end `direct` (its udx
 * streams on the ICE socket itself) on every direct pair but a punched one, which keeps the shim
 * route, and a relay pair's never be `direct`. Its matrix (path and time to first byte) is printed too.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { NAT_CLI, RENDEZVOUS, jsonLines, startIceServices, waitFor } from './ice-lab.js';
import { BEHAVIOURS, labAvailable, listLabNamespaces, type Behaviour } from './index.js';
import type { LabProcess } from './netns.js';
import { expectedIcePath, needsPunching, pool } from './one-address-pairs.js';
import { createPairLab, injectForwardLoss, reconfigurePairSide, type PairLab } from './pair.js';

const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] ICE matrix skipped: ${availability.reason}`);

/** The behaviours of the matrix (rows: NAT A, the pinging side; columns: NAT B, the listener). */
const MATRIX: readonly Behaviour[] = BEHAVIOURS;
/** How many pair labs run at once. */
const CONCURRENCY = 4;
/** The tunnel check's echo service (behind B), its local port (behind A) and bytes each way. */
const TCP_TOOL = fileURLToPath(new URL('../tunnel/tcp-tool.mjs', import.meta.url));
const ECHO_PORT = 15451;
const TUNNEL_PORT = 15452;
const TUNNEL_BYTES = 1 << 20;
/**
 * The server: one address (`nat-server --listen` only, as most servers on the internet have), so
 * every NAT mapping is learned without RFC 5780's OTHER-ADDRESS. ICE_MATRIX_SERVER=two-address
 * (a developer's shortcut, for comparison) adds `--alternate`.
 */
const SERVER_SHAPE = { addresses: process.env.ICE_MATRIX_SERVER === 'two-address' ? 2 : 1 } as const;

interface PingJson {
  path: 'direct' | 'relay';
  localCandidate: { type: string; address: string };
  remoteCandidate: { type: string; address: string };
  connectMs: number;
  directMs: number | null;
  rttMs: number[];
  punched?: boolean;
}

/** What `tcp-tool.mjs roundtrip` prints. */
interface EchoJson {
  ok: boolean;
  error?: string;
  received: number;
  firstByteMs: number | null;
  ms: number;
}

/** The tunnel check of one pair: the echo through `nat connect`, and its path events in order. */
interface TunnelOutcome {
  echo?: EchoJson;
  paths: string[];
  /** Whether the last path is one birthday punching opened. */
  punched: boolean;
  /** The link's routes in order (`link` and `route` events): `shim`, then `direct` once both sides are on a direct pair's own socket. */
  routes: string[];
  /** From starting `nat connect` to its `listening` line (the rendezvous and the link), ms. */
  upMs?: number;
  log: string;
}

interface PairOutcome {
  a: Behaviour;
  b: Behaviour;
  code: number | null;
  ping?: PingJson;
  tunnel?: TunnelOutcome;
  /** Wall time of the pair: NAT A set up, `nat ping` run (lab, server and listener are shared by a column). */
  wallMs: number;
  log: string;
  namespaces: readonly string[];
}

/**
 * One column of the matrix: NAT B of behaviour `b` with `nat listen` behind it and `nat-server`
 * on the internet side, started once; then for each behaviour of `as` in turn, NAT A gets that
 * behaviour (its ruleset replaced and its connection tracking flushed: reconfigurePairSide) and
 * a fresh `nat ping` runs behind it. Sharing the lab, server and listener across a column saves
 * two of every three Node processes the matrix would otherwise start. A column whose lab,
 * server or listener does not come up (a loaded machine) is tried once more.
 */
async function runColumn(b: Behaviour, as: readonly Behaviour[], lossPercent = 0, pings = 3, tunnel = false): Promise<PairOutcome[]> {
  for (let attempt = 0; ; attempt++) {
    const started = Date.now();
    let lab: PairLab | undefined;
    try {
      lab = await createPairLab({ a: as[0]!, b });
      if (lossPercent > 0) {
        await injectForwardLoss(lab, 'routerA', lossPercent);
        await injectForwardLoss(lab, 'routerB', lossPercent);
      }
      const { server, listener, id } = await startIceServices(lab, { server: SERVER_SHAPE });
      const expose = tunnel ? await startExpose(lab) : undefined;
      const outcomes: PairOutcome[] = [];
      let t = started;
      for (const [i, a] of as.entries()) {
        if (i > 0) lab = await reconfigurePairSide(lab, 'a', a);
        const listenFrom = listener.output().length;
        const r = await lab.exec(
          'clientA',
          [
            process.execPath,
            NAT_CLI,
            'ping',
            id,
            '--rendezvous',
            RENDEZVOUS,
            '--json',
            '--count',
            String(pings),
            '--interval',
            '50',
            '--identity',
            join(lab.tmpDir, 'a.key'),
          ],
          { timeoutMs: 35_000 },
        );
        const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
        const ping = line === undefined ? undefined : (JSON.parse(line) as PingJson);
        const log = `ping exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nping stdout: ${r.stdout}\nping stderr: ${r.stderr}\nlisten: ${listener.output().slice(listenFrom)}\nserver: ${server.output()}`;
        const tunnelOutcome = expose === undefined ? undefined : await tunnelThrough(lab, expectedIcePath(a, b), expose);
        outcomes.push({
          a,
          b,
          code: r.code,
          ...(ping && 'path' in ping ? { ping } : {}),
          ...(tunnelOutcome ? { tunnel: tunnelOutcome } : {}),
          wallMs: Date.now() - t,
          log,
          namespaces: lab.namespaces,
        });
        t = Date.now();
      }
      return outcomes;
    } catch (e) {
      const log = `lab error: ${(e as Error).stack ?? String(e)}`;
      if (attempt === 0) {
        console.warn(`[lab] column ${b} tried again after ${log}`);
        continue;
      }
      return as.map((a) => ({ a, b, code: null, wallMs: Date.now() - started, log, namespaces: lab?.namespaces ?? [] }));
    } finally {
      await lab?.destroy();
    }
  }
}

/** The echo service and `nat expose` (service `matrix-echo`) behind NAT B; waits for `ready`. */
async function startExpose(lab: PairLab): Promise<LabProcess> {
  const service = lab.spawn('clientB', [process.execPath, TCP_TOOL, 'echo', String(ECHO_PORT)]);
  await waitFor(() => /serving/.test(service.output()) || service.hasExited(), 10_000, 'the echo service');
  const expose = lab.spawn('clientB', [
    process.execPath,
    NAT_CLI,
    'expose',
    `127.0.0.1:${ECHO_PORT}`,
    '--name',
    'matrix-echo',
    '--allow-any',
    '--rendezvous',
    RENDEZVOUS,
    '--identity',
    join(lab.tmpDir, 'expose.key'),
    '--json',
  ]);
  await waitFor(() => jsonLines(expose).some((e) => e.event === 'ready') || expose.hasExited(), 20_000, 'nat expose ready');
  if (expose.hasExited()) throw new Error(`nat expose exited:\n${expose.output()}`);
  return expose;
}

/**
 * `nat connect` behind NAT A to the column's `nat expose`; as soon as it listens, one connection
 * echoes {@link TUNNEL_BYTES} (its first byte waits for the link), while the link's path is given
 * up to 20 s to become `want` (a direct path may come up after the relay). Stops `nat connect`.
 */
async function tunnelThrough(lab: PairLab, want: 'direct' | 'relay', expose: LabProcess): Promise<TunnelOutcome> {
  const exposeFrom = expose.output().length;
  const started = Date.now();
  let upMs: number | undefined;
  const connect = lab.spawn('clientA', [
    process.execPath,
    NAT_CLI,
    'connect',
    'matrix-echo',
    '--listen',
    `127.0.0.1:${TUNNEL_PORT}`,
    '--rendezvous',
    RENDEZVOUS,
    '--identity',
    join(lab.tmpDir, 'connect.key'),
    '--json',
  ]);
  const paths = (): string[] =>
    jsonLines(connect)
      .filter((e) => e.event === 'path')
      .map((e) => String(e.path));
  const punched = (): boolean =>
    jsonLines(connect)
      .filter((e) => e.event === 'path')
      .at(-1)?.punched === true;
  const routes = (): string[] =>
    jsonLines(connect)
      .filter((e) => (e.event === 'link' || e.event === 'route') && typeof e.route === 'string')
      .map((e) => String(e.route));
  const settled = (): boolean => paths().at(-1) === want && (want === 'relay' || directRouteOk(punched(), routes().at(-1)));
  let echo: EchoJson | undefined;
  let error = '';
  try {
    await waitFor(() => jsonLines(connect).some((e) => e.event === 'listening') || connect.hasExited(), 20_000, 'nat connect listening');
    upMs = Date.now() - started;
    const [r] = await Promise.all([
      lab.exec('clientA', [process.execPath, TCP_TOOL, 'roundtrip', String(TUNNEL_PORT), String(TUNNEL_BYTES)], { timeoutMs: 40_000 }),
      waitFor(() => settled() || connect.hasExited(), 20_000, `the ${want} path`).catch(() => undefined),
    ]);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (line !== undefined) echo = JSON.parse(line) as EchoJson;
    else error = `tcp-tool exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`;
  } catch (e) {
    error = String(e);
  } finally {
    await connect.stop();
  }
  const log = `tunnel: ${error}\necho: ${JSON.stringify(echo)}\nconnect: ${connect.output()}\nexpose: ${expose.output().slice(exposeFrom)}`;
  return { ...(echo ? { echo } : {}), paths: paths(), punched: punched(), routes: routes(), ...(upMs === undefined ? {} : { upMs }), log };
}

/** Whether a pair's tunnel carried the bytes intact on the path it must take. */
function tunnelOk(o: PairOutcome): boolean {
  const t = o.tunnel;
  if (t?.echo?.ok !== true || t.echo.received !== TUNNEL_BYTES) return false;
  const want = expectedIcePath(o.a, o.b);
  if (t.paths.at(-1) !== want) return false;
  // relayed: never a direct path, never udx packets sent straight to the peer
  if (want === 'relay') return t.paths.every((p) => p === 'relay') && !t.routes.includes('direct');
  return directRouteOk(t.punched, t.routes.at(-1));
}

/**
 * A direct pair on both sides' host sockets carries the streams directly. A punched pair does too
 * when the hit came on the host socket (the agent counts that as punched), and goes through the
 * shim when it came on an extra punching socket; the `path` event does not say which, so either
 * route is right for a punched pair, and the echo proves the bytes went through.
 */
function directRouteOk(punched: boolean, route: string | undefined): boolean {
  return punched ? route === 'shim' || route === 'direct' : route === 'direct';
}

function printTunnelMatrix(outcomes: readonly PairOutcome[]): void {
  const cell = (a: Behaviour, b: Behaviour): string => {
    const o = outcomes.find((x) => x.a === a && x.b === b);
    const t = o?.tunnel;
    if (!o || !t) return '-';
    if (t.echo?.ok !== true) return `FAIL (${t.paths.join('>') || 'no path'})`;
    const want = expectedIcePath(a, b);
    return `${t.paths.join('>')}${t.routes.at(-1) === 'direct' ? '+udx' : ''} ${t.echo.firstByteMs}ms (up ${t.upMs})${tunnelOk(o) ? '' : ` [want ${want}]`}`;
  };
  const w = 30;
  const lines = [
    `Tunnel matrix on kernel NATs (rows: NAT A, nat connect; columns: NAT B, nat expose): paths (+udx: the link's streams ran directly on the ICE socket), time to first byte of a ${TUNNEL_BYTES >> 20} MiB echo (up: nat connect start to listening, ms)`,
    `${'A \\ B'.padEnd(24)}${MATRIX.map((c) => c.padEnd(w)).join('')}`,
    ...MATRIX.map((a) => `${a.padEnd(24)}${MATRIX.map((b) => cell(a, b).padEnd(w)).join('')}`),
  ];
  console.log(lines.join('\n'));
}

function printMatrix(outcomes: readonly PairOutcome[]): void {
  const cell = (a: Behaviour, b: Behaviour): string => {
    const o = outcomes.find((x) => x.a === a && x.b === b);
    if (!o) return '-';
    if (!o.ping) return `FAIL (exit ${o.code})`;
    const want = expectedIcePath(a, b);
    return `${o.ping.path} ${Math.round(o.ping.connectMs)}ms${o.ping.directMs !== null && o.ping.path === 'direct' ? ` (d ${Math.round(o.ping.directMs)})` : ''}${o.ping.path === want ? '' : ` [want ${want}]`}`;
  };
  const cols = MATRIX;
  const w = 30;
  const lines = [
    'ICE matrix on kernel NATs (rows: NAT A, nat ping; columns: NAT B, nat listen): path connectMs',
    `${'A \\ B'.padEnd(24)}${cols.map((c) => c.padEnd(w)).join('')}`,
    ...MATRIX.map((a) => `${a.padEnd(24)}${cols.map((b) => cell(a, b).padEnd(w)).join('')}`),
  ];
  console.log(lines.join('\n'));
}

describe.skipIf(!availability.ok)('ICE across two kernel NATs', () => {
  const outcomes: PairOutcome[] = [];
  afterAll(() => {
    if (outcomes.length > 0) printMatrix(outcomes);
    if (outcomes.some((o) => o.tunnel !== undefined)) printTunnelMatrix(outcomes);
  });

  // ICE_MATRIX_ONLY=symmetric,open (a developer's shortcut): only the pairs with one of these sides.
  const only = process.env.ICE_MATRIX_ONLY?.split(',').filter((x) => x.length > 0);
  const pairs = MATRIX.flatMap((a) => MATRIX.map((b) => [a, b] as const)).filter(([a, b]) => only === undefined || only.includes(a) || only.includes(b));
  // ICE_MATRIX_TUNNEL=0 (a developer's shortcut): ICE only, without the tunnel check per pair.
  const tunnelMatrix = process.env.ICE_MATRIX_TUNNEL !== '0';
  const columns = MATRIX.map((b) => ({ b, as: pairs.filter((p) => p[1] === b).map((p) => p[0]) })).filter((c) => c.as.length > 0);

  it(
    `connects all ${pairs.length} pairs of ${MATRIX.join(', ')} with the expected path${tunnelMatrix ? ', and through the tunnel' : ''}`,
    { timeout: 900_000 },
    async () => {
      const t = Date.now();
      outcomes.push(
        ...(
          await pool(
            columns.map((c) => () => runColumn(c.b, c.as, 0, 3, tunnelMatrix)),
            CONCURRENCY,
          )
        ).flat(),
      );
      console.log(
        `matrix: ${pairs.length} pairs in ${Date.now() - t} ms (${CONCURRENCY} columns at a time); per pair wall ms: ${outcomes.map((o) => `${o.a}/${o.b} ${o.wallMs}`).join(', ')}`,
      );
      const failures: string[] = [];
      for (const o of outcomes) {
        const want = expectedIcePath(o.a, o.b);
        const ok =
          o.code === 0 && o.ping !== undefined && o.ping.path === want && o.ping.rttMs.length > 0 && (!needsPunching(o.a, o.b) || o.ping.punched === true);
        if (!ok) failures.push(`${o.a} -> ${o.b}: want ${want}, got ${o.ping?.path ?? 'nothing'} (exit ${o.code})\n${o.log}`);
        expect(listLabNamespaces().filter((n) => o.namespaces.includes(n))).toEqual([]);
      }
      expect(failures, failures.join('\n\n')).toEqual([]);
      if (!tunnelMatrix) return;
      const tunnelFailures = outcomes
        .filter((o) => !tunnelOk(o))
        .map(
          (o) =>
            `tunnel ${o.a} -> ${o.b}: want ${expectedIcePath(o.a, o.b)}, paths ${o.tunnel?.paths.join(' > ') ?? 'none'}${o.tunnel?.punched ? ' (punched)' : ''}, routes ${o.tunnel?.routes.join(' > ') ?? 'none'}, echo ${o.tunnel?.echo?.ok === true ? 'ok' : (o.tunnel?.echo?.error ?? 'none')}\n${o.tunnel?.log ?? o.log}`,
        );
      expect(tunnelFailures, tunnelFailures.join('\n\n')).toEqual([]);
    },
  );

  it('connects full-cone -> port-restricted-cone with 20% UDP loss on both routers', { timeout: 60_000 }, async () => {
    // 8 pings: each crosses four lossy hops, so 3 would all be lost one time in five.
    const [o] = await runColumn('port-restricted-cone', ['full-cone'], 20, 8);
    if (o === undefined) throw new Error('no outcome');
    console.log(
      `20% loss, full-cone -> port-restricted-cone: ${o.ping ? `${o.ping.path} connectMs ${o.ping.connectMs} directMs ${o.ping.directMs} rtt ${o.ping.rttMs.join('/')}` : 'FAILED'} (wall ${o.wallMs} ms)`,
    );
    expect(o.code, o.log).toBe(0);
    expect(o.ping?.rttMs.length ?? 0, o.log).toBeGreaterThan(0);
  });
});
