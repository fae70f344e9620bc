import { ParseError, PeerRanges, type PeerRangesInit, type PeerVerdict, type TransportAddress, ipForms } from '@nat/protocol';
import { ServerError } from '../errors.js';

/**
 * The relay's peer policy (RFC 8656 section 9: "the server MAY impose restrictions"): the
 * address ranges (@nat/protocol's `PeerRanges`: allow, deny, the default-denied ranges) and the
 * server's own service addresses.
 */
export interface PeerPolicyInit extends PeerRangesInit {
  /**
   * The server's own service addresses (STUN/TURN listeners, rendezvous, expose control, admin
   * ports): never relay peers, whatever the allow list says. A wildcard address (0.0.0.0, ::)
   * stands for that port on every IP in `ownIps` and in this list. Relayed addresses (relay
   * ports) are not services: relaying between two allocations of the server keeps working.
   * Default none; the TURN server adds its own listeners.
   */
  readonly services?: readonly TransportAddress[];
  /** The server's own IPs (e.g. its relay IPs), for wildcard `services`. Default none. */
  readonly ownIps?: readonly string[];
}

/**
 * Decides whether the relay may talk to a peer. Allow rules win over deny rules. Throws
 * ServerError BAD_CONFIG when a prefix does not parse.
 */
export class PeerPolicy {
  readonly #ranges: PeerRanges;

  readonly #services = new Set<string>();
  readonly #wildcardPorts = new Set<number>();
  /** Every service port: most peers are on none of them, and are let through after one lookup. */
  readonly #ports = new Set<number>();
  readonly #ownIps = new Set<string>();

  constructor(init: PeerPolicyInit = {}) {
    try {
      this.#ranges = new PeerRanges(init);
    } catch (e) {
      if (e instanceof ParseError) throw new ServerError('BAD_CONFIG', e.message);
      throw e;
    }
    this.addServices(init.services ?? [], init.ownIps ?? []);
  }

  /** Adds service addresses that are never relay peers (and own IPs for wildcard ones). */
  addServices(services: readonly TransportAddress[], ownIps: readonly string[] = []): void {
    for (const ip of ownIps) for (const form of ipForms(ip)) this.#ownIps.add(form);
    for (const s of services) {
      this.#ports.add(s.port);
      const forms = ipForms(s.address);
      if (forms.length === 1 && /^(0\.0\.0\.0|::)$/.test(forms[0]!)) {
        this.#wildcardPorts.add(s.port);
        continue;
      }
      for (const form of forms) {
        this.#services.add(`${form}|${s.port}`);
        this.#ownIps.add(form);
      }
    }
  }

  /** True when `peer` is one of the server's own service addresses (to be refused as a relay peer). */
  isService(peer: TransportAddress): boolean {
    if (!this.#ports.has(peer.port)) return false;
    for (const form of ipForms(peer.address)) {
      if (this.#services.has(`${form}|${peer.port}`)) return true;
      if (this.#wildcardPorts.has(peer.port) && this.#ownIps.has(form)) return true;
    }
    return false;
  }

  /** The verdict for a peer IP by its address ranges. */
  check(ip: string): PeerVerdict {
    return this.#ranges.check(ip);
  }
}
