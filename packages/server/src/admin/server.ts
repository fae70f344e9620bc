/**
 * The admin listener: Prometheus metrics at `GET /metrics` (and `GET /healthz`), off unless
 * started, on loopback unless told otherwise. Listening anywhere but loopback needs a token:
 * then every request must carry `Authorization: Bearer TOKEN` (Prometheus: `authorization:
 * { credentials: TOKEN }` in the scrape config). Answers are small; connections are capped,
 * and a request must arrive within a few seconds.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type TransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ServerMetrics } from './metrics.js';

/** Options of {@link startAdminServer}. */
export interface AdminServerInit {
  /** The metrics to serve. Required. */
  readonly metrics: ServerMetrics;
  /** IP address to listen on. Default `127.0.0.1`. Anything but loopback needs `token`. */
  readonly listen?: string;
  /** TCP port. Default 9641 (coturn's Prometheus port); 0 picks a free one. */
  readonly port?: number;
  /** Bearer token every request must carry. Default none (only allowed on loopback). */
  readonly token?: string;
  /** Most simultaneous connections. Default 32. */
  readonly maxConnections?: number;
  /** A request's headers must arrive within this many ms of accept. Default 5,000. */
  readonly requestTimeoutMs?: number;
  /** Logger. Default silent. */
  readonly logger?: Logger;
}

/** A running admin listener. */
export interface AdminServer {
  readonly address: TransportAddress;
  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void>;
}

const isLoopback = (ip: string): boolean => ip === '::1' || ip.startsWith('127.');
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Starts the admin listener; rejects with ServerError `BAD_CONFIG` or `BIND_FAILED`. */
export async function startAdminServer(init: AdminServerInit): Promise<AdminServer> {
  const ip = init.listen ?? '127.0.0.1';
  const family = ipFamily(ip);
  if (family === undefined) throw new ServerError('BAD_CONFIG', `admin listen: ${ip} is not an IP address`);
  if (init.token !== undefined && init.token.length < 16) throw new ServerError('BAD_CONFIG', 'admin token: at least 16 characters');
  if (!isLoopback(ip) && init.token === undefined) {
    throw new ServerError('BAD_CONFIG', `admin listen: ${ip} is not a loopback address: the admin listener needs a token there (or listen on 127.0.0.1)`);
  }
  const log = init.logger ?? silentLogger;
  const want = init.token === undefined ? undefined : digest(`Bearer ${init.token}`);
  const authorized = (req: IncomingMessage): boolean => want === undefined || timingSafeEqual(digest(req.headers.authorization ?? ''), want);
  const server = createServer(
    { requestTimeout: init.requestTimeoutMs ?? 5000, headersTimeout: init.requestTimeoutMs ?? 5000, keepAliveTimeout: 5000 },
    (req, res) => {
      void answer(req, res);
    },
  );
  server.maxConnections = init.maxConnections ?? 32;
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (!authorized(req)) return small(res, 401, 'unauthorized\n', { 'www-authenticate': 'Bearer' });
    if (req.method !== 'GET' && req.method !== 'HEAD') return small(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return small(res, 200, 'ok\n');
    if (path !== '/metrics') return small(res, 404, 'not found: try /metrics\n');
    try {
      const text = await init.metrics.text();
      res.writeHead(200, { 'content-type': init.metrics.registry.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
    } catch (e) {
      log.warn({ err: e instanceof Error ? e.message : String(e) }, 'admin: collecting metrics failed');
      small(res, 500, 'metrics collection failed\n');
    }
  };
  await listen(server, ip, init.port ?? 9641);
  const port = (server.address() as { port: number }).port;
  log.info({ address: `${ip.includes(':') ? `[${ip}]` : ip}:${port}`, token: init.token !== undefined }, 'admin listener');
  let closed: Promise<void> | undefined;
  return {
    address: { family, address: ip, port },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function small(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function listen(server: Server, ip: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void =>
      reject(
        new ServerError(
          'BIND_FAILED',
          `admin listener ${ip}:${port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (another program holds the port: choose another)' : ''}`,
          { cause: e },
        ),
      );
    server.once('error', onError);
    server.listen(port, ip, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
