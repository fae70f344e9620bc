import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server as NetServer, type Socket as NetSocket, connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { type AddressFamily, StunMethod, type TransportAddress, formatTransportAddress, ipFamily } from '@nat/protocol';
import type { ClientEndpoint } from '../turn/allocation.js';
import type { TurnAuthenticator } from '../turn/auth.js';
import { TurnCore, type TurnCoreInit, type TurnStats, tryDecodeStun } from '../turn/core.js';
import type { PeerPolicyInit } from '../turn/peer-policy.js';
import { RelayPorts, type RelayPortRange } from '../turn/relay-ports.js';
import { ServerError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type TlsCredentialsSource, loadTlsCredentials } from '../tls/credentials.js';
import { literalLookup } from '../udp-lookup.js';
import { createGovernedTlsServer, governTcpServer } from '../listeners/listen.js';
import { StreamGovernor, type StreamGovernorStats, type StreamLease, type StreamLimits } from '../listeners/stream.js';
import { type EndpointSet, type SocketRole, availableRoles, roleAddress } from './endpoints.js';
import type { RateLimit } from './rate-limiter.js';
import { StunResponder, type StunResponderStats } from './responder.js';
import { type StunStreamConnection, type StunStreamContext, serveStunStream } from './stream-service.js';

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
  /** Governance of TCP/TLS connections: per-source share, TLS handshake deadline, backpressure, error-answer rate. Defaults in {@link StreamLimits}. */
  readonly streams?: StreamLimits;
  /** Logger (pino-compatible). Default silent. */
  readonly logger?: Logger;
  /** Also serve TURN (RFC 8656) on the same sockets. Default off. */
  readonly turn?: TurnOptions;
}

/** TURN on a {@link startStunServer} server. */
export interface TurnOptions extends Omit<TurnCoreInit, 'relayFamilies' | 'peers' | 'logger' | 'auth'> {
  /** Where long-term keys come from (`staticUsers`, `restApiSecrets`, `anyOf`). Required. */
  readonly auth: TurnAuthenticator;
  /** Relay IP per family. Default: the listen address of that family. */
  readonly relayIps?: readonly string[];
  /** Relay port range. Default 49152-65535. */
  readonly relayPorts?: RelayPortRange;
  /** Peer address policy. Default: refuse loopback, private, link-local, multicast, ... */
  readonly peers?: PeerPolicyInit;
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
  /** Stops listening, closes every connection. Idempotent. */
  close(): Promise<void>;
}

