/**
 * The primary of `nat-server --workers N`: it serves no STUN or TURN itself. It fixes the ports
 * (a 0 resolved once for every worker), forks the workers (pool.ts), and runs what must see
 * every peer in one place: the rendezvous, the expose service and the admin listener, whose
 * metrics and status page sum the workers' events and counters.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  type AdminServer,
  ServerError,
  ServerEventHub,
  ServerMetrics,
  StatusView,
  type StunServer,
  anyOf,
  bindEndpointSet,
  type attachExpose,
} from '@nat/server';
import { formatTransportAddress, ipFamily } from '@nat/protocol';
import { Gauge } from 'prom-client';
import { type Logger, pino } from 'pino';
import { type ServerConfig, authenticatorOf, turnAuthOf } from '../config.js';
import { clusterScope, openClusterOf } from '../cluster.js';
import { externalOf } from '../external-ip.js';
import { type ReloadTargets, SwappableAuthenticator, reload } from '../reload.js';
import type { RunningServer } from '../running.js';
import { type Out, type Rendezvous, attachExposeOf, startAdminOf, startRendezvousOf } from '../services.js';
import { type FixedPorts, sumStats } from './ipc.js';
import { WorkerPool, describe } from './pool.js';
import { SyncedRelayScope } from './scope.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** The ports every worker binds: a configured 0 is picked here once (bound, read, released). */
async function fixPorts(c: ServerConfig): Promise<FixedPorts> {
  let { port, altPort, tlsPort } = c;
  const first = c.listen[0]!;
  if (port === 0 || altPort === 0) {
    const family = ipFamily(first)!;
    const b = await bindEndpointSet(
      { port, altPort, tcp: c.tcp },
      family,
      first,
      c.alternate.find((a) => ipFamily(a) === family),
    );
    port = b.set.port;
    altPort = b.set.altPort ?? null;
    for (const s of Object.values(b.sockets)) s.close();
    await Promise.all([...b.tcpServers.values()].map((s) => new Promise((r) => s.close(r))));
  }
  if (tlsPort === 0) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host: first, port: 0, exclusive: true }, resolve));
    tlsPort = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
  }
  return { port, altPort, tlsPort };
}

/** Gauges of each worker, beside the summed metrics. */
function workerGauges(metrics: ServerMetrics, pool: WorkerPool): void {
  new Gauge({
    name: 'nat_worker_turn_allocations_active',
    help: 'TURN allocations now, per worker process (nat-server --workers)',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect(this: Gauge<'worker'>) {
      for (const s of pool.slots) this.set({ worker: String(s.id) }, s.stats?.turn?.allocations ?? 0);
    },
  });
  new Gauge({
    name: 'nat_worker_stun_answered',
    help: 'STUN Binding requests answered by each worker process since it started',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect(this: Gauge<'worker'>) {
      for (const s of pool.slots) this.set({ worker: String(s.id) }, s.stats?.answered ?? 0);
    },
  });
  new Gauge({
    name: 'nat_worker_restarts',
    help: 'Times each worker process was restarted after it died',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect(this: Gauge<'worker'>) {
      for (const s of pool.slots) this.set({ worker: String(s.id) }, s.restarts);
    },
  });
}

/** Starts the primary of `count` workers for `config`, read from `file` and `flags`; `argv` is handed to every worker. */
export async function runPrimary(
  config: ServerConfig,
  count: number,
  src: { file: string | undefined; flags: Record<string, unknown>; argv: readonly string[]; out: Out; version: string },
): Promise<RunningServer> {
  const { out } = src;
  const logger = pino({ level: config.logLevel, base: { service: 'nat-server', worker: 'primary' } }, pino.destination({ dest: 1, sync: true }));
  const events = new ServerEventHub({ onError: (e) => logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'event subscriber failed') });
  const metrics = new ServerMetrics();
  const status = new StatusView({ version: src.version });
  events.subscribe(metrics.sink);
  events.subscribe(status.sink);
  let pool: WorkerPool | undefined;
  const scope = new SyncedRelayScope((entry) => pool?.send({ t: 'scope', ...entry }));
  pool = new WorkerPool({
    count,
    exec: MAIN,
    args: src.argv,
    start: { ports: await fixPorts(config), nonceKey: randomBytes(32).toString('hex') },
    logger,
    events: events.sink,
    onScope: (entry) => scope.apply(entry),
    say: (line) => out.stderr.write(`${line}\n`),
  });
  try {
    await pool.start();
  } catch (e) {
    throw new ServerError('BIND_FAILED', `nat-server --workers ${count}: ${(e as Error).message}`);
  }
  const p = pool;
  announce(config, p, count, out);
  const stun = stunView(p);
  const running = await startServices(config, { stun, scope, pool: p, events, metrics, status, logger, src });
  workerGauges(metrics, p);
  return running;
}

