import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { EXPOSE_OWNER_PATH, ExposeOwnerAnswer, type ExposeTransport } from '@nat/protocol';
import { NatClientError } from '../errors.js';
import { type ExposeTlsOptions, exposeEndpoint } from './connect.js';

/** Why {@link lookupExposeOwner} failed: the server could not be asked, or its answer is not an owner answer. */
export class ExposeOwnerError extends NatClientError<'UNREACHABLE' | 'BAD_ANSWER' | 'TIMEOUT'> {
  override readonly name = 'ExposeOwnerError';
}

/** The advertised owner of a public port. */
export interface ExposeOwner {
  /** The owner's peer id (`nat connect PEER_ID` reaches it over a peer link). */
  readonly peer: string;
  /** The public address, `ip:port`. */
  readonly address: string;
  readonly transport: ExposeTransport;
  readonly port: number;
}

/**
 * Asks the nat-server behind rendezvous URL `url` which peer owns its public port `port`
 * (`GET /expose/owner?port=P`); with `host`, the port at `host`, the public IP address of another
 * node sharing the server's Redis (`&host=IP`). Resolves with the owner when it advertised itself
 * (`nat expose --public --advertise-peer`), undefined when it did not (or the port is not held).
 * Rejects with ExposeOwnerError: UNREACHABLE (also: the nodes' shared state did not answer),
 * TIMEOUT (default 10 s), BAD_ANSWER (not an expose server of this version, or a server without
 * the lookup).
 */
export function lookupExposeOwner(
  url: string,
  port: number,
  options: { transport?: ExposeTransport; host?: string; timeoutMs?: number; tls?: ExposeTlsOptions; signal?: AbortSignal } = {},
): Promise<ExposeOwner | undefined> {
  const endpoint = exposeEndpoint(url);
  const target = new URL(`${endpoint.pathname.replace(/\/$/, '')}/${EXPOSE_OWNER_PATH}`, endpoint);
  target.searchParams.set('port', String(port));
  target.searchParams.set('transport', options.transport ?? 'tcp');
  if (options.host !== undefined) target.searchParams.set('host', options.host);
  return new Promise((resolve, reject) => {
    const secure = target.protocol === 'https:';
    const req = (secure ? httpsRequest : httpRequest)(target, {
      method: 'GET',
      timeout: options.timeoutMs ?? 10_000,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(secure ? { rejectUnauthorized: !options.tls?.insecure, ...(options.tls?.ca ? { ca: options.tls.ca } : {}) } : {}),
    });
    req.on('timeout', () =>
      req.destroy(new ExposeOwnerError('TIMEOUT', `${target.host} did not answer the owner lookup within ${options.timeoutMs ?? 10_000} ms`)),
    );
    req.on('error', (e) => reject(e instanceof ExposeOwnerError ? e : new ExposeOwnerError('UNREACHABLE', `${target.host}: ${e.message}`, { cause: e })));
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > 4096) res.destroy();
      });
      res.on('end', () => {
        let parsed: ExposeOwnerAnswer | undefined;
        try {
          const r = ExposeOwnerAnswer.safeParse(JSON.parse(body));
          parsed = r.success ? r.data : undefined;
        } catch {
          parsed = undefined;
        }
        if (parsed !== undefined && 'error' in parsed && parsed.error === 'unavailable')
          return reject(new ExposeOwnerError('UNREACHABLE', `${target.host}: ${parsed.message}`));
        if (parsed === undefined || (res.statusCode !== 200 && res.statusCode !== 404))
          return reject(
            new ExposeOwnerError(
              'BAD_ANSWER',
              `${target.host} answered the owner lookup with HTTP ${res.statusCode} and no owner answer (an expose server without the lookup?)`,
            ),
          );
        if ('error' in parsed) return resolve(undefined);
        resolve({ peer: parsed.peer, address: parsed.address, transport: parsed.transport, port: parsed.port });
      });
    });
    req.end();
  });
}
