/**
 * One worker of `nat-server --workers N`. It runs two STUN/TURN servers:
 * - the shared one, on the configured ports, bound once for all workers (node:cluster shares the
 *   UDP socket and hands out TCP/TLS connections): it answers STUN Binding, challenges TURN
 *   requests, and answers every authenticated Allocate with 300 Try Alternate (RFC 8656 section
 *   7.2, RFC 8489 section 10) toward the TURN port of the worker that owns the user;
 * - its own one, on ports of its own (UDP, TCP, TLS as configured): the allocations of the users
 *   it owns live there with their relay sockets, so their packets never cross a process.
 * Events go to the primary (metrics, status page), and so do writes to the relay scope.
 */
import { type ServerEventSink, type StunListener, type StunServer, type StunServerInit, anyOf, startStunServer } from '@nat/server';
import type { AlternateServerOf, ClientEndpoint } from '@nat/server';
import type { TransportAddress } from '@nat/protocol';
import { pino } from 'pino';
import { type ServerConfig, authenticatorOf, toServerInit, turnAuthOf } from '../config.js';
import { nodeIdOf, startTurnClusterOf } from '../cluster/turn.js';
import { advertisedIp, externalOf } from '../external-ip.js';
import { type ReloadTargets, SwappableAuthenticator, reload } from '../reload.js';
import { type FixedPorts, type PrimaryMessage, WORKER_ENV, type WorkerMessage, sumStats } from './ipc.js';
import { shardOf, workerConfig } from './plan.js';
import { SyncedRelayScope } from './scope.js';

/** Which worker this process is, when it is one. */
export interface WorkerIdentity {
  readonly id: number;
  readonly count: number;
  readonly ports: FixedPorts;
  readonly nonceKey: Uint8Array;
}

/** This process's identity as a worker (from the environment the primary gave it), or undefined. */
export function workerIdentity(env: NodeJS.ProcessEnv = process.env): WorkerIdentity | undefined {
  const id = env[WORKER_ENV.id];
  const count = env[WORKER_ENV.count];
  const ports = env[WORKER_ENV.ports];
  const nonce = env[WORKER_ENV.nonce];
  if (id === undefined || count === undefined || ports === undefined || nonce === undefined || process.send === undefined) return undefined;
  delete env[WORKER_ENV.nonce];
  return { id: Number(id), count: Number(count), ports: JSON.parse(ports) as FixedPorts, nonceKey: Buffer.from(nonce, 'hex') };
}

/** How long a stopping worker waits for its sockets to close. */
const STOP_WAIT_MS = 3000;

const send = (m: WorkerMessage): void => {
  if (process.connected) process.send!(m);
};

/** The address of a worker's TURN listener for a request that came over `endpoint`, as clients are told it. */
function listenerFor(listeners: readonly StunListener[] | undefined, endpoint: ClientEndpoint, config: ServerConfig): TransportAddress | undefined {
  const l = listeners?.find((x) => x.transport === endpoint.transport && x.address.family === endpoint.server.family);
  if (l === undefined) return undefined;
  const wildcard = l.address.address === '0.0.0.0' || l.address.address === '::';
  return { ...l.address, address: advertisedIp(externalOf(config), wildcard ? endpoint.server.address : l.address.address) };
}

/** A worker's running servers and what it knows of the others. */
interface WorkerState {
  readonly me: WorkerIdentity;
  readonly config: ServerConfig;
  /** The TURN listeners of every live worker, by worker id. */
  readonly ports: Map<number, readonly StunListener[]>;
}

/**
 * Where an authenticated Allocate goes: the owner's port (or, while the owner restarts, the next
 * live worker's); undefined serves it here (`self` is the owner).
 */
function redirect(w: WorkerState, self: number | undefined): AlternateServerOf {
  return (username, endpoint) => {
    const owner = shardOf(username, w.me.count);
    for (let i = 0; i < w.me.count; i++) {
      const k = (owner + i) % w.me.count;
      if (k === self) return undefined;
      const to = listenerFor(w.ports.get(k), endpoint, w.config);
      if (to !== undefined) return to;
    }
    return undefined;
  };
}

/** A TURN-serving init with its redirect (the operator's own --alternate-server wins) and the workers' nonce key. */
function withRedirect(init: StunServerInit, to: AlternateServerOf, nonceSecret: Uint8Array): StunServerInit {
  return init.turn === undefined ? init : { ...init, turn: { ...init.turn, alternateServer: init.turn.alternateServer ?? to, nonceSecret } };
}

/** What a worker's `run` gives main.ts: the shared server, reload and stop. */
export interface RunningWorker {
  readonly stun: StunServer;
  reload(): Promise<string>;
  stop(): Promise<void>;
}

/** How many ports of its relay slice a worker tries for its own TURN ports before it gives up. */
const OWN_PORT_TRIES = 32;

/**
 * Binds the worker's own TURN ports (UDP and TCP on one number, TLS on the next) at the first
 * free ports of its relay port slice: a firewall that lets the relay range in (as every TURN
 * deployment must) lets the 300 Try Alternate's target in too. A relay allocation that later
 * draws one of these ports finds it taken and draws another.
 */
