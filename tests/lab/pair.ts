/**
 * A two-LAN real-kernel NAT lab: one server host on the "internet" segment and two NAT routers
 * of given behaviours, each with one client behind it, for peer-to-peer (ICE) tests.
 *
 * ```
 *                        server ns: bridge inet0 203.0.113.1/24, 203.0.113.2/24
 *                          ra0 |                                  | rb0
 *   router A ns: wan0 203.0.113.254/24            router B ns: wan0 203.0.113.253/24
 *                lan0 198.18.1.1/24                            lan0 198.19.1.1/24
 *                     |                                             |
 *   client A ns: eth0 198.18.1.2/24               client B ns: eth0 198.19.1.2/24
 * ```
 *
 * - Both LANs lie inside 198.18.0.0/15 (RFC 2544); the internet is 203.0.113.0/24 (RFC 5737).
 * - For 'open' and 'symmetric-udp-firewall' the client also owns a public address, as in
 *   {@link createLab}: side A 198.51.100.2/28 (gateway .1), side B 198.51.100.18/28 (gateway
 *   .17); the server and the other router route that /28 via the router's WAN address.
 * - Each router gets the nftables recipe of its behaviour from recipes.ts.
 * - With `carrierA`, router A sits behind a carrier-grade NAT (namespace `-ga`): the CGN owns
 *   203.0.113.254 on the internet segment and 100.64.1.1/24 (RFC 6598 shared address space) toward
 *   router A (wan0 100.64.1.2, default route via the CGN). The CGN is a port-restricted cone
 *   (endpoint-independent mapping, as RFC 6888 requires of a CGN; address-and-port-dependent
 *   filtering), so A's home NAT and the CGN together behave as a port-restricted cone (or stricter:
 *   symmetric stays symmetric). A public behaviour's /28 lies behind the CGN too and is translated by it.
 * - Namespaces are named `natlab-<pid>-p<n><random>-{s,ra,ca,rb,cb}`, so `sweepStaleLabs()`
 *   removes them when their owner died; `destroy()` (idempotent) and the process 'exit' handler
 *   of netns.ts remove them otherwise: the namespaces, processes and cleanup are those of
 *   {@link openNamespaceSet}.
 */
import { randomBytes } from 'node:crypto';
import { isPublicBehaviour, routerRuleset, type Behaviour } from './recipes.js';
import { LAB_PREFIX, openNamespaceSet, veth, type ExecOptions, type ExecResult, type LabProcess } from './netns.js';

/** One side (router plus client) of a pair lab. */
export interface PairSide {
  readonly behaviour: Behaviour;
  readonly router: { readonly ns: string; readonly wan: string; readonly lan: string };
  readonly client: {
    readonly ns: string;
    /** The address its packets leave with (the public one for public behaviours). */
    readonly address: string;
    /** Its private LAN address. */
    readonly lanAddress: string;
  };
  /** The IP the internet sees the client's packets come from. */
  readonly publicAddress: string;
  /** The router's nftables ruleset. */
  readonly ruleset: string;
}

/** Role names of the pair lab's namespaces. */
export type PairNsRef = 'server' | 'routerA' | 'clientA' | 'routerB' | 'clientB';
/** Namespaces a lab may have beside those of {@link PairNsRef}: the carrier NAT of side A ({@link PairLabOptions.carrierA}). */
export type PairExtraNsRef = 'carrierA';
type NsNames = Record<PairNsRef | PairExtraNsRef, string>;

