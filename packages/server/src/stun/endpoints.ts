import type { AddressFamily, TransportAddress } from '@nat/protocol';

/**
 * The four UDP sockets of an RFC 5780 server in one address family, named by which IP
 * (Primary/Alternate) and which port (Primary/Alternate) they use: PP, PA, AP, AA.
 */
export type SocketRole = 'PP' | 'PA' | 'AP' | 'AA';

export const SOCKET_ROLES: readonly SocketRole[] = ['PP', 'PA', 'AP', 'AA'];

/** Addresses of one family's server: a primary IP, optionally an alternate IP, and two ports. */
export interface EndpointSet {
  readonly family: AddressFamily;
  readonly primary: string;
  /** The second IP; without it the server cannot answer change-IP requests. */
  readonly alternate?: string;
  readonly port: number;
  /** The second port; without it the server cannot answer change-port requests. */
  readonly altPort?: number;
}

/** The transport address a role stands for, or undefined when the set lacks that IP or port. */
export function roleAddress(set: EndpointSet, role: SocketRole): TransportAddress | undefined {
  const ip = role[0] === 'P' ? set.primary : set.alternate;
  const port = role[1] === 'P' ? set.port : set.altPort;
  if (ip === undefined || port === undefined) return undefined;
  return { family: set.family, address: ip, port };
}

/** The role reached from `role` by changing the IP and/or the port. */
export function changeRole(role: SocketRole, changeIp: boolean, changePort: boolean): SocketRole {
  const ip = changeIp ? (role[0] === 'P' ? 'A' : 'P') : role[0];
  const port = changePort ? (role[1] === 'P' ? 'A' : 'P') : role[1];
  return `${ip}${port}` as SocketRole;
}

/** Roles the set can serve: all four with both an alternate IP and port, fewer otherwise. */
export function availableRoles(set: EndpointSet): SocketRole[] {
  return SOCKET_ROLES.filter((r) => roleAddress(set, r) !== undefined);
}