function bindUdp(ip: string, port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const family = ipFamily(ip);
    // A larger receive buffer absorbs bursts (the kernel default drops them under load).
    const socket = createSocket({
      type: family === 'IPv6' ? 'udp6' : 'udp4',
      ipv6Only: family === 'IPv6',
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
      lookup: literalLookup,
    });
    const onError = (e: Error): void => {
      socket.close();
      reject(
        new ServerError('BIND_FAILED', `cannot listen on UDP ${formatTransportAddress({ family: family ?? 'IPv4', address: ip, port })}: ${e.message}`, {
          cause: e,
        }),
      );
    };
    socket.once('error', onError);
    socket.bind({ address: ip, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** How often {@link bindEndpointSet} tries again with new system-chosen ports. */
const PORT_PICK_TRIES = 8;

/**
 * Binds the UDP sockets of one family's endpoint set (primary and alternate IP, primary and
 * alternate port) and, unless `tcp` is false, its TCP listeners on the same addresses.
 *
 * A port of 0 is resolved once, by the primary IP's UDP socket, and the same number is then
 * bound on the alternate IP and over TCP. The system only checked that number for UDP on the
 * primary IP: TCP's port space is separate, so the TCP listener (or the alternate IP's socket)
 * can find it taken (EADDRINUSE) by an unrelated socket, most likely on a busy host whose TCP
 * connections use the same ephemeral range. Then everything bound so far is closed and the set
 * is bound again with new ports, up to {@link PORT_PICK_TRIES} times; a port given explicitly
 * fails at once. The alternate port defaults to 3479, or to a system-chosen one when `port` is 0
 * (a fixed 3479 beside a chosen primary port would collide between two such servers).
 */
async function bindEndpointSet(
  init: StunServerInit,
  family: AddressFamily,
  primary: string,
  alternate: string | undefined,
): Promise<{ set: EndpointSet; sockets: Partial<Record<SocketRole, UdpSocket>>; tcpServers: Map<SocketRole, NetServer> }> {
  const chosenPort = init.port ?? 3478;
  const chosenAlt = init.altPort === null ? null : (init.altPort ?? (chosenPort === 0 ? 0 : 3479));
  const systemPicked = chosenPort === 0 || chosenAlt === 0;
  for (let attempt = 1; ; attempt++) {
    const sockets: Partial<Record<SocketRole, UdpSocket>> = {};
    const tcpServers = new Map<SocketRole, NetServer>();
    try {
      sockets.PP = await bindUdp(primary, chosenPort);
      const port = sockets.PP.address().port;
      let altPort: number | undefined;
      if (chosenAlt !== null) {
        sockets.PA = await bindUdp(primary, chosenAlt);
        altPort = sockets.PA.address().port;
      }
      const set: EndpointSet = { family, primary, alternate, port, altPort };
      if (alternate !== undefined) {
        sockets.AP = await bindUdp(alternate, port);
        if (altPort !== undefined) sockets.AA = await bindUdp(alternate, altPort);
      }
      if (init.tcp !== false) {
        for (const role of availableRoles(set)) {
          const addr = roleAddress(set, role)!;
          const server = createTcpServer();
          tcpServers.set(role, server);
          await listenStream(server, addr.address, addr.port, 'TCP');
        }
      }
      return { set, sockets, tcpServers };
    } catch (e) {
      for (const socket of Object.values(sockets)) socket.close();
      await Promise.all([...tcpServers.values()].map((server) => new Promise<void>((r) => server.close(() => r()))));
      const inUse = (e as { cause?: { code?: string } }).cause?.code === 'EADDRINUSE';
      if (!systemPicked || !inUse || attempt >= PORT_PICK_TRIES) throw e;
    }
  }
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
  for (const [k, v] of [
    ['port', init.port],
    ['altPort', init.altPort],
    ['tlsPort', init.tlsPort],
  ] as const) {
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
  const listeners: StunListener[] = [];
  const endpoints: EndpointSet[] = [];
  const responders: StunResponder[] = [];
  const governor = new StreamGovernor({ maxConnections: init.maxConnections, idleTimeoutMs: init.idleTimeoutMs, ...init.streams }, log);
  let closed = false;
  let tlsPort = init.tlsPort ?? 5349;

  // ------------------------------------------------------------------ TURN
  const relayIps = new Map<AddressFamily, string>();
  for (const ip of init.turn?.relayIps ?? init.listen) {
    const f = ipFamily(ip);
    if (f && !relayIps.has(f)) relayIps.set(f, ip);
  }
  const turn = init.turn ? new TurnCore({ ...init.turn, relayFamilies: [...relayIps.keys()], peers: init.turn.peers, logger: log }) : undefined;
  const relayPorts = new RelayPorts(init.turn?.relayPorts);
  const relays = new Map<number, Partial<Record<AddressFamily, UdpSocket>>>();
  // RFC 6062 TCP relays: a listening socket per TCP allocation, and the peer connections.
  const tcpRelays = new Map<number, NetServer>();
  const peerConnections = new Map<number, { socket: NetSocket; data?: NetSocket }>();
  const streamConnections = new Map<string, StunStreamConnection>();

  /** Joins a client's data connection and a peer connection into one raw pipe (RFC 6062 section 5.4). */
  const bindPeerConnection = (connectionId: number, endpointKey: string): void => {
    const peer = peerConnections.get(connectionId);
    const data = streamConnections.get(endpointKey);
    if (!peer || !data) {
      data?.socket.destroy();
      peer?.socket.destroy();
      return;
    }
    data.raw = true;
    peer.data = data.socket;
    const rest = data.framer.takeBuffered();
    if (rest.length > 0) peer.socket.write(rest);
    data.socket.removeAllListeners('data');
    data.socket.on('data', (chunk: Buffer) => {
      if (!peer.socket.write(chunk)) {
        data.socket.pause();
        peer.socket.once('drain', () => data.socket.resume());
      }
    });
    peer.socket.on('data', (chunk: Buffer) => {
      if (!data.socket.write(chunk)) {
        peer.socket.pause();
        data.socket.once('drain', () => peer.socket.resume());
      }
    });
    const end = (): void => {
      peer.socket.destroy();
      data.socket.destroy();
    };
    data.socket.once('close', end);
    peer.socket.resume();
  };

  const trackPeerConnection = (id: number, socket: NetSocket): void => {
    socket.pause();
    peerConnections.set(id, { socket });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      const entry = peerConnections.get(id);
      peerConnections.delete(id);
      entry?.data?.destroy();
      turn?.tcpClosed(id);
    });
  };

  const senders = new Map<string, (bytes: Uint8Array) => void>();
  const udpEndpoints = new Map<string, ClientEndpoint>();
  let nextConnection = 1;
  /** The (cached) 5-tuple of a UDP client; remembers how to answer it. */
  const udpEndpoint = (role: SocketRole, server: TransportAddress, from: TransportAddress, socket: UdpSocket): ClientEndpoint => {
    const key = `udp|${server.address}|${role}|${from.address}|${from.port}`;
    let e = udpEndpoints.get(key);
    if (e === undefined) {
      // Bounded: forget endpoints with no allocation when the cache grows large.
      if (udpEndpoints.size >= 50_000 && turn) {
        for (const k of udpEndpoints.keys()) {
          if (!turn.allocationOf(k)) {
            udpEndpoints.delete(k);
            senders.delete(k);
          }
        }
      }
      e = { key, client: { family: from.family, address: from.address, port: from.port }, server, transport: 'udp' };
      udpEndpoints.set(key, e);
      const port = from.port;
      const address = from.address;
      senders.set(key, (bytes) => socket.send(bytes, port, address));
    }
    return e;
  };

  const flushTurn = (): void => {
    if (!turn) return;
    for (const o of turn.drain()) {
      switch (o.kind) {
        case 'to-client':
          senders.get(o.endpoint.key)?.(o.bytes);
          break;
        case 'to-peer':
          relays.get(o.allocation)?.[o.peer.family]?.send(o.bytes, o.peer.port, o.peer.address);
          break;
        case 'open-relay':
          if (o.transport === 'tcp') void openTcpRelay(o.allocation, o.families[0]!);
          else void openRelay(o.allocation, o.families, o.evenPort, o.reserveNext, o.reservationToken, o.newReservationToken);
          break;
        case 'close-relay': {
          const sockets = relays.get(o.allocation);
          relays.delete(o.allocation);
          for (const sock of Object.values(sockets ?? {})) sock?.close();
          tcpRelays.get(o.allocation)?.close();
          tcpRelays.delete(o.allocation);
          break;
        }
        case 'tcp-connect': {
          const id = o.connectionId;
          const socket = tcpConnect({ host: o.peer.address, port: o.peer.port, localAddress: relayIps.get(o.peer.family) });
          socket.setTimeout(30_000, () => socket.destroy(new Error('timeout')));
          socket.once('connect', () => {
            socket.setTimeout(0);
            trackPeerConnection(id, socket);
            turn!.tcpConnected(id, Date.now());
            flushTurn();
          });
          socket.once('error', () => {
            if (!peerConnections.has(id)) {
              turn!.tcpConnectFailed(id);
              flushTurn();
            }
          });
          break;
        }
        case 'tcp-bind':
          bindPeerConnection(o.connectionId, o.endpoint.key);
          break;
        case 'tcp-close': {
          const entry = peerConnections.get(o.connectionId);
          peerConnections.delete(o.connectionId);
          entry?.socket.destroy();
          entry?.data?.destroy();
          break;
        }
      }
    }
  };

  const openRelay = async (
    id: number,
    families: readonly AddressFamily[],
    even: boolean,
    reserveNext: boolean,
    token: Uint8Array | undefined,
    newToken: Uint8Array | undefined,
  ): Promise<void> => {
    const sockets: Partial<Record<AddressFamily, UdpSocket>> = {};
    relays.set(id, sockets);
    for (const family of families) {
      const ip = relayIps.get(family)!;
      const opened = await relayPorts.open(ip, { even, reserveNext: reserveNext && family === families[0], ...(token ? { token } : {}) });
      if (closed || !relays.has(id)) {
        opened?.socket.close();
        opened?.next?.close();
        return;
      }
      if (!opened) {
        turn!.relayFailed(id, 508);
        flushTurn();
        return;
      }
      if (opened.next && newToken) relayPorts.reserve(newToken, opened.next);
      const socket = opened.socket;
      sockets[family] = socket;
      // Hot path: peer -> client.
      socket.on('message', (msg, rinfo) => {
        turn!.handlePeerData(id, msg, rinfo as TransportAddress, Date.now());
        flushTurn();
      });
      socket.on('error', (e) => log.debug({ err: e.message, allocation: id }, 'relay socket error'));
      const a = socket.address();
      turn!.relayOpened(id, family, { family, address: ip, port: a.port });
    }
    flushTurn();
  };

  // RFC 7983 / RFC 9443: ChannelData starts with 0x40-0x4F (0x40-0x7F with RFC 5766 numbers).
  const channelDataLastByte = turn?.legacyChannelNumbers ? 0x7f : 0x4f;
  const openTcpRelay = async (id: number, family: AddressFamily): Promise<void> => {
    const ip = relayIps.get(family)!;
    const server = await relayPorts.openTcp(ip);
    if (closed || !turn!.allocation(id)) {
      server?.close();
      return;
    }
    if (!server) {
      turn!.relayFailed(id, 508);
      flushTurn();
      return;
    }
    tcpRelays.set(id, server);
    server.on('connection', (socket) => {
      const peer: TransportAddress = {
        family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
        address: socket.remoteAddress ?? '',
        port: socket.remotePort ?? 0,
      };
      const connectionId = turn!.tcpIncoming(id, peer, Date.now());
      if (connectionId === undefined) {
        socket.destroy();
        return;
      }
      trackPeerConnection(connectionId, socket);
      flushTurn();
    });
    turn!.relayOpened(id, family, { family, address: ip, port: (server.address() as { port: number }).port });
    flushTurn();
  };

  const sweepTimer = turn
    ? setInterval(() => {
        turn.sweep(Date.now());
        flushTurn();
      }, 1000)
    : undefined;
  sweepTimer?.unref();

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    if (sweepTimer) clearInterval(sweepTimer);
    for (const sockets of relays.values()) for (const sock of Object.values(sockets)) sock?.close();
    relays.clear();
    for (const server of tcpRelays.values()) server.close();
    tcpRelays.clear();
    for (const c of peerConnections.values()) {
      c.socket.destroy();
      c.data?.destroy();
    }
    peerConnections.clear();
    relayPorts.close();
    governor.closeAll();
    await Promise.all([
      ...udpSockets.map((s) => new Promise<void>((r) => s.close(() => r()))),
      ...streamServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]);
  };

  try {
    const tlsCredentials =
      init.tlsPort !== undefined ? await loadTlsCredentials(init.tls ?? { selfSigned: true, altIps: [...init.listen, ...(init.alternate ?? [])] }) : undefined;
    for (const primary of init.listen) {
      const family = ipFamily(primary)!;
      const alternate = init.alternate?.find((a) => ipFamily(a) === family);
      const { set, sockets, tcpServers } = await bindEndpointSet(init, family, primary, alternate);
      udpSockets.push(...Object.values(sockets));
      streamServers.push(...tcpServers.values());
      endpoints.push(set);
      const responder = new StunResponder({ endpoints: set, software: init.software, rateLimit: init.rateLimit });
      responders.push(responder);

      for (const role of availableRoles(set)) {
        const socket = sockets[role]!;
        listeners.push({ transport: 'udp', role, address: roleAddress(set, role)! });
        const serverAddress = roleAddress(set, role)!;
        // Hot path: no closures or promises per packet beyond this handler, no logging.
        socket.on('message', (msg, rinfo) => {
          const now = Date.now();
          if (turn !== undefined) {
            const first = msg[0] ?? 0xff;
            if (first >= 0x40 && first <= channelDataLastByte) {
              turn.handleChannelData(msg, udpEndpoint(role, serverAddress, rinfo as TransportAddress, socket), now);
              flushTurn();
              return;
            }
            const message = tryDecodeStun(msg);
            if (message !== undefined && message.method !== StunMethod.Binding) {
              turn.handleStun(message, udpEndpoint(role, serverAddress, rinfo as TransportAddress, socket), now);
              flushTurn();
              return;
            }
            if (message !== undefined) {
              const reply = responder.handleMessage(message, rinfo as TransportAddress, role, now, false);
              if (reply !== undefined) sockets[reply.via]!.send(reply.bytes, reply.to.port, reply.to.address);
              return;
            }
          }
          const reply = responder.handleDatagram(msg, rinfo as TransportAddress, role, now);
          if (reply !== undefined) sockets[reply.via]!.send(reply.bytes, reply.to.port, reply.to.address);
        });
        socket.on('error', (e) => log.warn({ err: e.message, role }, 'udp socket error'));
      }

      const streamContext: StunStreamContext = { turn, responder, senders, streamConnections, flushTurn, nextId: () => nextConnection++ };
      const serve = (role: SocketRole) => (s: NetSocket, lease: StreamLease) => serveStunStream(streamContext, s, lease, role, roleAddress(set, role)!);
      for (const [role, server] of tcpServers) {
        governTcpServer(server, governor, serve(role));
        listeners.push({ transport: 'tcp', role, address: roleAddress(set, role)! });
      }
      if (tlsCredentials !== undefined) {
        tlsPort = init.tlsPort ?? 5349;
        for (const [role, ip] of [
          ['PP', primary],
          ['AP', alternate],
        ] as const) {
          if (ip === undefined) continue;
          const server = createGovernedTlsServer(tlsCredentials, governor, serve(role));
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
  // The server's own listeners are never relay peers (its relay IPs stand in for a wildcard listen address).
  turn?.addServiceAddresses(
    listeners.map((l) => l.address),
    [...relayIps.values()],
  );
  for (const l of listeners) log.info({ transport: l.transport, role: l.role, address: formatTransportAddress(l.address) }, 'listening');

  return {
    endpoints,
    listeners,
    turn,
    stats() {
      const total: StunResponderStats & { connections: number; streams: StreamGovernorStats; turn?: TurnStats } = {
        answered: 0,
        errors: 0,
        dropped: 0,
        rateLimited: 0,
        indications: 0,
        connections: governor.stats.open,
        streams: { ...governor.stats },
      };
      for (const r of responders) for (const k of Object.keys(r.stats) as (keyof StunResponderStats)[]) total[k] += r.stats[k];
      if (turn) total.turn = { ...turn.stats };
      return total;
    },
    close,
  };
}
