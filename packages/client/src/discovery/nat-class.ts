/**
 * The vocabularies of NAT behaviour: the seven classic RFC 3489 classes A-G of the project's
 * seed document, and the RFC 4787 / RFC 5780 mapping and filtering behaviours.
 *
 * @module
 */

/** The classic NAT types (RFC 3489 section 5 and the seed document's A-G). */
export type NatClass = 'open-internet' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric-udp-firewall' | 'symmetric' | 'udp-blocked';

/** The seed document's letter of each classic type. */
export type NatClassLetter = 'A' | 'B' | 'C' | 'D' | 'E' | 'F' | 'G';

/**
 * RFC 4787 mapping and filtering behaviours, as RFC 5780 sections 4.3 and 4.4 measure them.
 * (For a host without NAT the mapping is reported endpoint-independent: its address is kept.)
 */
export type NatBehavior = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

/** One classic type with its letter and meaning. */
export interface NatClassInfo {
  readonly id: NatClass;
  readonly letter: NatClassLetter;
  /** Its name as the seed document and RFC 3489 give it. */
  readonly name: string;
  /** One line: what the type is. */
  readonly meaning: string;
  /** One line: what it means for peer-to-peer connections. */
  readonly reachability: string;
}

/** The seven classic types in the seed document's order, A to G. */
export const NAT_CLASSES: readonly NatClassInfo[] = Object.freeze([
  {
    id: 'open-internet',
    letter: 'A',
    name: 'open internet',
    meaning: 'A public IP address and no firewall: UDP flows freely in both directions.',
    reachability: 'Directly reachable: any peer can connect to the public address, no traversal needed.',
  },
  {
    id: 'full-cone',
    letter: 'B',
    name: 'full cone NAT',
    meaning: 'Each local port has one public port, and anyone may send to it once it is mapped.',
    reachability: 'Reachable: once a local port is mapped, any peer can send to its public address; hole punching always works.',
  },
  {
    id: 'restricted-cone',
    letter: 'C',
    name: 'restricted cone NAT',
    meaning: 'One public port per local port; it admits packets only from IP addresses it has sent to.',
    reachability: "Hole punching works: a peer gets through after this host has sent a packet to the peer's IP address.",
  },
  {
    id: 'port-restricted-cone',
    letter: 'D',
    name: 'port-restricted cone NAT',
    meaning: 'One public port per local port; it admits packets only from the exact IP and port it has sent to.',
    reachability: 'Hole punching works when both sides send at the same time (a rendezvous server coordinates it); fails against a symmetric NAT.',
  },
  {
    id: 'symmetric-udp-firewall',
    letter: 'E',
    name: 'symmetric UDP firewall',
    meaning: 'A public IP address with no NAT, but a firewall admits only packets from IPs and ports this host has sent to.',
    reachability: 'Reachable after coordination: a peer gets through once this host has sent to it first (hole punching), never unsolicited.',
  },
  {
    id: 'symmetric',
    letter: 'F',
    name: 'symmetric NAT',
    meaning: 'Each destination gets a different public port, so the address one server sees is useless to other peers.',
    reachability: 'Hard to reach: hole punching fails against other NATed peers except open or full-cone ones; expect to need a relay (TURN).',
  },
  {
    id: 'udp-blocked',
    letter: 'G',
    name: 'UDP blocked',
    meaning: 'No UDP gets through to the server: a firewall blocks UDP.',
    reachability: 'Unreachable over UDP: peers can only connect through a relay over TCP or TLS (TURN over TCP/TLS).',
  },
]);

const BY_ID = new Map(NAT_CLASSES.map((c) => [c.id, c]));

/** The letter, name, meaning and reachability of a classic type. */
export function natClassInfo(id: NatClass): NatClassInfo {
  return BY_ID.get(id)!;
}

/** The seed document's letter (A-G) of a classic type. */
export function natClassLetter(id: NatClass): NatClassLetter {
  return natClassInfo(id).letter;
}
