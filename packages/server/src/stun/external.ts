/**
 * Advertised (external) addresses: on a cloud VM the server holds a private address and the
 * provider maps a public one to it 1:1 (coturn's `external-ip PUBLIC/PRIVATE`). Sockets stay
 * bound to the private address; every address told to a client (XOR-RELAYED-ADDRESS,
 * RESPONSE-ORIGIN, OTHER-ADDRESS) carries the public one, with the same port.
 */
import { type TransportAddress, canonicalIp, ipFamily } from '@nat/protocol';
import { ServerError } from '../errors.js';
import type { EndpointSet } from './endpoints.js';

/** One 1:1 mapping: clients reach `private` (an address the server binds) at `public`. */
export interface ExternalAddress {
  /** The address clients see and send to (the provider's public address). */
  readonly public: string;
  /** The address the server binds (a listen, alternate or relay IP of the same family). */
  readonly private: string;
}

/** Private IP -> public IP (both canonical). Empty when no mapping is configured. */
export class ExternalAddresses {
  readonly #toPublic = new Map<string, string>();

  /**
   * Checks each mapping: both sides IP addresses of one family, `private` one of `own` (the
   * server's listen, alternate and relay IPs), no private address mapped twice (one public
   * address may stand for several private ones, e.g. a listen and a relay IP).
   * Throws ServerError BAD_CONFIG naming the mapping otherwise.
   */
  constructor(external: readonly ExternalAddress[] = [], own: readonly string[] = []) {
    const owned = new Set(own.filter((ip) => ipFamily(ip) !== undefined).map(canonicalIp));
    for (const m of external) {
      const label = `external: ${m.public}/${m.private}`;
      const pf = ipFamily(m.public);
      const qf = ipFamily(m.private);
      if (pf === undefined) throw new ServerError('BAD_CONFIG', `${label}: ${JSON.stringify(m.public)} is not an IP address`);
      if (qf === undefined) throw new ServerError('BAD_CONFIG', `${label}: ${JSON.stringify(m.private)} is not an IP address`);
      if (pf !== qf) throw new ServerError('BAD_CONFIG', `${label}: the public address is ${pf} and the private one ${qf}; map addresses of one family`);
      const pub = canonicalIp(m.public);
      const priv = canonicalIp(m.private);
      if (!owned.has(priv)) {
        throw new ServerError(
          'BAD_CONFIG',
          `${label}: ${m.private} is not an address this server binds (its listen, alternate and relay IPs: ${own.join(', ')})`,
        );
      }
      if (this.#toPublic.has(priv)) throw new ServerError('BAD_CONFIG', `${label}: ${m.private} is mapped twice`);
      this.#toPublic.set(priv, pub);
    }
  }

  /** True when at least one mapping is configured. */
  get size(): number {
    return this.#toPublic.size;
  }

  /** The public IP of a bound IP, or the IP itself when it has none. */
  publicIp(ip: string): string {
    return this.#toPublic.size === 0 ? ip : (this.#toPublic.get(canonicalSafe(ip)) ?? ip);
  }

  /** The address a client is told for a bound address: same port, the public IP when mapped. */
  advertise(a: TransportAddress): TransportAddress {
    const ip = this.publicIp(a.address);
    return ip === a.address ? a : { family: a.family, address: ip, port: a.port };
  }

  /** The endpoint set as clients see it (public primary and alternate IPs, same ports). */
  advertiseSet(set: EndpointSet): EndpointSet {
    if (this.#toPublic.size === 0) return set;
    const alternate = set.alternate === undefined ? undefined : this.publicIp(set.alternate);
    return { ...set, primary: this.publicIp(set.primary), ...(alternate === undefined ? {} : { alternate }) };
  }

  /** Every public IP. */
  publicIps(): string[] {
    return [...new Set(this.#toPublic.values())];
  }
}

function canonicalSafe(ip: string): string {
  try {
    return canonicalIp(ip);
  } catch {
    return ip;
  }
}
