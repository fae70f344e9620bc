/**
 * NAT behaviours of the lab's router and the nftables recipe that makes each one, plus what
 * independent classifiers are expected to report for it (RFC 3489 classic type and RFC 4787 /
 * RFC 5780 mapping and filtering).
 *
 * Every recipe is one nftables table `inet natlab` loaded into the router namespace with
 * `nft -f`. Each one was checked against Debian's `stun` client and coturn's
 * `turnutils_natdiscovery` by `recipes.test.ts`.
 */

/** A NAT behaviour the lab's router can be given. */
export type Behaviour = 'open' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric' | 'symmetric-udp-firewall' | 'udp-blocked';

/** Every behaviour, in the order of the classic A-G table of DESIGN.md. */
export const BEHAVIOURS: readonly Behaviour[] = [
  'open',
  'full-cone',
  'restricted-cone',
  'port-restricted-cone',
  'symmetric-udp-firewall',
  'symmetric',
  'udp-blocked',
];

/** RFC 4787 section 4.1 mapping behaviour. */
export type MappingBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

/** RFC 4787 section 5 filtering behaviour. */
export type FilteringBehaviour = MappingBehaviour;

/** The RFC 3489 section 10.1 classes, as the classic client names them. */
export type ClassicNatType = 'open' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric' | 'symmetric-udp-firewall' | 'blocked';

/** What a correct classifier says about a behaviour. */
export interface BehaviourProfile {
  /** Classic RFC 3489 class. */
  readonly classic: ClassicNatType;
  /** True when the router translates the client's address. */
  readonly nat: boolean;
  /**
   * Acceptable RFC 4787 mapping verdicts (undefined when UDP cannot reach the server). A
   * symmetric NAT may be reported address-dependent or address-and-port-dependent.
   */
  readonly mapping?: readonly MappingBehaviour[];
  /** RFC 4787 filtering verdict (undefined when UDP cannot reach the server). */
  readonly filtering?: FilteringBehaviour;
}

