/**
 * Binding the sockets of one address family's RFC 5780 endpoint set: UDP on the primary and
 * alternate IP and port, and TCP listeners on the same addresses.
 */
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { type Server as NetServer, createServer as createTcpServer } from 'node:net';
import { type AddressFamily, formatTransportAddress, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import { type EndpointSet, type SocketRole, availableRoles, roleAddress } from '../stun/endpoints.js';
import { literalLookup } from '../udp-lookup.js';

/** The UDP sockets of one endpoint set, by role. */
export type UdpSockets = Partial<Record<SocketRole, UdpSocket>>;

/** Which ports to bind: see {@link bindEndpointSet}. */
export interface EndpointPorts {
  /** Primary port. Default 3478; 0 picks a free one. */
  readonly port?: number;
  /** Alternate port. Default 3479, or a free one when `port` is 0; 0 picks a free one; null: none. */
  readonly altPort?: number | null;
  /** Also listen on TCP. Default true. */
  readonly tcp?: boolean;
  /**
   * In a node:cluster worker, share each socket and listener with the other workers (bound once,
   * by the primary: UDP datagrams go to whichever worker reads first, TCP connections are handed
   * out round robin) instead of binding it exclusively. Default false.
   */
  readonly clusterShared?: boolean;
}

/** Binds a UDP socket with large buffers (the kernel default drops bursts under load). */
export function bindUdp(ip: string, port: number, exclusive = true): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const family = ipFamily(ip);
    const socket = createSocket({
      type: family === 'IPv6' ? 'udp6' : 'udp4',
      ipv6Only: family === 'IPv6',
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
      lookup: literalLookup,
    });
    const onError = (e: Error): void => {
      socket.close();
      const where = formatTransportAddress({ family: family ?? 'IPv4', address: ip, port });
      reject(new ServerError('BIND_FAILED', `cannot listen on UDP ${where}: ${e.message}`, { cause: e }));
    };
    socket.once('error', onError);
    socket.bind({ address: ip, port, exclusive }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Listens on a stream (TCP or TLS) server; `what` names it in the error. */
export function listenStream(server: NetServer, ip: string, port: number, what: string, exclusive = true): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new ServerError('BIND_FAILED', `cannot listen on ${what} ${ip} port ${port}: ${e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen({ host: ip, port, ipv6Only: ipFamily(ip) === 'IPv6', exclusive }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** How often {@link bindEndpointSet} tries again with new system-chosen ports. */
const PORT_PICK_TRIES = 8;

/** One family's bound endpoint set. */
export interface BoundEndpointSet {
  readonly set: EndpointSet;
  readonly sockets: UdpSockets;
  readonly tcpServers: Map<SocketRole, NetServer>;
}

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
export async function bindEndpointSet(ports: EndpointPorts, family: AddressFamily, primary: string, alternate: string | undefined): Promise<BoundEndpointSet> {
  const chosenPort = ports.port ?? 3478;
  const chosenAlt = ports.altPort === null ? null : (ports.altPort ?? (chosenPort === 0 ? 0 : 3479));
  const systemPicked = chosenPort === 0 || chosenAlt === 0;
  const exclusive = ports.clusterShared !== true;
  for (let attempt = 1; ; attempt++) {
    const sockets: UdpSockets = {};
    const tcpServers = new Map<SocketRole, NetServer>();
    try {
      sockets.PP = await bindUdp(primary, chosenPort, exclusive);
      const port = sockets.PP.address().port;
      let altPort: number | undefined;
      if (chosenAlt !== null) {
        sockets.PA = await bindUdp(primary, chosenAlt, exclusive);
        altPort = sockets.PA.address().port;
      }
      const set: EndpointSet = { family, primary, alternate, port, altPort };
      if (alternate !== undefined) {
        sockets.AP = await bindUdp(alternate, port, exclusive);
        if (altPort !== undefined) sockets.AA = await bindUdp(alternate, altPort, exclusive);
      }
      if (ports.tcp !== false) {
        for (const role of availableRoles(set)) {
          const addr = roleAddress(set, role)!;
          const server = createTcpServer();
          tcpServers.set(role, server);
          await listenStream(server, addr.address, addr.port, 'TCP', exclusive);
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