async function startOwnPorts(own: ServerConfig, start: (ports: { port: number; tlsPort?: number }) => Promise<StunServer>): Promise<StunServer> {
  const step = own.tlsPort === undefined ? 1 : 2;
  let last: Error | undefined;
  for (let i = 0; i < OWN_PORT_TRIES; i++) {
    const port = own.minPort + i * step;
    if (port + step - 1 > own.maxPort) break;
    try {
      return await start({ port, ...(own.tlsPort === undefined ? {} : { tlsPort: port + 1 }) });
    } catch (e) {
      if ((e as { code?: string }).code !== 'BIND_FAILED' && !/EADDRINUSE/.test(String(e))) throw e;
      last = e as Error;
    }
  }
  throw last ?? new Error(`no free port for the worker's own TURN listeners in its relay ports ${own.minPort}-${own.maxPort}`);
}

/** Starts worker `me` of `config` (read from `file` and `flags`, as the primary read it). */
export async function runWorker(
  config: ServerConfig,
  me: WorkerIdentity,
  source: { file: string | undefined; flags: Record<string, unknown> },
): Promise<RunningWorker> {
  const own = workerConfig(
    { ...config, port: me.ports.port, altPort: me.ports.altPort, ...(me.ports.tlsPort !== undefined ? { tlsPort: me.ports.tlsPort } : {}) },
    me.count,
    me.id,
  );
  const logger = pino({ level: config.logLevel, base: { service: 'nat-server', worker: me.id } }, pino.destination({ dest: 1, sync: true }));
  const scope = new SyncedRelayScope((entry) => send({ t: 'scope', ...entry }));
  const events: ServerEventSink = (e) => send({ t: 'event', e });
  const turnAuth = new SwappableAuthenticator(anyOf());
  const w: WorkerState = { me, config, ports: new Map() };
  // Users from Redis and quotas across nodes (with the whole node's limits: the ledger is shared); each worker is a node of its own there.
  const cluster = await startTurnClusterOf({ ...config, nodeId: `${nodeIdOf(config)}-w${me.id}` }, logger);
  const parts = cluster?.parts ?? {};
  const shared = await startStunServer({
    ...withRedirect(await toServerInit(own, scope, turnAuth, parts), redirect(w, undefined), me.nonceKey),
    clusterShared: true,
    logger,
    events,
  });
  let mine: StunServer | undefined;
  if (config.realm !== undefined) {
    try {
      mine = await startOwnPorts(own, async (ports) =>
        startStunServer({
          ...withRedirect(await toServerInit({ ...own, ...ports, altPort: null, alternate: [] }, scope, turnAuth, parts), redirect(w, me.id), me.nonceKey),
          logger,
          events,
        }),
      );
    } catch (e) {
      await shared.close();
      await cluster?.close();
      throw e;
    }
    w.ports.set(me.id, mine.listeners);
  }
  const servers = mine === undefined ? [shared] : [shared, mine];
  const statsTimer = setInterval(() => send({ t: 'stats', stats: sumStats(servers.map((s) => s.stats())) }), 500);
  statsTimer.unref();
  const targets: ReloadTargets = {
    file: source.file,
    flags: source.flags,
    config,
    turnAuth,
    exposeAuth: new SwappableAuthenticator(anyOf()),
    stun: { setTlsCredentials: (c) => servers.forEach((s) => s.setTlsCredentials(c)) },
  };
  const reloadNow = async (): Promise<string> => {
    const did = await reload(
      targets,
      (c) => turnAuthOf(c, parts.users),
      (c) => authenticatorOf(c, parts.users),
    );
    logger.info({ reloaded: did }, 'configuration reloaded');
    return did;
  };
  process.on('message', (m: PrimaryMessage) => {
    if (m.t === 'ports') {
      w.ports.clear();
      for (const [k, listeners] of m.ports) w.ports.set(k, listeners);
      const addresses = [...m.ports.flatMap(([, ls]) => ls.map((l) => l.address)), ...m.services];
      for (const s of servers) s.turn?.addServiceAddresses(addresses);
    } else if (m.t === 'scope') scope.apply(m);
    else if (m.t === 'reload')
      reloadNow().then(
        (text) => send({ t: 'reloaded', ok: true, text }),
        (e: unknown) => send({ t: 'reloaded', ok: false, text: e instanceof Error ? e.message : String(e) }),
      );
    else if (m.t === 'stop') void stop().then(() => process.exit(0));
  });
  // The primary owns the terminal's signals: Ctrl-C and SIGHUP reach a worker through it (a
  // SIGTERM to the whole group, as systemd sends, still stops each worker at once).
  for (const signal of ['SIGINT', 'SIGHUP'] as const) process.removeAllListeners(signal).on(signal, () => undefined);
  const stop = async (): Promise<void> => {
    clearInterval(statsTimer);
    // A socket shared through the primary may never confirm its close once the primary is gone.
    const bounded = new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref());
    await Promise.race([Promise.all(servers.map((s) => s.close())), bounded]);
    await Promise.race([cluster?.close(), bounded]);
    logger.info({ stats: sumStats(servers.map((s) => s.stats())) }, 'stopped');
  };
  // The primary died (SIGKILL, a crash): no worker outlives it.
  process.once('disconnect', () => {
    logger.warn({ worker: me.id }, 'the primary process is gone: stopping');
    void stop().finally(() => process.exit(0));
  });
  send({ t: 'ready', shared: shared.listeners, own: mine?.listeners ?? [] });
  return { stun: shared, reload: reloadNow, stop };
}