/** Expected classification of every behaviour (the DESIGN.md A-G table). */
export const BEHAVIOUR_PROFILES: Readonly<Record<Behaviour, BehaviourProfile>> = {
  open: { classic: 'open', nat: false, mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'full-cone': { classic: 'full-cone', nat: true, mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'restricted-cone': { classic: 'restricted-cone', nat: true, mapping: ['endpoint-independent'], filtering: 'address-dependent' },
  'port-restricted-cone': {
    classic: 'port-restricted-cone',
    nat: true,
    mapping: ['endpoint-independent'],
    filtering: 'address-and-port-dependent',
  },
  symmetric: {
    classic: 'symmetric',
    nat: true,
    mapping: ['address-and-port-dependent', 'address-dependent'],
    filtering: 'address-and-port-dependent',
  },
  'symmetric-udp-firewall': {
    classic: 'symmetric-udp-firewall',
    nat: false,
    mapping: ['endpoint-independent'],
    filtering: 'address-and-port-dependent',
  },
  'udp-blocked': { classic: 'blocked', nat: true },
};

/** True for the behaviours where the client owns a public address and nothing is translated. */
export function isPublicBehaviour(b: Behaviour): boolean {
  return b === 'open' || b === 'symmetric-udp-firewall';
}

/** Addresses and knobs a router recipe needs. */
export interface RecipeParams {
  /** Router interface on the internet side (inside the router namespace). */
  readonly wanIf: string;
  /** Router interface on the client's side. */
  readonly lanIf: string;
  /** The router's public (WAN) address: source of every translated packet. */
  readonly publicAddress: string;
  /** The client's address that inbound full/restricted-cone traffic is forwarded to. */
  readonly hostAddress: string;
  /** Lifetime in seconds of the full/restricted-cone filter entries (refreshed by outbound packets). */
  readonly filterTimeoutSeconds: number;
}

/**
 * The nftables ruleset (for `nft -f`) that gives the router `behaviour`.
 *
 * Common to all: unsolicited packets to the router itself from the WAN are dropped without
 * any ICMP answer, as a real NAT does (a rejected probe would otherwise tell the prober that
 * a host is there, and classic STUN clients treat ICMP errors differently from silence).
 */
export function routerRuleset(behaviour: Behaviour, p: RecipeParams): string {
  const wan = JSON.stringify(p.wanIf);
  const lan = JSON.stringify(p.lanIf);
  const sets: string[] = [];
  const forward: string[] = [];
  const prerouting: string[] = [];
  const postrouting: string[] = [];
  let forwardPolicy = 'accept';

  // Inbound forwarding for the NAT behaviours: only replies and what prerouting dnat'ed.
  const natForwardFilter = [`iifname ${wan} ct state established,related accept`, `iifname ${wan} ct status dnat accept`, `iifname ${wan} drop`];
  const snat = (extra: string): string => `oifname ${wan} snat ip to ${p.publicAddress}${extra}`;

  switch (behaviour) {
    case 'open':
      // No translation, no filtering: the client's public address is routed through.
      break;
    case 'full-cone':
      // EIM comes from snat keeping the source port while the tuple is unique; EIF from a
      // dynamic set of the client's source ports (filled on the way out) and a dnat in
      // prerouting that lets anyone reach a port the client has sent from.
      sets.push(`set eim_ports { type inet_service; flags dynamic,timeout; timeout ${p.filterTimeoutSeconds}s; }`);
      forward.push(`iifname ${lan} oifname ${wan} meta l4proto udp update @eim_ports { udp sport }`);
      forward.push(...natForwardFilter);
      prerouting.push(`iifname ${wan} ip daddr ${p.publicAddress} udp dport @eim_ports dnat ip to ${p.hostAddress}`);
      postrouting.push(snat(''));
      break;
    case 'restricted-cone':
      // As full cone, but the set remembers (remote address, client port): any port of an
      // address the client has sent to may come in (ADF).
      sets.push(`set adf_allow { type ipv4_addr . inet_service; flags dynamic,timeout; timeout ${p.filterTimeoutSeconds}s; }`);
      forward.push(`iifname ${lan} oifname ${wan} meta l4proto udp update @adf_allow { ip daddr . udp sport }`);
      forward.push(...natForwardFilter);
      prerouting.push(`iifname ${wan} ip daddr ${p.publicAddress} ip saddr . udp dport @adf_allow dnat ip to ${p.hostAddress}`);
      postrouting.push(snat(''));
      break;
    case 'port-restricted-cone':
      // Linux's default: snat keeps the port when free (EIM) and conntrack lets in replies
      // only (APDF).
      forward.push(...natForwardFilter);
      postrouting.push(snat(''));
      break;
    case 'symmetric':
      // A fresh random port for every new 5-tuple (APDM); conntrack filters (APDF).
      forward.push(...natForwardFilter);
      postrouting.push(snat(' fully-random'));
      break;
    case 'symmetric-udp-firewall':
      // No translation (the client owns a public address); only replies come in.
      forwardPolicy = 'drop';
      forward.push('ct state established,related accept', `iifname ${lan} oifname ${wan} accept`);
      break;
    case 'udp-blocked':
      // Every UDP datagram dies silently in both directions; TCP is still translated.
      forward.push('meta l4proto udp drop', ...natForwardFilter);
      postrouting.push(snat(''));
      break;
  }

  const chain = (name: string, head: string, rules: readonly string[]): string =>
    [`  chain ${name} {`, `    ${head}`, ...rules.map((r) => `    ${r}`), '  }'].join('\n');
  return [
    'table inet natlab {',
    ...sets.map((s) => `  ${s}`),
    chain('input', 'type filter hook input priority filter; policy accept;', [`iifname ${wan} ct state established,related accept`, `iifname ${wan} drop`]),
    chain('forward', `type filter hook forward priority filter; policy ${forwardPolicy};`, forward),
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', prerouting),
    chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting),
    '}',
    '',
  ].join('\n');
}
