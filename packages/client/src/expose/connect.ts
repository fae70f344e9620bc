import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { EXPOSE_PROTOCOL } from '@nat/protocol';
import { StunClientError } from '../errors.js';

/**
 * The expose endpoint of a rendezvous URL: the same host and port, path `expose` next to the
 * rendezvous path (`ws://h:8443/` -> `http://h:8443/expose`); a URL already ending in `/expose`
 * is kept. ws:/http: map to HTTP, wss:/https: to HTTPS. Throws StunClientError BAD_ADDRESS.
 */
export function exposeEndpoint(rendezvousUrl: string): URL {
  let u: URL;
  try {
    u = new URL(rendezvousUrl);
  } catch {
    throw new StunClientError('BAD_ADDRESS', `not a URL: ${JSON.stringify(rendezvousUrl)} (expected e.g. ws://rv.example.org:8443/)`);
  }
  const scheme = { 'ws:': 'http:', 'http:': 'http:', 'wss:': 'https:', 'https:': 'https:' }[u.protocol];
  if (scheme === undefined) throw new StunClientError('BAD_ADDRESS', `${rendezvousUrl}: expected a ws://, wss://, http:// or https:// URL`);
  const out = new URL(u.pathname.endsWith('/expose') ? u.pathname : 'expose', u);
  out.protocol = scheme;
  out.search = '';
  out.hash = '';
  return out;
}

/** TLS options for wss:// endpoints. */
export interface ExposeTlsOptions {
  /** Accept a certificate that does not verify (self-signed test servers). Default false. */
  readonly insecure?: boolean;
  /** Extra trusted CA certificates (PEM). */
  readonly ca?: string | Buffer;
}

/**
 * Opens the control connection: an HTTP Upgrade to `nat-expose`. Resolves to the upgraded
 * socket and any bytes that came with the 101 answer. Rejects with StunClientError SOCKET
 * (unreachable, refused, not an expose server), TIMEOUT or ABORTED.
 */
export function openExposeConnection(
  endpoint: URL,
  options: { timeoutMs?: number; signal?: AbortSignal; tls?: ExposeTlsOptions } = {},
): Promise<{ socket: Socket; head: Buffer }> {
  return new Promise((resolve, reject) => {
    const secure = endpoint.protocol === 'https:';
    const req = (secure ? httpsRequest : httpRequest)(endpoint, {
      method: 'GET',
      headers: { connection: 'Upgrade', upgrade: EXPOSE_PROTOCOL },
      ...(secure ? { rejectUnauthorized: !options.tls?.insecure, ...(options.tls?.ca ? { ca: options.tls.ca } : {}) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new StunClientError('TIMEOUT', `no answer from ${endpoint.host} within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    req.on('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      if (String(res.headers.upgrade ?? '').toLowerCase() !== EXPOSE_PROTOCOL) {
        socket.destroy();
        reject(new StunClientError('SOCKET', `${endpoint.href} upgraded to ${String(res.headers.upgrade)}, not ${EXPOSE_PROTOCOL}`));
        return;
      }
      resolve({ socket, head });
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      // The server's reason (e.g. a 503 for a share or a cap) is a short plain-text body: read at
      // most 512 bytes of it and say it; only a 404 means no expose service answers this path.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 512) body += chunk.slice(0, 512 - body.length);
      });
      const done = (): void => {
        const reason = body.replace(/\s+/g, ' ').trim();
        const hint = res.statusCode === 404 ? ': is the expose service on (nat-server --expose-ports)?' : reason === '' ? '' : `: ${reason}`;
        reject(new StunClientError('SOCKET', `${endpoint.href} answered HTTP ${res.statusCode}${hint}`));
      };
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      const aborted = options.signal?.aborted === true;
      reject(new StunClientError(aborted ? 'ABORTED' : 'SOCKET', aborted ? 'aborted' : `cannot connect to ${endpoint.host}: ${e.message}`, { cause: e }));
    });
    req.end();
  });
}
