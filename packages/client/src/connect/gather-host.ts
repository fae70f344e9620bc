/**
 * Gathering host candidates: which local addresses an ICE connection binds (one udx-native UDP
 * socket each, host-socket.ts), in which order (their rank is their candidates' local
 * preference), and whether loopback ones count.
 */
import { type SignallingIceServer, type TransportAddress, ipFamily } from '@nat/protocol';
import { resolveServer, routeSourceAddress } from '../resolve.js';
import { explicitHostAddresses, hostInterfaceAddresses, rankHostAddresses } from './hosts.js';
import { type DatagramSocket, UdxHostSocket } from './host-socket.js';
import { iceServerRefs } from './servers.js';

/** A bound host socket: its agent base id (`host:IP`), bound address and socket. */
export interface BoundHost {
  readonly base: string;
  readonly address: TransportAddress;
  readonly socket: DatagramSocket;
}

/** Binds a host socket on `ip` (port 0); throws when the address cannot be bound. */
export function bindHost(ip: string, onDatagram: (base: string, socket: DatagramSocket, msg: Buffer, fromIp: string, fromPort: number) => void): BoundHost {
  const family = ipFamily(ip) ?? 'IPv4';
  const base = `host:${ip}`;
  const socket: UdxHostSocket = new UdxHostSocket(ip, (msg, fromIp, fromPort) => onDatagram(base, socket, msg, fromIp, fromPort));
  return { base, address: { family, address: ip, port: socket.port }, socket };
}

/**
 * The addresses to bind, best first: exactly `explicit` (the caller's order) when given, else the
 * interfaces' (loopback ones with `includeLoopback`) ranked by {@link rankHostAddresses} with
 * the source address of the route toward the first server.
 */
export async function hostAddressesToBind(
  explicit: readonly string[] | undefined,
  includeLoopback: boolean,
  iceServers: readonly SignallingIceServer[],
): Promise<string[]> {
  if (explicit !== undefined) return explicitHostAddresses(explicit);
  return rankHostAddresses(hostInterfaceAddresses(includeLoopback), await routeSource(iceServers));
}

/**
 * The local IP the kernel sends from toward the first STUN (else TURN) server, without sending
 * anything ({@link routeSourceAddress}); undefined when there is none or it takes over 200 ms
 * (a DNS name that resolves slowly).
 */
async function routeSource(iceServers: readonly SignallingIceServer[]): Promise<string | undefined> {
  const refs = iceServerRefs(iceServers);
  const server = refs.stun[0]?.server ?? refs.turn[0]?.server;
  if (server === undefined) return undefined;
  const lookup = resolveServer(server).then(({ address }) => routeSourceAddress(address));
  lookup.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, 200, undefined)));
  try {
    return await Promise.race([lookup, late]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
