/**
 * Host addresses to gather host candidates on (RFC 8445 section 5.1.1.1): one UDP socket per
 * usable interface address.
 */
import { networkInterfaces } from 'node:os';
import { canonicalIp, ipFamily } from '@nat/protocol';

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
