/**
 * The admin listener, off unless started, on loopback unless told otherwise:
 *
 * - `GET /metrics`: Prometheus metrics; `GET /healthz`: `ok` (no token needed);
 * - `GET /status` (HTML) and `/status.json`: the status page, only when a token is set;
 * - `POST /reload`: the status page's reload button (a CSRF value from the page is required).
 *
 * With a token, every request but /healthz must carry it: `Authorization: Bearer TOKEN`
 * (Prometheus: `authorization: { credentials: TOKEN }`), or HTTP Basic with the token as the
 * password (what a browser sends after its prompt). Listening anywhere but loopback needs a
 * token. Answers to strangers are small; connections are capped, requests must arrive within a
 * few seconds, request bodies are at most 1 KiB.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type TransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ServerMetrics } from './metrics.js';
import { renderStatusPage } from './status-page.js';
import type { StatusView } from './status.js';

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
  /** The status page's data. Default none (no /status). Needs `token`. */
  readonly status?: StatusView;
  /** What the reload button does (SIGHUP does the same): resolves to a message, rejects with the reason it was refused. Default none (no button). */
  readonly reload?: () => Promise<string>;
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
  const authorized = authorizer(init.token);
  const csrf = init.token === undefined ? undefined : createHmac('sha256', init.token).update('nat-server reload').digest('base64url');
  const server = createServer(
    { requestTimeout: init.requestTimeoutMs ?? 5000, headersTimeout: init.requestTimeoutMs ?? 5000, keepAliveTimeout: 5000 },
    (req, res) => {
      void answer(req, res).catch((e: unknown) => {
        log.warn({ err: e instanceof Error ? e.message : String(e) }, 'admin: request failed');
        if (!res.headersSent) small(res, 500, 'internal error\n');
      });
    },
  );
  server.maxConnections = init.maxConnections ?? 32;
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return small(res, 200, 'ok\n');
    if (!authorized(req)) return small(res, 401, 'unauthorized\n', { 'www-authenticate': 'Basic realm="nat-server", charset="UTF-8"' });
    if (path === '/reload' && req.method === 'POST') return reloadAnswer(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return small(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (path === '/metrics') return metricsAnswer(req, res);
    if (path === '/status' || path === '/status.json') return statusAnswer(res, path.endsWith('.json'));
    return small(res, 404, 'not found: try /metrics or /status\n');
  };
  const metricsAnswer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await init.metrics.text();
    res.writeHead(200, { 'content-type': init.metrics.registry.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
  const statusAnswer = (res: ServerResponse, json: boolean, notice?: string): void => {
    if (init.status === undefined || init.token === undefined) return small(res, 404, 'no status page: it needs an admin token\n');
    const snap = init.status.snapshot();
    if (json) return small(res, 200, `${JSON.stringify(snap)}\n`, { 'content-type': 'application/json' });
    const page = renderStatusPage(snap, { ...(init.reload && csrf ? { reloadCsrf: csrf } : {}), ...(notice === undefined ? {} : { notice }) });
    small(res, 200, page, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    });
  };
  const reloadAnswer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (init.reload === undefined || csrf === undefined) return small(res, 404, 'no reload here\n');
    const body = await readBody(req, 1024);
    if (body === undefined || !sameText(new URLSearchParams(body).get('csrf') ?? '', csrf))
      return small(res, 403, 'reload refused: the form value is missing or wrong; reload the status page\n');
    let notice: string;
    try {
      notice = `reloaded: ${await init.reload()}`;
    } catch (e) {
      notice = `reload refused, the old configuration is kept: ${e instanceof Error ? e.message : String(e)}`;
    }
    statusAnswer(res, false, notice);
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

/** Checks a request's token: Bearer TOKEN, or Basic with TOKEN as the password; any request when there is no token. */
function authorizer(token: string | undefined): (req: IncomingMessage) => boolean {
  if (token === undefined) return () => true;
  return (req) => {
    const h = req.headers.authorization ?? '';
    if (h.startsWith('Basic ')) {
      const decoded = Buffer.from(h.slice(6), 'base64').toString('utf8');
      return sameText(decoded.slice(decoded.indexOf(':') + 1), token);
    }
    return sameText(h, `Bearer ${token}`);
  };
}

/** Constant-time comparison of two texts (through their SHA-256, so lengths leak nothing either). */
function sameText(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** A request body of at most `max` bytes, or undefined when it is longer. */
function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > max) {
        resolve(undefined);
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', () => resolve(undefined));
  });
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
