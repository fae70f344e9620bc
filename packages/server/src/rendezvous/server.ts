import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { gateConnections, handshakeServerOptions } from './gate.js';
import { type StartRendezvousOptions, resolveLimits } from './options.js';
import { attachRendezvous } from './service.js';
import type { RendezvousGateStats, RendezvousStats } from './stats.js';
import { silentLogger } from '../logger.js';

/** A running stand-alone rendezvous service (see {@link startRendezvous}). */
export interface RendezvousServer {
  /** The WebSocket URL to give peers, e.g. `ws://127.0.0.1:41234/`. */
  readonly url: string;
  /** The address it listens on (port resolved when 0 was asked). */
  readonly address: TransportAddress;
  /** The HTTP server it runs on: other upgrade services (e.g. `attachExpose`) can share its address. */
  readonly httpServer: HttpServer;
  /** Counters (the service's and its TCP gate's). */
  stats(): RendezvousStats & RendezvousGateStats;
  /** Closes every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a rendezvous service on its own HTTP server at `host:port` (plain `ws:`; put it behind
 * a TLS terminator, or use {@link attachRendezvous} on an https server, for `wss:`). Plain HTTP
 * requests are answered 426 Upgrade Required. Rejects with ServerError BIND_FAILED when it
 * cannot listen, BAD_CONFIG for bad options.
 */
export async function startRendezvous(options: StartRendezvousOptions): Promise<RendezvousServer> {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new ServerError('BAD_CONFIG', `rendezvous: port must be 0-65535, got ${options.port}`);
  }
  const limits = resolveLimits(options.limits);
  const http = createServer(handshakeServerOptions(limits), (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
    res.end('nat rendezvous: connect with a WebSocket\n');
  });
  const gateStats = gateConnections(http, limits, options.logger ?? silentLogger);
  const service = attachRendezvous(http, options);
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port, options.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await service.close();
    throw new ServerError('BIND_FAILED', `rendezvous: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
  }
  http.on('error', () => {}); // after listening, per-socket errors are the connections' business
  const info = http.address() as AddressInfo;
  const family = ipFamily(info.address) ?? (info.family === 'IPv6' ? 'IPv6' : 'IPv4');
  const address: TransportAddress = { family, address: info.address, port: info.port };
  const hostPart = family === 'IPv6' ? `[${info.address}]` : info.address;
  let closing: Promise<void> | undefined;
  return {
    url: `ws://${hostPart}:${info.port}${service.path}`,
    address,
    httpServer: http,
    stats: () => ({ ...service.stats(), ...gateStats() }),
    close() {
      closing ??= (async () => {
        await service.close();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
