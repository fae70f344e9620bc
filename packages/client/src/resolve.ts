import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { type AddressFamily, type TransportAddress, ParseError, ipFamily, parseTransportAddress } from '@nat/protocol';
import { StunClientError } from './errors.js';

/** The default STUN port (RFC 8489 section 18.2); STUN over TLS defaults to 5349. */
export const DEFAULT_STUN_PORT = 3478;
/** The default STUN-over-TLS port (RFC 8489 section 18.2). */
export const DEFAULT_STUNS_PORT = 5349;

/** A STUN server: `"HOST[:PORT]"` / `"[IPv6]:PORT"` text, or a resolved address. */
export type ServerAddress = string | TransportAddress;

/** A server address resolved to an IP, and the host name it came from, if any. */
export interface ResolvedServer {
  readonly address: TransportAddress;
  /** The DNS name given, when the server was named rather than numbered (for TLS SNI). */
  readonly hostname: string | undefined;
}

/**
 * Resolves `"1.2.3.4:3478"`, `"[2001:db8::1]:3478"`, `"stun.example.org:3478"` or a bare host
 * (with `defaultPort`) to an IP address. Names go through the system resolver
 * (`dns.lookup`), restricted to `family` when given. Rejects with code `BAD_ADDRESS`.
 */
export async function resolveServer(server: ServerAddress, options: { defaultPort?: number; family?: AddressFamily } = {}): Promise<ResolvedServer> {
  const defaultPort = options.defaultPort ?? DEFAULT_STUN_PORT;
  if (typeof server !== 'string') return { address: server, hostname: undefined };
  const text = server.trim();
  try {
    return { address: parseTransportAddress(text, defaultPort), hostname: undefined };
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
  }
  // A host name, with an optional :port.
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?)(?::(\d{1,5}))?$/.exec(text);
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) {
    throw new StunClientError('BAD_ADDRESS', `not a server address: ${JSON.stringify(server)} (expected HOST[:PORT] or [IPv6]:PORT)`);
  }
  const hostname = m[1]!;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  try {
    const r = await lookup(hostname, { family: options.family === 'IPv6' ? 6 : options.family === 'IPv4' ? 4 : 0 });
    return { address: { family: r.family === 6 ? 'IPv6' : 'IPv4', address: r.address, port }, hostname };
  } catch (e) {
    throw new StunClientError('BAD_ADDRESS', `cannot resolve ${hostname}: ${(e as Error).message}`, { cause: e });
  }
}

/** True for `0.0.0.0` and `::`. */
export function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '::0';
}

/**
 * The local IP address the kernel would send from to reach `destination` (from a connected UDP
 * socket; nothing is sent). Used to tell what "the local address" of a socket bound to the
 * wildcard address is. Resolves `undefined` when there is no route.
 */
export function routeSourceAddress(destination: TransportAddress): Promise<string | undefined> {
  return new Promise((resolve) => {
    const family = destination.family ?? ipFamily(destination.address) ?? 'IPv4';
    const s = createSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4' });
    const finish = (value: string | undefined): void => {
      try {
        s.close();
      } catch {
        // already closed
      }
      resolve(value);
    };
    s.once('error', () => finish(undefined));
    s.connect(destination.port, destination.address, () => {
      try {
        finish(s.address().address);
      } catch {
        finish(undefined);
      }
    });
  });
}
