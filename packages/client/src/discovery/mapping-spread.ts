/**
 * The mapping behaviour without RFC 5780's alternate address: what a server with one public
 * address (no OTHER-ADDRESS) still lets a client see. The client sends Binding requests from one
 * socket to the server's primary address and to whatever other destinations answer Binding: the
 * server's second port, another STUN or TURN server of the configuration. A mapping that changes
 * with the destination port is address-and-port-dependent (a symmetric NAT), which is what birthday
 * punching needs to know; one that changes only with the destination IP is address-dependent.
 *
 * What one IP with two ports cannot see: an address-dependent mapping keeps its port for every port
 * of one IP, so it looks endpoint-independent there. The `reason` says which destinations were
 * compared, and the peer's checks (a peer-reflexive address unlike the server-reflexive one) catch
 * what the probe missed.
 *
 * @module
 */
import { type TransportAddress, sameTransportAddress } from '@nat/protocol';
import type { NatBehavior } from './nat-class.js';

/** One answered Binding request: where it went and the mapped address it reported. */
export interface SpreadObservation {
  readonly to: TransportAddress;
  readonly mapped: TransportAddress;
}

/** What {@link classifyMappingSpread} concluded. */
export interface SpreadVerdict {
  /** Null when no second destination answered. */
  readonly behavior: NatBehavior | null;
  /** One line: which destinations were compared. */
  readonly reason: string;
}

const fmt = (a: TransportAddress): string => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);

/**
 * Classifies the mapping from the first test's observation and those of other destinations (any
 * order; ones equal to the first destination are ignored). A different mapping toward another port
 * of the first IP: address-and-port-dependent. Only toward another IP: address-dependent when
 * another port of the first IP kept the mapping, else address-and-port-dependent (the port's part
 * was not measurable; both are endpoint-dependent, which is what punching acts on). The same
 * mapping everywhere: endpoint-independent.
 */
export function classifyMappingSpread(first: SpreadObservation, others: readonly SpreadObservation[]): SpreadVerdict {
  const rest = others.filter((o) => !sameTransportAddress(o.to, first.to));
  if (rest.length === 0) {
    return { behavior: null, reason: 'the server sent no OTHER-ADDRESS and no second port or server answered' };
  }
  const changed = (o: SpreadObservation): boolean => !sameTransportAddress(o.mapped, first.mapped);
  const sameIp = rest.filter((o) => o.to.address === first.to.address);
  const otherIp = rest.filter((o) => o.to.address !== first.to.address);
  const portChange = sameIp.find(changed);
  if (portChange !== undefined) {
    return {
      behavior: 'address-and-port-dependent',
      reason: `the mapping toward ${fmt(portChange.to)} (${fmt(portChange.mapped)}) differs from the one toward ${fmt(first.to)} (${fmt(first.mapped)}): it depends on the destination port`,
    };
  }
  const ipChange = otherIp.find(changed);
  if (ipChange !== undefined) {
    const why = `the mapping toward ${fmt(ipChange.to)} (${fmt(ipChange.mapped)}) differs from the one toward ${fmt(first.to)} (${fmt(first.mapped)})`;
    return sameIp.length > 0
      ? { behavior: 'address-dependent', reason: `${why}, while another port of ${first.to.address} kept it` }
      : { behavior: 'address-and-port-dependent', reason: `${why}; whether the port alone changes it was not measurable` };
  }
  const compared = rest.map((o) => fmt(o.to)).join(', ');
  return {
    behavior: 'endpoint-independent',
    reason:
      otherIp.length > 0
        ? `the same mapping toward ${fmt(first.to)} and ${compared}`
        : `the same mapping toward ${fmt(first.to)} and ${compared} (another port of one IP: an address-dependent mapping would look the same)`,
  };
}
