import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server as NetServer, type Socket as NetSocket, createServer as createTcpServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { StunStreamFramer, type TransportAddress, formatTransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type TlsCredentialsSource, loadTlsCredentials } from '../tls/credentials.js';
import { type EndpointSet, type SocketRole, availableRoles, roleAddress } from './endpoints.js';
import type { RateLimit } from './rate-limiter.js';
import { StunResponder, type StunResponderStats } from './responder.js';

/** Options of {@link startStunServer}. Every option is documented with its default. */
export interface StunServerInit {
  /** Primary IP addresses to listen on, at most one per family (e.g. `['127.0.0.1', '::1']`). Required. */
  readonly listen: readonly string[];
  /**
   * Alternate IP addresses, matched to `listen` by family, for RFC 5780 change-IP answers.
   * Default none: the server then answers change-IP requests with 420.
   */
  readonly alternate?: readonly string[];
  /** Primary port for UDP and TCP. Default 3478; 0 picks a free one. */
  readonly port?: number;
  /** Alternate port (RFC 5780 change-port). Default 3479; 0 picks a free one; null disables. */
  readonly altPort?: number | null;
  /** Also serve STUN over TCP on the same addresses and ports (RFC 8489 section 6.2.2). Default true. */
  readonly tcp?: boolean;
  /** Port for STUN over TLS on the primary and alternate IPs. Default none (no TLS); 0 picks a free one. */
  readonly tlsPort?: number;
  /** TLS certificate; default a generated self-signed one (for local use) when `tlsPort` is set. */
  readonly tls?: TlsCredentialsSource;
  /** SOFTWARE attribute, sent only when the amplification budget allows. Default none. */
  readonly software?: string;
  /** Per-source-IP rate limit. Default 500 requests/s, bursts of 1000. `{ perSecond: 0 }` disables. */
  readonly rateLimit?: RateLimit;
  /** Most simultaneous TCP/TLS connections. Default 10,000. */
  readonly maxConnections?: number;
  /** Idle TCP/TLS connections are closed after this many milliseconds. Default 30,000. */
  readonly idleTimeoutMs?: number;
  /** Logger (pino-compatible). Default silent. */
  readonly logger?: Logger;
}

/** A listening socket of the server and what it is for. */
export interface StunListener {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly role: SocketRole;
  readonly address: TransportAddress;
}

/** A running STUN server. */
export interface StunServer {
  /** Per family, the addresses RFC 5780 clients see (ports resolved when 0 was asked). */
  readonly endpoints: readonly EndpointSet[];
  readonly listeners: readonly StunListener[];
  /** Counters summed over families. */
  stats(): StunResponderStats & { connections: number };
  /** Stops listening, closes every connection. Idempotent. */
  close(): Promise<void>;
}

