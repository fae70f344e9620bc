/**
 * Address families in ICE: which family a candidate's local preference favours, and the bases
 * of relayed candidates (one per relayed address of a dual-stack TURN allocation).
 *
 * RFC 8445 section 5.1.2.1 leaves the local preference to the agent, and RFC 8421 section 4
 * asks a dual-stack agent to prefer IPv6 the way RFC 6724 source address selection does: its
 * policy table gives a global IPv6 address precedence 40 and IPv4 (as `::ffff:0:0/96`) 35, while
 * unique local (fc00::/7), 6to4, Teredo and the deprecated kinds come below IPv4. On a network
 * with IPv6 and a stateful firewall (most homes and mobile networks) an IPv6 host pair needs no
 * NAT binding, so it is the pair to try first.
 */
import type { AddressFamily } from '@nat/protocol';
import { ipFamily, ipToBytes } from '@nat/protocol';
import type { BaseId } from './types.js';

/**
 * RFC 6724 section 2.1 precedence of an address: `::1` 50, any other IPv6 (`::/0`) 40, IPv4
 * (`::ffff:0:0/96`) 35, 6to4 (`2002::/16`) 30, Teredo (`2001::/32`) 5, unique local
 * (`fc00::/7`) 3, IPv4-compatible (`::/96`), site-local (`fec0::/10`) and 6bone (`3ffe::/16`) 1.
 * Undefined for text that is not an IP address.
 */
export function addressPrecedence(ip: string): number | undefined {
  const family = ipFamily(ip);
  if (family === undefined) return undefined;
  if (family === 'IPv4') return 35;
  const b = ipToBytes(ip);
  const zero = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  if (zero(0, 15) && b[15] === 1) return 50;
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return 35;
  if (zero(0, 12)) return 1;
  if (b[0] === 0x20 && b[1] === 0x02) return 30;
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) return 5;
  if ((b[0]! & 0xfe) === 0xfc) return 3;
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 1;
  if (b[0] === 0x3f && b[1] === 0xfe) return 1;
  return 40;
}

/**
 * A global unicast IPv6 address (RFC 6724 precedence 40, not link-local `fe80::/10`): one that
 * needs no NAT binding, but is usually behind a stateful firewall that drops a check until the
 * peer's own check has gone out.
 */
export function isGlobalIPv6(ip: string): boolean {
  if (ipFamily(ip) !== 'IPv6' || addressPrecedence(ip) !== 40) return false;
  const b = ipToBytes(ip);
  return !(b[0] === 0xfe && (b[1]! & 0xc0) === 0x80);
}

/** The base of the relayed candidate of `family` (the IPv4 one keeps the historical id `relay`). */
export function relayBase(family: AddressFamily): BaseId {
  return family === 'IPv6' ? 'relay6' : 'relay';
}

/** True for the base of a relayed candidate ({@link relayBase}). */
export function isRelayBase(base: BaseId): boolean {
  return base === 'relay' || base === 'relay6';
}

/**
 * The local preference of the relayed candidate of `family`: IPv6 above IPv4 (RFC 8421
 * section 4), so that a peer reachable on both is relayed over IPv6, as its host pairs go.
 */
export function relayLocalPreference(family: AddressFamily): number {
  return family === 'IPv6' ? 65535 : 65534;
}
