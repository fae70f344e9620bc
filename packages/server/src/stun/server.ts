import type { Server as NetServer, Socket as NetSocket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import { type Server as TlsServer, type TLSSocket, createSecureContext } from 'node:tls';
import { type TransportAddress, formatTransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type ServerEventSink, noEvents } from '../events.js';
import { type Logger, silentLogger } from '../logger.js';
import { type TlsCredentials, type TlsCredentialsSource, loadTlsCredentials } from '../tls/credentials.js';
import { type GovernedConnection, createGovernedTlsServer, governTcpServer, proxiedTlsListener } from '../listeners/listen.js';
import { ONE_PORT_ALPN, type OnePortRoutes, routeOnePort } from '../listeners/one-port.js';
import { ProxyFront, type ProxyProtocolOptions } from '../listeners/proxy-front.js';
import { StreamGovernor, type StreamGovernorStats, type StreamLease, type StreamLimits } from '../listeners/stream.js';
import { bindEndpointSet, listenStream } from '../listeners/udp.js';
import { TurnDriver, type TurnOptions } from '../relay/driver.js';
import type { TurnCore, TurnStats } from '../turn/core.js';
import { type EndpointSet, type SocketRole, availableRoles, roleAddress } from './endpoints.js';
import { type ExternalAddress, ExternalAddresses } from './external.js';
import type { RateLimit } from './rate-limiter.js';
import { StunResponder, type StunResponderStats } from './responder.js';
import { type StunStreamContext, serveStunStream } from './stream-service.js';
import { serveStunUdp } from './udp-service.js';

export type { TurnOptions } from '../relay/driver.js';

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
  /** Alternate port (RFC 5780 change-port). Default 3479, or a free one when `port` is 0; 0 picks a free one; null disables. */
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
  /** Most simultaneous TCP/TLS connections (same as `streams.maxConnections`). Default 10,000. */
  readonly maxConnections?: number;
  /** Idle TCP/TLS connections that carry nothing are closed after this many milliseconds (same as `streams.idleTimeoutMs`). Default 30,000. */
  readonly idleTimeoutMs?: number;
  /** Governance of TCP/TLS connections: per-source and per-user shares, TLS handshake deadline, backpressure, error-answer rate. Defaults in {@link StreamLimits}. */
  readonly streams?: StreamLimits;
  /** Logger (pino-compatible). Default silent. */
  readonly logger?: Logger;
  /** Also serve TURN (RFC 8656) on the same sockets: a {@link TurnDriver} is wired in. Default off. */
  readonly turn?: TurnOptions;
  /** Where events go: connections (governor), rate-limited requests (responder), the TURN core's. Default {@link noEvents}. */
  readonly events?: ServerEventSink;
  /**
   * 1:1 NAT (a cloud VM's public address mapped to its private one, coturn's `external-ip`):
   * sockets stay bound to `private` (a listen, alternate or relay IP), and every address told
   * to a client carries `public` with the same port: XOR-RELAYED-ADDRESS, RESPONSE-ORIGIN,
   * OTHER-ADDRESS. The public addresses are never relay peers either. Default none.
   */
  readonly external?: readonly ExternalAddress[];
  /**
   * Load balancers in front (PROXY protocol v2 or v1): connections from these sources, on the TCP
   * and TLS listeners, must start with a PROXY header (read before TLS), whose client address
   * then stands for the connection everywhere. Default none.
   */
  readonly proxyProtocol?: ProxyProtocolOptions;
  /** In a node:cluster worker: share every listening socket with the other workers (see EndpointPorts). Default false. */
  readonly clusterShared?: boolean;
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
  stats(): StunResponderStats & { connections: number; streams: StreamGovernorStats; turn?: TurnStats };
  /** The TURN core, when TURN is on (for inspection and tests). */
  readonly turn: TurnCore | undefined;
  /**
   * New TLS connections use this certificate and key from now on (a reload); connections already
   * open keep theirs. Throws ServerError `TLS` when they cannot be used (nothing changes then),
   * `BAD_CONFIG` when the server has no TLS listener.
   */
  setTlsCredentials(credentials: TlsCredentials): void;
  /**
   * Shares the TLS port with an HTTP service (the rendezvous and the expose control connection):
   * TLS connections that ask for ALPN "http/1.1", or start with an HTTP request line, go to
   * `serve` under the TLS listener's governance; STUN/TURN ones ("stun.turn", or a STUN message)
   * stay here. Undefined stops it (HTTP connections are then closed).
   */
  serveHttpOnTls(serve: GovernedConnection | undefined): void;
  /** Stops listening, closes every connection. Idempotent. */
  close(): Promise<void>;
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
  for (const [k, v] of [
    ['port', init.port],
    ['altPort', init.altPort],
    ['tlsPort', init.tlsPort],
  ] as const) {
    if (v !== undefined && v !== null && (!Number.isInteger(v) || v < 0 || v > 65535)) throw new ServerError('BAD_CONFIG', `${k}: ${v} is not a port number`);
  }
  if (init.port !== undefined && init.port !== 0 && init.port === init.altPort) throw new ServerError('BAD_CONFIG', 'altPort must differ from port');
}

