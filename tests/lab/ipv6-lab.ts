/**
 * A dual-stack pair lab: the two-LAN kernel lab of pair.ts (IPv4 NAT on each router, as the
 * other lab suites use it) plus IPv6 without NAT, the way most homes and mobile networks have
 * it now: global addresses on the LANs and a router that forwards IPv6 through an nftables
 * stateful firewall (replies and related ICMPv6 in, everything new from the WAN dropped).
 *
 * ```
 *                   server ns: bridge inet0 2001:db8:ffff::1/64, 2001:db8:ffff::2/64 (+ IPv4)
 *                     ra0 |                                 | rb0
 *   router A: wan0 2001:db8:ffff::a                 router B: wan0 2001:db8:ffff::b
 *             lan0 2001:db8:a::1/64                           lan0 2001:db8:b::1/64
 *                     |                                       |
 *   client A: eth0 2001:db8:a::2/64                 client B: eth0 2001:db8:b::2/64
 * ```
 *
 * - Every IPv6 address lies in the documentation prefix 2001:db8::/32 (RFC 3849); the IPv4
 *   addresses are pair.ts's. The server routes each LAN's /64 via its router, and each router
 *   the other LAN's via the other router; nothing has a route anywhere else.
 * - A side built with `ipv6: false` keeps IPv6 disabled on its client (an IPv4-only host).
 * - The router's IPv4 NAT recipe (recipes.ts) is loaded as a `table ip natlab`, not `inet`: its
 *   filter rules (`iifname wan0 drop`) would otherwise also drop IPv6, neighbour discovery
 *   included. IPv6 is filtered by `table ip6 fw6` ({@link firewall6Ruleset}), whose drops are
 *   counted in named counters read by {@link firewallCounter}.
 * - Namespaces, processes and cleanup are pair.ts's (openNamespaceSet): removed by destroy(),
 *   by the process 'exit' handler, or by sweepStaleLabs() when the owner died.
 */
import { NAT_SERVER, waitFor } from './ice-lab.js';
import type { LabProcess } from './netns.js';
import type { Behaviour } from './recipes.js';
import { createPairLab, type PairLab, type PairNsRef } from './pair.js';

/** The IPv6 addresses of {@link createDualStackPairLab} (RFC 3849 documentation prefix). */
export const IPV6_ADDRESSES = {
  serverPrimary: '2001:db8:ffff::1',
  serverSecondary: '2001:db8:ffff::2',
  internetPrefix: 64,
  a: { routerWan: '2001:db8:ffff::a', routerLan: '2001:db8:a::1', client: '2001:db8:a::2', lanNet: '2001:db8:a::/64' },
  b: { routerWan: '2001:db8:ffff::b', routerLan: '2001:db8:b::1', client: '2001:db8:b::2', lanNet: '2001:db8:b::/64' },
} as const;

/** Names of the counters of {@link firewall6Ruleset}. */
export type Firewall6Counter = 'inbound_new_dropped' | 'inbound_udp_dropped' | 'inbound_established';

/**
 * The IPv6 stateful firewall of a home router (RFC 6092 section 3.2 in spirit): forward what
 * the LAN sends, let in what belongs to a connection the LAN started (established, related:
 * ICMPv6 errors), drop everything else from the WAN. Neighbour discovery on the router's own
 * interfaces is input, not forward, and stays open. Drops and accepted replies are counted.
 */
