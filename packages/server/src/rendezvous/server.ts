import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type TransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { isAnswered } from '../http-claims.js';
import { noEvents } from '../events.js';
import { StreamGovernor, type StreamLease, type StreamLimits } from '../listeners/stream.js';
import { silentLogger } from '../logger.js';
import { type PendingGate, gatePending, handshakeServerOptions } from './gate.js';
import { type ResolvedLimits, type StartRendezvousOptions, resolveLimits } from './options.js';
import { attachRendezvous } from './service.js';
import type { RendezvousGateStats, RendezvousStats } from './stats.js';

/** A running stand-alone rendezvous service (see {@link startRendezvous}). */
export interface RendezvousServer {
  /** The WebSocket URL to give peers, e.g. `ws://127.0.0.1:41234/`. */
  readonly url: string;
  /** The address it listens on (port resolved when 0 was asked). */
  readonly address: TransportAddress;
  /** The HTTP server it runs on: other upgrade services (e.g. `attachExpose`) can share its address. */
  readonly httpServer: HttpServer;
  /** The governor every connection of `httpServer` goes through (services attached to it included). */
  readonly governor: StreamGovernor;
  /** Counters (the service's and its listener's). */
  stats(): RendezvousStats & RendezvousGateStats;
  /**
   * Serves a connection another listener accepted and governs (a shared TLS port, see
   * `StunServer.serveHttpOnTls`): the pending gate and the HTTP server take it from here; it
   * is not counted again by this server's own governor.
   */
  serveGoverned(socket: Socket, lease: StreamLease): void;
  /** Signs the anonymous relay credentials of later registrations with this secret (a reload rotated it). */
  setTurnSecret(secret: string): void;
  /** Closes every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

/** The listener's governor limits: `given` over the defaults derived from the rendezvous limits. */
function governorLimits(limits: ResolvedLimits, given: StreamLimits = {}): StreamLimits {
  return {
    maxConnections: 2 * limits.maxConnections,
    maxConnectionsPerSource: limits.maxConnectionsPerSource + limits.maxPendingPerSource,
    idleTimeoutMs: limits.handshakeTimeoutMs,
    ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
  };
}

/** A governed connection through the pending gate; once upgraded, its service governs its lifetime. */
function serveGated(gate: PendingGate, socket: Socket, lease: StreamLease): boolean {
  if (!gate.admit(socket, lease.source)) return false;
  lease.serve(socket, { carries: () => gate.upgraded(socket), resumed: () => undefined });
  return true;
}

/** Routes `http`'s connections through `governor`, then the pending gate, except those another listener governs. */
function governListener(http: HttpServer, governor: StreamGovernor, gate: PendingGate, elsewhere: WeakSet<Socket>): void {
  http.on('connection', (raw: Socket) => {
    if (elsewhere.has(raw)) return;
    const lease = governor.admit(raw, false);
    if (lease !== undefined) serveGated(gate, raw, lease);
  });
}

function listen(http: HttpServer, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
}

/**
 * Starts a rendezvous service on its own HTTP server at `host:port` (plain `ws:`; put it behind
 * a TLS terminator, or use {@link attachRendezvous} on an https server, for `wss:`). Plain HTTP
 * requests are answered 426 Upgrade Required. Every connection goes through a StreamGovernor
 * (`options.connections`). Rejects with ServerError BIND_FAILED when it cannot listen,
 * BAD_CONFIG for bad options.
 */
export async function startRendezvous(options: StartRendezvousOptions): Promise<RendezvousServer> {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new ServerError('BAD_CONFIG', `rendezvous: port must be 0-65535, got ${options.port}`);
  }
  const limits = resolveLimits(options.limits);
  const log = options.logger ?? silentLogger;
  const http = createServer(handshakeServerOptions(limits), (_req, res) => {
    if (isAnswered(res)) return; // answered by an earlier listener (the expose service's owner lookup)
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
    res.end('nat rendezvous: connect with a WebSocket\n');
  });
  const governor = new StreamGovernor(governorLimits(limits, options.connections), log);
  const gate = gatePending(http, limits, log, options.events ?? noEvents);
  const elsewhere = new WeakSet<Socket>();
  governListener(http, governor, gate, elsewhere);
  const service = attachRendezvous(http, options);
  try {
    await listen(http, options.host, options.port);
  } catch (error) {
    await service.close();
    throw new ServerError('BIND_FAILED', `rendezvous: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
  }
  http.on('error', () => {}); // after listening, per-socket errors are the connections' business
  const info = http.address() as AddressInfo;
  const family = ipFamily(info.address) ?? (info.family === 'IPv6' ? 'IPv6' : 'IPv4');
  const address: TransportAddress = { family, address: info.address, port: info.port };
  const hostPart = family === 'IPv6' ? `[${info.address}]` : info.address;
  const g = governor.stats;
  let closing: Promise<void> | undefined;
  return {
    url: `ws://${hostPart}:${info.port}${service.path}`,
    address,
    httpServer: http,
    governor,
    setTurnSecret: (secret) => service.setTurnSecret(secret),
    serveGoverned(socket, lease) {
      elsewhere.add(socket);
      if (serveGated(gate, socket, lease)) http.emit('connection', socket);
    },
    stats: () => ({
      ...service.stats(),
      ...gate.counters,
      tcpConnections: g.open,
      refusedTcpConnections: g.refusedTotal,
      refusedTcpSourceShare: g.refusedPerSource,
      idleClosed: g.idleClosed,
    }),
    close() {
      closing ??= (async () => {
        await service.close();
        await Promise.all([
          new Promise<void>((resolve) => {
            http.close(() => resolve());
            http.closeAllConnections();
          }),
          governor.closeAll(),
        ]);
      })();
      return closing;
    },
  };
}