/** What one server runs: filled in while binding, released by `close`. */
interface Running {
  readonly udpSockets: UdpSocket[];
  readonly streamServers: NetServer[];
  readonly tlsServers: TlsServer[];
  readonly listeners: StunListener[];
  readonly endpoints: EndpointSet[];
  readonly responders: StunResponder[];
  readonly governor: StreamGovernor;
  readonly turn: TurnDriver | undefined;
  readonly external: ExternalAddresses;
  readonly log: Logger;
  readonly events: ServerEventSink;
  /** Numbers the stream connections (their TURN endpoint keys). */
  readonly nextId: () => number;
  readonly front: ProxyFront | undefined;
  /** The HTTP service sharing the TLS port, if any. */
  http: GovernedConnection | undefined;
  closed: boolean;
}

/**
 * Starts a STUN server: four UDP sockets per family when an alternate IP and port are given
 * (RFC 5780), TCP listeners on the same addresses, and TLS listeners when `tlsPort` is set.
 * With `turn`, a TURN driver serves TURN on the same sockets (the listeners hand it what they
 * demultiplex as TURN).
 */
export async function startStunServer(init: StunServerInit): Promise<StunServer> {
  validate(init);
  const log = init.logger ?? silentLogger;
  const events = init.events ?? noEvents;
  const limits: StreamLimits = { maxConnections: init.maxConnections, idleTimeoutMs: init.idleTimeoutMs, ...init.streams };
  const external = new ExternalAddresses(init.external, [...init.listen, ...(init.alternate ?? []), ...(init.turn?.relayIps ?? [])]);
  const turn = init.turn ? new TurnDriver({ turn: init.turn, listen: init.listen, logger: log, events, external }) : undefined;
  const run: Running = {
    udpSockets: [],
    streamServers: [],
    tlsServers: [],
    listeners: [],
    endpoints: [],
    responders: [],
    governor: new StreamGovernor(limits, { log, events, service: turn ? 'turn' : 'stun' }),
    turn,
    external,
    log,
    events,
    nextId: counter(),
    front: init.proxyProtocol ? new ProxyFront(init.proxyProtocol, log) : undefined,
    http: undefined,
    closed: false,
  };
  const close = (): Promise<void> => closeRunning(run);
  try {
    const tls =
      init.tlsPort !== undefined
        ? await loadTlsCredentials(init.tls ?? { selfSigned: true, altIps: [...init.listen, ...(init.alternate ?? []), ...external.publicIps()] })
        : undefined;
    for (const primary of init.listen) await startFamily(init, run, primary, tls);
  } catch (e) {
    await close();
    throw e;
  }
  // The server's own listeners, at their bound and public addresses, are never relay peers (its
  // relay IPs stand in for a wildcard listen address).
  const listening = run.listeners.map((l) => l.address);
  turn?.core.addServiceAddresses(
    [...listening, ...listening.map((a) => external.advertise(a)).filter((a) => !listening.includes(a))],
    [...turn.relayIps.values(), ...[...turn.relayIps.values()].map((ip) => external.publicIp(ip))],
  );
  for (const l of run.listeners) log.info({ transport: l.transport, role: l.role, address: formatTransportAddress(l.address) }, 'listening');
  return {
    endpoints: run.endpoints,
    listeners: run.listeners,
    turn: turn?.core,
    stats: () => totals(run),
    setTlsCredentials: (credentials) => setTlsCredentials(run, credentials),
    serveHttpOnTls: (serve) => void (run.http = serve),
    close,
  };
}