export function firewall6Ruleset(lanIf = 'lan0', wanIf = 'wan0'): string {
  const lan = JSON.stringify(lanIf);
  const wan = JSON.stringify(wanIf);
  return [
    'table ip6 fw6 {',
    '  counter inbound_new_dropped { }',
    '  counter inbound_udp_dropped { }',
    '  counter inbound_established { }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    `    iifname ${wan} ct state established,related counter name inbound_established accept`,
    '    ct state established,related accept',
    `    iifname ${lan} oifname ${wan} accept`,
    `    iifname ${wan} meta l4proto udp counter name inbound_udp_dropped`,
    `    iifname ${wan} counter name inbound_new_dropped drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Options of {@link createDualStackPairLab}. */
export interface DualStackPairLabOptions {
  /** IPv4 NAT behaviour of router A (default port-restricted-cone, Linux's masquerade). */
  readonly a?: Behaviour;
  /** IPv4 NAT behaviour of router B (default port-restricted-cone). */
  readonly b?: Behaviour;
  /** Whether client A has IPv6 (default true). */
  readonly ipv6A?: boolean;
  /** Whether client B has IPv6 (default true). */
  readonly ipv6B?: boolean;
}

/** A dual-stack pair lab. */
export interface DualStackPairLab extends PairLab {
  readonly ipv6: {
    readonly server: { readonly primary: string; readonly secondary: string };
    /** Client A's global IPv6 address, or undefined for an IPv4-only client A. */
    readonly a: string | undefined;
    readonly b: string | undefined;
  };
}

const ENABLE_IPV6 = [
  'net.ipv6.conf.all.accept_dad=0',
  'net.ipv6.conf.default.accept_dad=0',
  'net.ipv6.conf.all.disable_ipv6=0',
  'net.ipv6.conf.default.disable_ipv6=0',
];

async function sh(lab: PairLab, ns: PairNsRef, argv: readonly string[], input?: string): Promise<void> {
  await lab.exec(ns, argv, { check: true, timeoutMs: 10_000, ...(input === undefined ? {} : { input }) });
}

/** `ip -batch` lines run in `ns`. */
function ipBatch(lab: PairLab, ns: PairNsRef, lines: readonly string[]): Promise<void> {
  return sh(lab, ns, ['ip', '-batch', '-'], `${lines.join('\n')}\n`);
}

/**
 * Builds a pair lab (pair.ts) and adds IPv6: addresses, routes, forwarding and the stateful
 * firewall on both routers, the IPv4 NAT recipes moved to `table ip`. Throws (after removing
 * what it built) when a step fails.
 */
export async function createDualStackPairLab(options: DualStackPairLabOptions = {}): Promise<DualStackPairLab> {
  const lab = await createPairLab({ a: options.a ?? 'port-restricted-cone', b: options.b ?? 'port-restricted-cone' });
  const V = IPV6_ADDRESSES;
  const v6a = options.ipv6A ?? true;
  const v6b = options.ipv6B ?? true;
  try {
    const enable = (ns: PairNsRef): Promise<void> => sh(lab, ns, ['sysctl', '-q', '-w', ...ENABLE_IPV6]);
    await Promise.all([enable('server'), enable('routerA'), enable('routerB'), ...(v6a ? [enable('clientA')] : []), ...(v6b ? [enable('clientB')] : [])]);
    await ipBatch(lab, 'server', [
      `addr add ${V.serverPrimary}/${V.internetPrefix} dev inet0 nodad`,
      `addr add ${V.serverSecondary}/${V.internetPrefix} dev inet0 nodad`,
      `route add ${V.a.lanNet} via ${V.a.routerWan}`,
      `route add ${V.b.lanNet} via ${V.b.routerWan}`,
    ]);
    for (const [which, router, client, has] of [
      ['a', 'routerA', 'clientA', v6a],
      ['b', 'routerB', 'clientB', v6b],
    ] as const) {
      const s = V[which];
      const other = V[which === 'a' ? 'b' : 'a'];
      await ipBatch(lab, router, [
        `addr add ${s.routerWan}/${V.internetPrefix} dev wan0 nodad`,
        `addr add ${s.routerLan}/64 dev lan0 nodad`,
        `route add ${other.lanNet} via ${other.routerWan}`,
      ]);
      const side = which === 'a' ? lab.a : lab.b;
      const natIp = side.ruleset.replace('table inet natlab {', 'table ip natlab {');
      await sh(lab, router, ['nft', '-f', '-'], `flush ruleset\n${natIp}${firewall6Ruleset()}`);
      await sh(lab, router, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
      if (has) await ipBatch(lab, client, [`addr add ${s.client}/64 dev eth0 nodad`, `route add default via ${s.routerLan}`]);
    }
    return {
      ...lab,
      ipv6: { server: { primary: V.serverPrimary, secondary: V.serverSecondary }, a: v6a ? V.a.client : undefined, b: v6b ? V.b.client : undefined },
    };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

/** The packets counted so far by counter `name` of router `router`'s IPv6 firewall (read with `nft`). */
export async function firewallCounter(lab: PairLab, router: 'routerA' | 'routerB', name: Firewall6Counter): Promise<number> {
  const r = await lab.exec(router, ['nft', 'list', 'counter', 'ip6', 'fw6', name], { check: true });
  const m = /packets (\d+)/.exec(r.stdout);
  if (m === null) throw new Error(`nft printed no packet count for ${name}: ${r.stdout}`);
  return Number(m[1]);
}

/**
 * A UDP probe with node:dgram alone (none of our code): `send ADDR PORT COUNT [FROMPORT [FROMADDR]]` sends COUNT datagrams
 * to [ADDR]:PORT from [FROMADDR]:FROMPORT (default any); `recv PORT MS [ADDR APORT]` binds [::]:PORT, first
 * sends one datagram to [ADDR]:APORT when given (opening the firewall for replies from there),
 * prints each datagram's sender as a JSON line and exits after MS.
 */
export const UDP_PROBE = `
const dgram = require('node:dgram');
const [mode, a, b, c, d, e] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
if (mode === 'recv') {
  s.on('message', (m, r) => console.log(JSON.stringify({ from: r.address, port: r.port, data: m.toString() })));
  s.bind(Number(a), '::', () => {
    console.log(JSON.stringify({ listening: s.address().port }));
    if (c !== undefined) s.send('open', Number(d), c);
    setTimeout(() => process.exit(0), Number(b));
  });
} else {
  s.bind(Number(d ?? 0), e ?? '::', () => {
    let n = Number(c);
    const next = () => { if (n-- <= 0) return setTimeout(() => process.exit(0), 100); s.send('probe', Number(b), a, () => setTimeout(next, 50)); };
    next();
  });
}
`;

/** The rendezvous URL of {@link startNatServer6}: over IPv6. */
export const RENDEZVOUS6 = `ws://[${IPV6_ADDRESSES.serverPrimary}]:8080/`;
/** What {@link startNatServer6}'s rendezvous hands out: STUN and TURN at its IPv6 address. */
export const ICE_URLS6: readonly string[] = [`stun:[${IPV6_ADDRESSES.serverPrimary}]:3478`, `turn:[${IPV6_ADDRESSES.serverPrimary}]:3478`];

/**
 * Starts `nat-server` dual-stack in the lab's server namespace: STUN on both families' two
 * addresses, TURN relaying from 203.0.113.1 and 2001:db8:ffff::1, the rendezvous on
 * [2001:db8:ffff::1]:8080 handing out {@link ICE_URLS6}; resolves once it listens.
 */
export async function startNatServer6(lab: DualStackPairLab, timeoutMs = 20_000): Promise<LabProcess> {
  const V = IPV6_ADDRESSES;
  const server = lab.spawn('server', [
    process.execPath,
    NAT_SERVER,
    ...['--listen', lab.server.primary, '--listen', V.serverPrimary],
    ...['--alternate', lab.server.secondary, '--alternate', V.serverSecondary],
    ...['--relay-ip', lab.server.primary, '--relay-ip', V.serverPrimary],
    ...['--realm', 'lab', '--auth-secret', 'lab-secret'],
    ...['--rendezvous-port', '8080', '--rendezvous-host', V.serverPrimary],
    ...ICE_URLS6.flatMap((u) => ['--rendezvous-ice-url', u]),
    ...['198.18.0.0/15', '203.0.113.0/24', '2001:db8::/32'].flatMap((c) => ['--allow-peer', c]),
    ...['--log-level', 'warn'],
  ]);
  await waitFor(() => /rendezvous ws:/.test(server.output()) || server.hasExited(), timeoutMs, 'nat-server');
  if (server.hasExited()) throw new Error(`nat-server exited:\n${server.output()}`);
  return server;
}

/**
 * A UDP echo with node:dgram alone: `ADDR PORT MS` binds [ADDR]:PORT, sends every datagram back
 * to its sender, prints each sender as a JSON line and exits after MS.
 */
export const UDP_ECHO = `
const dgram = require('node:dgram');
const [addr, port, ms] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
s.on('message', (m, r) => { console.log(JSON.stringify({ from: r.address, port: r.port })); s.send(m, r.port, r.address); });
s.bind(Number(port), addr, () => { console.log(JSON.stringify({ listening: s.address().port })); setTimeout(() => process.exit(0), Number(ms)); });
`;