/** What a single process prints at start-up, and where each worker keeps its allocations. */
function announce(config: ServerConfig, pool: WorkerPool, count: number, out: Out): void {
  if (config.realm) out.stderr.write(`TURN on, realm ${config.realm}, relay ports ${config.minPort}-${config.maxPort}\n`);
  out.stderr.write(
    `workers ${count}: STUN answered by every worker on the ports below; each TURN user's allocations live on one worker (300 Try Alternate to its port)\n`,
  );
  for (const l of pool.slots[0]!.shared) out.stderr.write(`listening ${l.transport.padEnd(3)} ${formatTransportAddress(l.address)} (${l.role})\n`);
  for (const s of pool.slots) out.stderr.write(`worker ${s.id} pid ${s.worker?.process.pid}: TURN allocations on ${describe(s.own)}\n`);
  for (const m of externalOf(config)) out.stderr.write(`external ${m.public} for ${m.private} (told to clients instead)\n`);
}

/** The primary's stand-in for a StunServer: the shared listeners and the workers' summed counters. */
function stunView(pool: WorkerPool): StunServer {
  return {
    endpoints: [],
    get listeners() {
      return pool.slots[0]!.shared;
    },
    stats: () => sumStats(pool.slots.map((s) => s.stats)),
    turn: undefined,
    setTlsCredentials: () => undefined,
    // Never asked: several workers with the rendezvous on the TLS port are refused (workers/index.ts).
    serveHttpOnTls: () => undefined,
    close: async () => undefined,
  };
}

interface PrimaryParts {
  readonly stun: StunServer;
  readonly scope: SyncedRelayScope;
  readonly pool: WorkerPool;
  readonly events: ServerEventHub;
  readonly metrics: ServerMetrics;
  readonly status: StatusView;
  readonly logger: Logger;
  readonly src: { file: string | undefined; flags: Record<string, unknown>; out: Out };
}

/** The rendezvous, expose and admin services in the primary, and the running server's reload and stop. */
async function startServices(config: ServerConfig, parts: PrimaryParts): Promise<RunningServer> {
  const { pool, logger, metrics, status, src } = parts;
  // With --redis the rendezvous (here) shares its state with other nodes; writes to the relay
  // scope from other nodes reach the workers' TURN through the synced scope.
  const node = await openClusterOf(config, logger).catch(async (e: unknown) => {
    await pool.stop();
    throw e;
  });
  const scope = clusterScope(node, parts.scope);
  const ctx = {
    logger,
    out: src.out,
    events: parts.events.sink,
    exposeAuth: new SwappableAuthenticator(anyOf()),
    ...(node ? { cluster: node.rendezvous } : {}),
  };
  const turnHook = { listeners: parts.stun.listeners, turn: { addServiceAddresses: (a: Parameters<WorkerPool['addServices']>[0]) => pool.addServices(a) } };
  let rendezvous: Rendezvous | undefined;
  let expose: ReturnType<typeof attachExpose> | undefined;
  let admin: AdminServer | undefined;
  const targets: ReloadTargets = {
    file: src.file,
    flags: src.flags,
    config,
    turnAuth: new SwappableAuthenticator(anyOf()),
    exposeAuth: ctx.exposeAuth,
    stun: { setTlsCredentials: () => undefined },
  };
  const reloadNow = async (): Promise<string> => {
    const did = await reload(targets, turnAuthOf, authenticatorOf);
    const workers = await pool.reload();
    logger.info({ reloaded: did, workers }, 'configuration reloaded');
    return `${did}; ${workers.join('; ')}`;
  };
  const stop = async (): Promise<void> => {
    await admin?.close();
    await expose?.close();
    await rendezvous?.close();
    await node?.close();
    await pool.stop();
    logger.info({ stats: parts.stun.stats() }, 'stopped');
  };
  try {
    rendezvous = config.rendezvousPort === undefined ? undefined : await startRendezvousOf(config, turnHook, scope, ctx);
    if (rendezvous !== undefined) Object.assign(targets, { rendezvous });
    if (config.exposePorts !== undefined && rendezvous !== undefined) expose = await attachExposeOf(config, rendezvous, ctx);
    admin = config.adminPort === undefined ? undefined : await startAdminOf(config, { metrics, status, reload: reloadNow }, logger, src.out);
  } catch (e) {
    await stop();
    throw e;
  }
  const rv = rendezvous;
  const ex = expose;
  const sources = { stun: parts.stun.stats, ...(rv ? { rendezvous: () => rv.stats() } : {}), ...(ex ? { expose: () => ex.stats() } : {}) };
  metrics.watch(sources);
  status.watch(sources);
  return { stun: parts.stun, reload: reloadNow, stop };
}