function counter(): () => number {
  let n = 1;
  return () => n++;
}

/** Binds one family's endpoint set and starts its UDP, TCP and TLS services. */
async function startFamily(init: StunServerInit, run: Running, primary: string, tls: TlsCredentials | undefined): Promise<void> {
  const family = ipFamily(primary)!;
  const alternate = init.alternate?.find((a) => ipFamily(a) === family);
  const { set, sockets, tcpServers } = await bindEndpointSet(init, family, primary, alternate);
  run.udpSockets.push(...Object.values(sockets));
  run.streamServers.push(...tcpServers.values());
  run.endpoints.push(set);
  const responder = new StunResponder({
    endpoints: set,
    advertised: run.external.advertiseSet(set),
    software: init.software,
    rateLimit: init.rateLimit,
    events: run.events,
  });
  run.responders.push(responder);
  for (const role of availableRoles(set)) {
    serveStunUdp(sockets, set, role, responder, run.turn, run.log);
    run.listeners.push({ transport: 'udp', role, address: roleAddress(set, role)! });
  }
  const ctx: StunStreamContext = { responder, turn: run.turn, nextId: run.nextId };
  const serve = (role: SocketRole) => (s: NetSocket, lease: StreamLease) => serveStunStream(ctx, s, lease, role, roleAddress(set, role)!);
  for (const [role, server] of tcpServers) {
    governTcpServer(server, run.governor, serve(role), run.front);
    run.listeners.push({ transport: 'tcp', role, address: roleAddress(set, role)! });
  }
  if (tls === undefined) return;
  let tlsPort = init.tlsPort ?? 5349;
  for (const [role, ip] of [
    ['PP', primary],
    ['AP', alternate],
  ] as const) {
    if (ip === undefined) continue;
    const routes: OnePortRoutes = { stun: serve(role), http: () => run.http };
    const tlsServer = createGovernedTlsServer(tls, run.governor, (s, lease) => routeOnePort(routes, s as TLSSocket, lease), ONE_PORT_ALPN);
    const server = run.front === undefined ? tlsServer : proxiedTlsListener(tlsServer, run.front);
    run.streamServers.push(server);
    run.tlsServers.push(tlsServer);
    await listenStream(server, ip, tlsPort, 'TLS', init.clusterShared !== true);
    // When the system picked the port, the alternate IP uses the same one.
    tlsPort = (server.address() as { port: number }).port;
    run.listeners.push({ transport: 'tls', role, address: { family, address: ip, port: tlsPort } });
  }
}

async function closeRunning(run: Running): Promise<void> {
  if (run.closed) return;
  run.closed = true;
  run.turn?.close();
  run.front?.closePending();
  await Promise.all([
    run.governor.closeAll(),
    ...run.udpSockets.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ...run.streamServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
  ]);
}

function setTlsCredentials(run: Running, credentials: TlsCredentials): void {
  if (run.tlsServers.length === 0) throw new ServerError('BAD_CONFIG', 'no TLS listener: the server was started without tlsPort');
  let context;
  try {
    context = { cert: credentials.cert, key: credentials.key };
    createSecureContext(context); // refuses a certificate and key that do not belong together, before any server takes them
  } catch (e) {
    throw new ServerError('TLS', `the new TLS certificate and key cannot be used: ${(e as Error).message}`, { cause: e });
  }
  for (const server of run.tlsServers) server.setSecureContext(context);
  run.log.info({ servers: run.tlsServers.length }, 'TLS certificate replaced');
}

/** Counters summed over families. */
function totals(run: Running): ReturnType<StunServer['stats']> {
  const total: ReturnType<StunServer['stats']> = {
    answered: 0,
    errors: 0,
    dropped: 0,
    rateLimited: 0,
    indications: 0,
    connections: run.governor.stats.open,
    streams: { ...run.governor.stats },
  };
  for (const r of run.responders) for (const k of Object.keys(r.stats) as (keyof StunResponderStats)[]) total[k] += r.stats[k];
  if (run.turn) total.turn = { ...run.turn.core.stats };
  return total;
}
