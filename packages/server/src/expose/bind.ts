import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server as NetServer, createServer } from 'node:net';
import { type ExposeRefusal, type ExposeTransport, ipFamily } from '@nat/protocol';
import { literalLookup } from '../udp-lookup.js';

/** A public port's socket, or why the operating system would not bind it (its errno code). */
export type BindResult =
  | { readonly tcp?: NetServer; readonly udp?: UdpSocket; readonly error?: undefined }
  | { readonly tcp?: undefined; readonly udp?: undefined; readonly error: string };

const codeOf = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? 'UNKNOWN';

function bindTcp(host: string, port: number): Promise<BindResult> {
  return new Promise((resolve) => {
    const s = createServer({ allowHalfOpen: true, noDelay: true });
    s.once('error', (e) => resolve({ error: codeOf(e) }));
    s.listen({ host, port, exclusive: true, backlog: 1024 }, () => {
      s.removeAllListeners('error');
      s.on('error', () => {});
      resolve({ tcp: s });
    });
  });
}

function bindUdp(host: string, port: number): Promise<BindResult> {
  return new Promise((resolve) => {
    const s = createSocket({ type: ipFamily(host) === 'IPv6' ? 'udp6' : 'udp4', lookup: literalLookup });
    s.once('error', (e) => {
      s.close();
      resolve({ error: codeOf(e) });
    });
    s.bind({ address: host, port, exclusive: true }, () => {
      s.removeAllListeners('error');
      s.on('error', () => {});
      resolve({ udp: s });
    });
  });
}

/** Binds a public port of the expose service on `host`. */
export function bindPublicPort(transport: ExposeTransport, host: string, port: number): Promise<BindResult> {
  return transport === 'tcp' ? bindTcp(host, port) : bindUdp(host, port);
}

/**
 * The refusal for a port no nat user holds but the server could not bind: held by another
 * program (EADDRINUSE), not allowed (EACCES, EPERM), or another errno, named as observed.
 */
export function bindRefusal(transport: ExposeTransport, port: number, errno: string): { code: ExposeRefusal; message: string } {
  if (errno === 'EADDRINUSE') return { code: 'port-in-use', message: `${transport} port ${port} is in use on the server by another program (not a nat user)` };
  if (errno === 'EACCES' || errno === 'EPERM') {
    return {
      code: 'port-denied',
      message: `the server is not allowed to bind ${transport} port ${port} (${errno}${port < 1024 ? ': ports below 1024 need privileges' : ''})`,
    };
  }
  return { code: 'unavailable', message: `the server could not bind ${transport} port ${port} (${errno})` };
}
