import { bytesToIp, ipToBytes } from '../address.js';
import { type Cidr, cidrContains, parseCidr } from './cidr.js';

/**
 * Address ranges a relay refuses as peers by default: relaying to them would let anyone on the
 * internet reach the relay host's own services or its private networks through it (RFC 8656
 * section 21.1.5's "open relay into a private network" concern). IPv4-mapped (::ffff:0:0/96),
 * IPv4-compatible (::/96), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and 6to4 (2002::/16) forms are
 * checked against the IPv4 list too, closing a known class of bypass.
 */
export const DEFAULT_DENIED_PEERS: readonly string[] = [
  '0.0.0.0/8', // "this network", unspecified
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // carrier-grade NAT (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking (RFC 2544)
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and 255.255.255.255 broadcast
  '::/128', // unspecified
  '::1/128', // loopback
  '::ffff:0:0:0/96', // SIIT IPv4-translated (RFC 6145): reaches IPv4 hosts through a translator
  '2001::/32', // Teredo (RFC 4380): tunnels to an IPv4 host
  'fc00::/7', // unique local
  'fec0::/10', // site-local (deprecated by RFC 3879, still routed inside some sites)
  'fe80::/10', // link-local
  'ff00::/8', // multicast
];

/** The address ranges of a relay's peer policy (RFC 8656 section 9: "the server MAY impose restrictions"). */
export interface PeerRangesInit {
  /** Prefixes always allowed, checked first (e.g. a test lab's 127.0.0.0/8). Default none. */
  readonly allow?: readonly string[];
  /** Prefixes refused in addition to the defaults. Default none. */
  readonly deny?: readonly string[];
  /** Refuse the {@link DEFAULT_DENIED_PEERS}. Default true. */
  readonly denyDefaults?: boolean;
}

/** Why a peer was refused, for logs (never shown to the client beyond 403). */
export type PeerVerdict = { readonly allowed: true } | { readonly allowed: false; readonly rule: string };

/** The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64, SIIT, 6to4, Teredo), if any. */
export function embeddedIPv4(b: Uint8Array): Uint8Array | undefined {
  if (b.length !== 16) return undefined;
  const zeros = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible, deprecated)
  if (zeros(0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0 && !zeros(12, 16)))) return b.subarray(12, 16);
  // 64:ff9b::/96 (RFC 6052 well-known NAT64 prefix)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return b.subarray(12, 16);
  // 64:ff9b:1::/48 (RFC 8215 local-use NAT64): the IPv4 address sits in bits 64-95 (RFC 6052 /48 layout)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b[4] === 0 && b[5] === 1) {
    return Uint8Array.of(b[6]!, b[7]!, b[9]!, b[10]!);
  }
  // ::ffff:0:a.b.c.d (SIIT IPv4-translated, RFC 6145)
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return b.subarray(12, 16);
  // 2002:a.b.c.d::/48 (6to4)
  if (b[0] === 0x20 && b[1] === 0x02) return b.subarray(2, 6);
  // 2001:0::/32 (Teredo, RFC 4380): the client's IPv4 address, inverted, in the last 32 bits
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) return b.subarray(12, 16).map((x) => x ^ 0xff);
  return undefined;
}

/** Canonical text of an IP and of the IPv4 address it embeds, if any; [] when not an IP. */
export function ipForms(ip: string): string[] {
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(ip);
  } catch {
    return [];
  }
  const v4 = embeddedIPv4(bytes);
  return v4 === undefined ? [bytesToIp(bytes)] : [bytesToIp(bytes), bytesToIp(v4)];
}

/**
 * Decides whether a relay may talk to a peer IP by its address alone: allow rules win over deny
 * rules, and an IPv6 address that embeds an IPv4 one is checked as both. The relay server adds
 * its own service addresses on top (that part is not address arithmetic). Throws ParseError
 * BAD_SYNTAX for a prefix that does not parse.
 */
export class PeerRanges {
  readonly #allow: Cidr[];
  readonly #deny: Cidr[];

  constructor(init: PeerRangesInit = {}) {
    this.#allow = (init.allow ?? []).map(parseCidr);
    this.#deny = [...(init.denyDefaults === false ? [] : DEFAULT_DENIED_PEERS), ...(init.deny ?? [])].map(parseCidr);
  }

  /** The verdict for `ip`; `rule` names the deny prefix that matched. */
  check(ip: string): PeerVerdict {
    let bytes: Uint8Array;
    try {
      bytes = ipToBytes(ip);
    } catch {
      return { allowed: false, rule: 'not an IP address' };
    }
    const forms = [bytes];
    const v4 = embeddedIPv4(bytes);
    if (v4) forms.push(v4);
    for (const a of this.#allow) if (forms.some((f) => cidrContains(a, f))) return { allowed: true };
    for (const d of this.#deny) if (forms.some((f) => cidrContains(d, f))) return { allowed: false, rule: d.text };
    return { allowed: true };
  }
}