function bindUdp(ip: string, port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const family = ipFamily(ip);
    const socket = createSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4', ipv6Only: family === 'IPv6' });
    const onError = (e: Error): void => {
      socket.close();
      reject(new ServerError('BIND_FAILED', `cannot listen on UDP ${formatTransportAddress({ family: family ?? 'IPv4', address: ip, port })}: ${e.message}`, { cause: e }));
    };
    socket.once('error', onError);
    socket.bind({ address: ip, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function listenStream(server: NetServer, ip: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new ServerError('BIND_FAILED', `cannot listen on ${what} ${ip} port ${port}: ${e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen({ host: ip, port, ipv6Only: ipFamily(ip) === 'IPv6', exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function validate(init: StunServerInit): void {
  if (init.listen.length === 0) throw new ServerError('BAD_CONFIG', 'listen: give at least one IP address to listen on');
  const seen = new Set<string>();
  for (const ip of init.listen) {
    const f = ipFamily(ip);
    if (!f) throw new ServerError('BAD_CONFIG', `listen: ${JSON.stringify(ip)} is not an IP address`);
    if (seen.has(f)) throw new ServerError('BAD_CONFIG', `listen: more than one ${f} address; run one server per ${f} address`);
    seen.add(f);
  }
  for (const ip of init.alternate ?? []) {
    const f = ipFamily(ip);
    if (!f) throw new ServerError('BAD_CONFIG', `alternate: ${JSON.stringify(ip)} is not an IP address`);
    if (!init.listen.some((l) => ipFamily(l) === f)) throw new ServerError('BAD_CONFIG', `alternate: ${ip} has no ${f} listen address to pair with`);
    if (init.listen.includes(ip)) throw new ServerError('BAD_CONFIG', `alternate: ${ip} is also a listen address; it must differ`);
  }
  for (const [k, v] of [['port', init.port], ['altPort', init.altPort], ['tlsPort', init.tlsPort]] as const) {
    if (v !== undefined && v !== null && (!Number.isInteger(v) || v < 0 || v > 65535)) throw new ServerError('BAD_CONFIG', `${k}: ${v} is not a port number`);
  }
  if (init.port !== undefined && init.port !== 0 && init.port === init.altPort) throw new ServerError('BAD_CONFIG', 'altPort must differ from port');
}

/**
 * Starts a STUN server: four UDP sockets per family when an alternate IP and port are given
 * (RFC 5780), TCP listeners on the same addresses, and TLS listeners when `tlsPort` is set.
 */
export async function startStunServer(init: StunServerInit): Promise<StunServer> {
  validate(init);
  const log = init.logger ?? silentLogger;
  const udpSockets: UdpSocket[] = [];
  const streamServers: NetServer[] = [];
  const connections = new Set<NetSocket>();
  const listeners: StunListener[] = [];
  const endpoints: EndpointSet[] = [];
  const responders: StunResponder[] = [];
  const maxConnections = init.maxConnections ?? 10_000;
  const idleTimeoutMs = init.idleTimeoutMs ?? 30_000;
  let closed = false;
  let tlsPort = init.tlsPort ?? 5349;

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const c of connections) c.destroy();
    await Promise.all([
      ...udpSockets.map((s) => new Promise<void>((r) => s.close(() => r()))),
      ...streamServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]);
  };

  try {
    const tlsCredentials = init.tlsPort !== undefined ? await loadTlsCredentials(init.tls ?? { selfSigned: true, altIps: [...init.listen, ...(init.alternate ?? [])] }) : undefined;
    for (const primary of init.listen) {
      const family = ipFamily(primary)!;
      const alternate = init.alternate?.find((a) => ipFamily(a) === family);
      // Bind the primary IP first so that port 0 resolves to one number shared by both IPs.
      const pp = await bindUdp(primary, init.port ?? 3478);
      udpSockets.push(pp);
      const port = pp.address().port;
      let altPort: number | undefined;
      let pa: UdpSocket | undefined;
      if (init.altPort !== null) {
        pa = await bindUdp(primary, init.altPort ?? 3479);
        udpSockets.push(pa);
        altPort = pa.address().port;
      }
      const set: EndpointSet = { family, primary, alternate, port, altPort };
      const sockets: Partial<Record<SocketRole, UdpSocket>> = { PP: pp, PA: pa };
      if (alternate !== undefined) {
        sockets.AP = await bindUdp(alternate, port);
        udpSockets.push(sockets.AP);
        if (altPort !== undefined) {
          sockets.AA = await bindUdp(alternate, altPort);
          udpSockets.push(sockets.AA);
        }
      }
      endpoints.push(set);
      const responder = new StunResponder({ endpoints: set, software: init.software, rateLimit: init.rateLimit });
      responders.push(responder);

      for (const role of availableRoles(set)) {
        const socket = sockets[role]!;
        listeners.push({ transport: 'udp', role, address: roleAddress(set, role)! });
        // Hot path: no closures or promises per packet beyond this handler, no logging.
        socket.on('message', (msg, rinfo) => {
          const reply = responder.handleDatagram(msg, rinfo as TransportAddress, role, Date.now());
          if (reply !== undefined) sockets[reply.via]!.send(reply.bytes, reply.to.port, reply.to.address);
        });
        socket.on('error', (e) => log.warn({ err: e.message, role }, 'udp socket error'));
      }

      const serveStream = (socket: NetSocket, role: SocketRole): void => {
        if (connections.size >= maxConnections) {
          socket.destroy();
          return;
        }
        connections.add(socket);
        socket.setTimeout(idleTimeoutMs, () => socket.destroy());
        socket.on('close', () => connections.delete(socket));
        socket.on('error', () => socket.destroy());
        // A STUN-only server has no use for ChannelData (a stream starting with 0x40-0x4F, such as
        // "GET ..." is one) and no STUN request of more than a few kilobytes: fail such streams
        // at once instead of waiting for the bytes their length fields promise.
        const framer = new StunStreamFramer({ maxChannelDataLength: 4, maxStunMessageLength: 8192 });
        const from: TransportAddress = { family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4', address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
        socket.on('data', (chunk: Buffer) => {
          try {
            framer.push(chunk);
            for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
              if (frame.kind !== 'stun') continue; // ChannelData has no meaning without TURN
              const reply = responder.handleStreamMessage(frame.bytes, from, role, Date.now());
              if (reply !== undefined) socket.write(reply);
            }
          } catch {
            // The stream is not STUN (RFC 8489 section 6.2.2 framing lost): close it.
            socket.destroy();
          }
        });
      };

      if (init.tcp !== false) {
        for (const role of availableRoles(set)) {
          const addr = roleAddress(set, role)!;
          const server = createTcpServer((s) => serveStream(s, role));
          streamServers.push(server);
          await listenStream(server, addr.address, addr.port, 'TCP');
          listeners.push({ transport: 'tcp', role, address: addr });
        }
      }
      if (tlsCredentials !== undefined) {
        tlsPort = init.tlsPort ?? 5349;
        for (const [role, ip] of [['PP', primary], ['AP', alternate]] as const) {
          if (ip === undefined) continue;
          const server = createTlsServer({ cert: tlsCredentials.cert, key: tlsCredentials.key, handshakeTimeout: 10_000 }, (s) => serveStream(s, role));
          server.on('tlsClientError', () => {});
          streamServers.push(server);
          await listenStream(server, ip, tlsPort, 'TLS');
          // When the system picked the port, the alternate IP uses the same one.
          tlsPort = (server.address() as { port: number }).port;
          listeners.push({ transport: 'tls', role, address: { family, address: ip, port: tlsPort } });
        }
      }
    }
  } catch (e) {
    await close();
    throw e;
  }
  for (const l of listeners) log.info({ transport: l.transport, role: l.role, address: formatTransportAddress(l.address) }, 'listening');

  return {
    endpoints,
    listeners,
    stats() {
      const total = { answered: 0, errors: 0, dropped: 0, rateLimited: 0, indications: 0, connections: connections.size };
      for (const r of responders) for (const k of Object.keys(r.stats) as (keyof StunResponderStats)[]) total[k] += r.stats[k];
      return total;
    },
    close,
  };
}
