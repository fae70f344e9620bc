/**
 * Host addresses to gather host candidates on (RFC 8445 section 5.1.1.1): one UDP socket per
 * usable interface address.
 */
import { networkInterfaces } from 'node:os';
import { canonicalIp, ipFamily, ipToBytes } from '@nat/protocol';
import { isPublicIPv4 } from '../ice/birthday.js';
import { addressPrecedence } from '../ice/family.js';

/**
 * The addresses of this host's interfaces that make useful host candidates: IPv4 and IPv6,
 * without IPv6 link-local addresses (they need a scope id no peer can use) and, unless
 * `includeLoopback`, without loopback (internal) ones.
 */
export function hostInterfaceAddresses(includeLoopback = false): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal && !includeLoopback) continue;
      if (a.family === 'IPv6' && (a.scopeid ?? 0) !== 0) continue;
      const ip = canonicalIp(a.address);
      if (ip.startsWith('fe80:')) continue;
      if (!out.includes(ip)) out.push(ip);
    }
  }
  return out;
}

/**
 * Checks and canonicalises explicitly given host addresses.
 * @throws RangeError for a value that is not an IP address
 */
export function explicitHostAddresses(addresses: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of addresses) {
    if (ipFamily(a) === undefined) throw new RangeError(`host address ${JSON.stringify(a)} is not an IP address`);
    const ip = canonicalIp(a);
    if (!out.includes(ip)) out.push(ip);
  }
  return out;
}

/** An address the internet can reach: IPv4 outside the RFC 6890 special ranges, IPv6 outside loopback, link-local (fe80::/10), unique local (fc00::/7) and IPv4-mapped. */
export function isPublicAddress(ip: string): boolean {
  if (ipFamily(ip) === 'IPv4') return isPublicIPv4(ip);
  const b = ipToBytes(ip);
  if (b.length !== 16) return false;
  const zeroPrefix = b.subarray(0, 10).every((x) => x === 0);
  if (zeroPrefix) return false; // ::, ::1, ::ffff:a.b.c.d
  return !((b[0]! & 0xfe) === 0xfc || (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80));
}

/**
 * The host addresses in the order of their local preference, highest first (RFC 8445 section
 * 5.1.2.1: unique per candidate type; a multihomed agent SHOULD follow RFC 8421). First the
 * address the kernel sends from toward the STUN/rendezvous server (`routeSource`: RFC 6724 source
 * address selection, so with no NAT in between it is the address the server saw us from), then
 * addresses the internet can reach ({@link isPublicAddress}), then private ones; interface order
 * within each. The local preference orders the checks (RFC 8445 section 6.1.2.3) and the
 * nomination waits for pending pairs of higher priority, so a private address first (as
 * `os.networkInterfaces()` lists a host with a LAN and a public address) makes every peer spend
 * its first checks on a LAN it cannot reach. Among the addresses of the first two kinds, the
 * family goes by RFC 6724 precedence ({@link addressPrecedence}), as RFC 8421 section 4 asks:
 * a global IPv6 address (no NAT, at most a stateful firewall that simultaneous checks open)
 * before IPv4, even before an IPv4 route source.
 */
export function rankHostAddresses(addresses: readonly string[], routeSource: string | undefined): string[] {
  const reachable = (ip: string): boolean => ip === routeSource || isPublicAddress(ip);
  // sort keys, compared in order: reachable first, then higher precedence, then the route source, then interface order
  const key = (ip: string, i: number): number[] => (reachable(ip) ? [0, -(addressPrecedence(ip) ?? 0), ip === routeSource ? 0 : 1, i] : [1, 0, 0, i]);
  const compare = (x: readonly number[], y: readonly number[]): number => {
    for (const [j, v] of x.entries()) if (v !== y[j]) return v - y[j]!;
    return 0;
  };
  return addresses
    .map((ip, i) => ({ ip, k: key(ip, i) }))
    .sort((x, y) => compare(x.k, y.k))
    .map((x) => x.ip);
}
