/**
 * `nat-server` as one process (no --workers split): the STUN/TURN server, the rendezvous, expose
 * and admin services, and with --redis this node's part of the cluster.
 */
import {
  type AdminServer,
  MemoryRelayScope,
  anyOf,
  ServerEventHub,
  ServerMetrics,
  StatusView,
  type StunServer,
  type attachExpose,
  startStunServer,
} from '@nat/server';
import { formatTransportAddress } from '@nat/protocol';
import { pino } from 'pino';
import { clusterScope, openClusterOf } from './cluster.js';
import { type ServerConfig, authenticatorOf, toServerInit, turnAuthOf } from './config.js';
import { externalOf } from './external-ip.js';
import { type ReloadTargets, SwappableAuthenticator, reload } from './reload.js';
import type { RunningServer } from './running.js';
import { type Out, type Rendezvous, attachExposeOf, startAdminOf, startRendezvousOf } from './services.js';

/** Starts every service of `config` in this process. Throws ServerError when a socket cannot be bound or Redis does not answer. */
export async function startOneProcess(
  config: ServerConfig,
  src: { file: string | undefined; flags: Record<string, unknown>; out: Out; version: string },
): Promise<RunningServer> {
  const { file, flags, out, version } = src;
  const logger = pino({ level: config.logLevel, base: { service: 'nat-server' } }, pino.destination({ dest: 1, sync: true }));
  // With --redis: this node's part of the cluster (Redis down: exit 1 naming the URL and the flag).
  const node = await openClusterOf(config, logger);
  // What peers' sessions signal through the rendezvous, read by TURN's anonymous tier (mirrored across nodes).
  const scope = clusterScope(node, new MemoryRelayScope());
  // Everything the services observe goes to one hub; the metrics subscribe to it.
  const events = new ServerEventHub({ onError: (e) => logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'event subscriber failed') });
  const metrics = new ServerMetrics();
  const status = new StatusView({ version });
  events.subscribe(metrics.sink);
  events.subscribe(status.sink);
  const turnAuth = new SwappableAuthenticator(anyOf());
  let rendezvous: Rendezvous | undefined;
  let expose: ReturnType<typeof attachExpose> | undefined;
  let admin: AdminServer | undefined;
  let started: StunServer | undefined;
  // Everything started so far, last first (a failed start, or stop()).
  const closeAll = async (): Promise<void> => {
    await admin?.close();
    await expose?.close();
    await rendezvous?.close();
    await node?.close();
    await started?.close();
  };
  const stun = await startStunServer({ ...(await toServerInit(config, scope, turnAuth)), logger, events: events.sink }).catch(async (e: unknown) => {
    await closeAll();
    throw e;
  });
  started = stun;
  const ctx = { logger, out, events: events.sink, exposeAuth: new SwappableAuthenticator(anyOf()), ...(node ? { cluster: node.rendezvous } : {}) };
  if (config.realm) out.stderr.write(`TURN on, realm ${config.realm}, relay ports ${config.minPort}-${config.maxPort}\n`);
  for (const l of stun.listeners) out.stderr.write(`listening ${l.transport.padEnd(3)} ${formatTransportAddress(l.address)} (${l.role})\n`);
  for (const m of externalOf(config)) out.stderr.write(`external ${m.public} for ${m.private} (told to clients instead)\n`);
  const targets: ReloadTargets = { file, flags, config, turnAuth, exposeAuth: ctx.exposeAuth, stun };
  const reloadNow = async (): Promise<string> => {
    const did = await reload(targets, turnAuthOf, authenticatorOf);
    logger.info({ reloaded: did }, 'configuration reloaded');
    return did;
  };
  try {
    rendezvous = config.rendezvousPort === undefined ? undefined : await startRendezvousOf(config, stun, scope, ctx);
    if (rendezvous !== undefined) Object.assign(targets, { rendezvous });
    if (config.exposePorts !== undefined && rendezvous !== undefined) expose = await attachExposeOf(config, rendezvous, ctx);
    admin = config.adminPort === undefined ? undefined : await startAdminOf(config, { metrics, status, reload: reloadNow }, logger, out);
  } catch (e) {
    await closeAll();
    throw e;
  }
  const rv = rendezvous;
  const ex = expose;
  const sources = { stun: () => stun.stats(), ...(rv ? { rendezvous: () => rv.stats() } : {}), ...(ex ? { expose: () => ex.stats() } : {}) };
  metrics.watch(sources);
  status.watch(sources);
  return {
    stun,
    reload: reloadNow,
    async stop() {
      await closeAll();
      logger.info({ stats: stun.stats(), ...(rv ? { rendezvous: rv.stats() } : {}) }, 'stopped');
    },
  };
}