/** A built two-LAN lab. */
export interface PairLab {
  readonly id: string;
  readonly server: { readonly ns: string; readonly primary: string; readonly secondary: string };
  readonly a: PairSide;
  readonly b: PairSide;
  /** Whether side A is behind the carrier NAT ({@link PairLabOptions.carrierA}). */
  readonly carrierA: boolean;
  readonly namespaces: readonly string[];
  readonly tmpDir: string;
  /** Runs `ip netns exec NS argv...` with a timeout. */
  exec(ns: PairNsRef, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a daemon; killed by stop(), destroy(), or when this process dies. */
  spawn(ns: PairNsRef, argv: readonly string[]): LabProcess;
  /** Kills the lab's processes and deletes its namespaces; safe to call more than once. */
  destroy(): Promise<void>;
}

/** Options of {@link createPairLab}. */
export interface PairLabOptions {
  readonly a: Behaviour;
  readonly b: Behaviour;
  /** Router A behind a carrier-grade NAT (see the module comment). Default false. */
  readonly carrierA?: boolean;
  /** Timeout of each setup command, in ms (default 10000). */
  readonly setupTimeoutMs?: number;
}

/** The pair lab's fixed addresses. */
export const PAIR_ADDRESSES = {
  serverPrimary: '203.0.113.1',
  serverSecondary: '203.0.113.2',
  a: {
    routerWan: '203.0.113.254',
    routerLan: '198.18.1.1',
    clientLan: '198.18.1.2',
    lanPrefix: 24,
    routerPublicLan: '198.51.100.1',
    clientPublic: '198.51.100.2',
    publicNet: '198.51.100.0/28',
  },
  b: {
    routerWan: '203.0.113.253',
    routerLan: '198.19.1.1',
    clientLan: '198.19.1.2',
    lanPrefix: 24,
    routerPublicLan: '198.51.100.17',
    clientPublic: '198.51.100.18',
    publicNet: '198.51.100.16/28',
  },
} as const;

/** The carrier NAT's addresses (side A only): its inside segment toward router A. */
export const CARRIER_ADDRESSES = { cgnLan: '100.64.1.1', routerWan: '100.64.1.2', prefix: 24 } as const;

/** The carrier NAT's ruleset: a port-restricted cone translating to side A's public address. */
export function carrierRuleset(): string {
  return routerRuleset('port-restricted-cone', {
    wanIf: 'wan0',
    lanIf: 'lan0',
    publicAddress: PAIR_ADDRESSES.a.routerWan,
    hostAddress: CARRIER_ADDRESSES.routerWan,
    filterTimeoutSeconds: 120,
  });
}

let counter = 0;

/** What {@link reconfigurePairSide} needs of a lab {@link createPairLab} built. */
const internals = new WeakMap<PairLab, { names: NsNames; set: ReturnType<typeof openNamespaceSet>; carrier: boolean }>();

/** The side of behaviour `behaviour` (`which` of the lab `names`), behind the carrier NAT when `carrier`. */
function makeSide(which: 'a' | 'b', behaviour: Behaviour, names: NsNames, carrier = false): PairSide & { pub: boolean } {
  const s = PAIR_ADDRESSES[which];
  const pub = isPublicBehaviour(behaviour);
  return {
    behaviour,
    pub,
    router: { ns: which === 'a' ? names.routerA : names.routerB, wan: s.routerWan, lan: s.routerLan },
    client: { ns: which === 'a' ? names.clientA : names.clientB, address: pub ? s.clientPublic : s.clientLan, lanAddress: s.clientLan },
    publicAddress: pub && !carrier ? s.clientPublic : s.routerWan,
    ruleset: routerRuleset(behaviour, {
      wanIf: 'wan0',
      lanIf: 'lan0',
      publicAddress: carrier ? CARRIER_ADDRESSES.routerWan : s.routerWan,
      hostAddress: s.clientLan,
      filterTimeoutSeconds: 120,
    }),
  };
}

/**
 * Builds a two-LAN lab with router A of behaviour `a` and router B of behaviour `b`. Throws
 * (after removing what it had built) when a step fails.
 */
export async function createPairLab(options: PairLabOptions): Promise<PairLab> {
  const setupTimeout = options.setupTimeoutMs ?? 10_000;
  counter += 1;
  const id = `${LAB_PREFIX}${process.pid}-p${counter}${randomBytes(2).toString('hex')}`;
  const names: NsNames = {
    server: `${id}-s`,
    routerA: `${id}-ra`,
    clientA: `${id}-ca`,
    routerB: `${id}-rb`,
    clientB: `${id}-cb`,
    carrierA: `${id}-ga`,
  };
  const carrier = options.carrierA === true;
  const set = openNamespaceSet(id, { label: 'pair lab', setupTimeoutMs: setupTimeout });
  const { must, batch } = set;

  const A = PAIR_ADDRESSES;
  const side = (which: 'a' | 'b', behaviour: Behaviour): PairSide & { pub: boolean } => makeSide(which, behaviour, names, which === 'a' && carrier);
  const sa = side('a', options.a);
  const sb = side('b', options.b);

  const lab: PairLab = {
    id,
    server: { ns: names.server, primary: A.serverPrimary, secondary: A.serverSecondary },
    a: sa,
    b: sb,
    carrierA: carrier,
    namespaces: Object.values(names).filter((n) => carrier || n !== names.carrierA),
    tmpDir: set.tmpDir,
    exec: (ref, argv, opts) => set.exec(names[ref], argv, opts),
    spawn: (ref, argv) => set.spawn(names[ref], argv),
    destroy: () => set.destroy(),
  };

  try {
    await set.build(lab.namespaces, [
      ...(carrier
        ? [veth('ga0', names.server, 'wan0', names.carrierA), veth('lan0', names.carrierA, 'wan0', names.routerA)]
        : [veth('ra0', names.server, 'wan0', names.routerA)]),
      veth('rb0', names.server, 'wan0', names.routerB),
      veth('lan0', names.routerA, 'eth0', names.clientA),
      veth('lan0', names.routerB, 'eth0', names.clientB),
    ]);
    const routerLines = (s: typeof sa, addr: (typeof A)['a' | 'b'], other: typeof sb, otherAddr: (typeof A)['a' | 'b'], behindCarrier = false): string[] => [
      'link set lo up',
      behindCarrier ? `addr add ${CARRIER_ADDRESSES.routerWan}/${CARRIER_ADDRESSES.prefix} dev wan0` : `addr add ${addr.routerWan}/24 dev wan0`,
      `addr add ${addr.routerLan}/${addr.lanPrefix} dev lan0`,
      ...(s.pub ? [`addr add ${addr.routerPublicLan}/28 dev lan0`] : []),
      'link set wan0 up',
      'link set lan0 up',
      // The other side's public client subnet lies behind the other router.
      ...(behindCarrier
        ? [`route add default via ${CARRIER_ADDRESSES.cgnLan}`]
        : other.pub
          ? [`route add ${otherAddr.publicNet} via ${otherAddr.routerWan}`]
          : []),
    ];
    const clientLines = (s: typeof sa, addr: (typeof A)['a' | 'b']): string[] => [
      'link set lo up',
      `addr add ${addr.clientLan}/${addr.lanPrefix} dev eth0`,
      ...(s.pub ? [`addr add ${addr.clientPublic}/28 dev eth0`] : []),
      'link set eth0 up',
      s.pub ? `route add default via ${addr.routerPublicLan} src ${addr.clientPublic}` : `route add default via ${addr.routerLan}`,
    ];
    await Promise.all([
      batch(names.server, [
        'link set lo up',
        'link add inet0 type bridge',
        `link set ${carrier ? 'ga0' : 'ra0'} master inet0`,
        'link set rb0 master inet0',
        `addr add ${A.serverPrimary}/24 dev inet0`,
        `addr add ${A.serverSecondary}/24 dev inet0`,
        `link set ${carrier ? 'ga0' : 'ra0'} up`,
        'link set rb0 up',
        'link set inet0 up',
        ...(sa.pub && !carrier ? [`route add ${A.a.publicNet} via ${A.a.routerWan}`] : []),
        ...(sb.pub ? [`route add ${A.b.publicNet} via ${A.b.routerWan}`] : []),
      ]),
      batch(names.routerA, routerLines(sa, A.a, sb, A.b, carrier)),
      batch(names.routerB, routerLines(sb, A.b, sa, A.a)),
      ...(carrier ? [batch(names.carrierA, carrierLines(sb.pub))] : []),
      batch(names.clientA, clientLines(sa, A.a)),
      batch(names.clientB, clientLines(sb, A.b)),
    ]);
    for (const [ns, ruleset] of [
      [names.routerA, sa.ruleset],
      [names.routerB, sb.ruleset],
      ...(carrier ? [[names.carrierA, carrierRuleset()] as const] : []),
    ] as const) {
      await must(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], ruleset);
      await must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    internals.set(lab, { names, set, carrier });
    return lab;
  } catch (e) {
    await set.destroy();
    throw e;
  }
}

/** The carrier NAT's interfaces and routes: side A's LAN and public /28 behind router A, side B's public /28 behind router B. */
function carrierLines(bPublic: boolean): string[] {
  const A = PAIR_ADDRESSES;
  return [
    'link set lo up',
    `addr add ${A.a.routerWan}/24 dev wan0`,
    `addr add ${CARRIER_ADDRESSES.cgnLan}/${CARRIER_ADDRESSES.prefix} dev lan0`,
    'link set wan0 up',
    'link set lan0 up',
    `route add ${A.a.publicNet} via ${CARRIER_ADDRESSES.routerWan}`,
    ...(bPublic ? [`route add ${A.b.publicNet} via ${A.b.routerWan}`] : []),
  ];
}

/**
 * Adds random loss of `percent`% of the UDP datagrams a router forwards (both directions), with
 * an nftables numgen rule at the head of the recipe's forward chain (this kernel has no netem).
 */
export async function injectForwardLoss(lab: PairLab, router: 'routerA' | 'routerB', percent: number): Promise<void> {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new RangeError(`loss percent ${percent}`);
  await lab.exec(router, ['nft', `insert rule inet natlab forward meta l4proto udp numgen random mod 100 < ${percent} drop`], {
    check: true,
  });
}

/**
 * Gives side `which` of a built lab a new behaviour in place, without rebuilding namespaces:
 * its router's ruleset (and any rule added since, such as loss) is replaced and its connection
 * tracking flushed (no mapping or filter state survives), the client's public address and
 * routes follow the behaviour, and the server and the other router route the side's public
 * subnet as {@link createPairLab} would. The other side keeps its state. Returns the lab with
 * the new side; stop the side's processes before (their sockets would be behind the old NAT).
 */
export async function reconfigurePairSide(lab: PairLab, which: 'a' | 'b', behaviour: Behaviour): Promise<PairLab> {
  const inner = internals.get(lab);
  if (inner === undefined) throw new Error('reconfigurePairSide needs a lab made by createPairLab');
  const { names, set } = inner;
  const addr = PAIR_ADDRESSES[which];
  const carrier = which === 'a' && inner.carrier;
  const side = makeSide(which, behaviour, names, carrier);
  const router = which === 'a' ? names.routerA : names.routerB;
  const client = which === 'a' ? names.clientA : names.clientB;
  const otherRouter = which === 'a' ? names.routerB : names.routerA;
  // Undo what the old behaviour added (a missing route is not an error: -force goes on).
  const undo = (ns: string, lines: readonly string[]): Promise<ExecResult> => set.exec(ns, ['ip', '-force', '-batch', '-'], { input: `${lines.join('\n')}\n` });
  await Promise.all([
    undo(names.server, [`route del ${addr.publicNet}`]),
    undo(otherRouter, [`route del ${addr.publicNet}`]),
    undo(router, ['addr flush dev lan0']),
    undo(client, ['route flush default', 'addr flush dev eth0']),
  ]);
  await Promise.all([
    side.pub && !carrier ? set.batch(names.server, [`route add ${addr.publicNet} via ${addr.routerWan}`]) : undefined,
    side.pub && !carrier ? set.batch(otherRouter, [`route add ${addr.publicNet} via ${addr.routerWan}`]) : undefined,
    set.batch(router, [`addr add ${addr.routerLan}/${addr.lanPrefix} dev lan0`, ...(side.pub ? [`addr add ${addr.routerPublicLan}/28 dev lan0`] : [])]),
    set.batch(client, [
      `addr add ${addr.clientLan}/${addr.lanPrefix} dev eth0`,
      ...(side.pub ? [`addr add ${addr.clientPublic}/28 dev eth0`] : []),
      side.pub ? `route add default via ${addr.routerPublicLan} src ${addr.clientPublic}` : `route add default via ${addr.routerLan}`,
    ]),
    set.must(['ip', 'netns', 'exec', router, 'nft', '-f', '-'], `flush ruleset\n${side.ruleset}`),
  ]);
  // Forget every mapping and filter entry of the old behaviour (after the new rules are in).
  await set.exec(router, ['conntrack', '-F'], { timeoutMs: 5000 });
  if (carrier) await set.exec(names.carrierA, ['conntrack', '-F'], { timeoutMs: 5000 });
  const updated: PairLab = { ...lab, [which]: side };
  internals.set(updated, inner);
  return updated;
}
