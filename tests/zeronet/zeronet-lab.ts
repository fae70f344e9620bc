/**
 * The ZeroNet lab: a site owner and a second peer, each behind its own symmetric kernel NAT, and
 * on the "internet" segment nat-server, a ZeroNet tracker and a third peer, in network namespaces.
 *
 * ```
 *   inet ns: bridge inet0 203.0.113.1/24 (nat-server), 203.0.113.3/24 + .4 (STUN for miniupnpd)
 *      | t0               | p0               | r1w              | r2w
 *   trk ns 203.0.113.20   p3 ns 203.0.113.30 |                  |
 *                          r1 ns: wan0 203.0.113.254  r2 ns: wan0 203.0.113.253   (symmetric NAT)
 *                                 lan0 198.18.0.1            lan0 198.19.0.1
 *                                  |                          |
 *                          own ns: eth0 198.18.0.2     p2 ns: eth0 198.19.0.2
 * ```
 *
 * Nothing is routed to the LANs: from the internet side only the routers' WAN addresses are
 * reachable. Namespaces are named `natlab-<pid>-z<n><random>-<role>` and belong to
 * {@link openNamespaceSet}: removed by destroy(), by the exit handler, or by the next sweep.
 */
import { randomBytes } from 'node:crypto';
import { routerRuleset, type Behaviour } from '../lab/recipes.js';
import type { NamespaceHost } from '../lab/portmap-lab.js';
import { LAB_PREFIX, openNamespaceSet, veth, type ExecOptions, type ExecResult, type LabProcess } from '../lab/netns.js';

export const ZN = {
  server: '203.0.113.1',
  stunPrimary: '203.0.113.3',
  stunSecondary: '203.0.113.4',
  tracker: '203.0.113.20',
  peer3: '203.0.113.30',
  router1Wan: '203.0.113.254',
  router1Lan: '198.18.0.1',
  owner: '198.18.0.2',
  router2Wan: '203.0.113.253',
  router2Lan: '198.19.0.1',
  peer2: '198.19.0.2',
} as const;

export type ZeroNetNs = 'inet' | 'trk' | 'p3' | 'r1' | 'own' | 'r2' | 'p2';

export interface ZeroNetLab {
  readonly id: string;
  readonly tmpDir: string;
  /** Namespace name of a role. */
  ns(role: ZeroNetNs): string;
  exec(role: ZeroNetNs, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(role: ZeroNetNs, argv: readonly string[]): LabProcess;
  destroy(): Promise<void>;
  /** Replaces a router's NAT recipe (flushing its whole ruleset). */
  setRouter(role: 'r1' | 'r2', behaviour: Behaviour): Promise<void>;
  /** The same by namespace name, for the miniupnpd helpers of portmap-lab.ts. */
  readonly host: NamespaceHost;
}

let counter = 0;

/** Builds the lab. Throws (after removing what it had built) when a step fails. */
export async function createZeroNetLab(setupTimeoutMs = 15_000): Promise<ZeroNetLab> {
  counter += 1;
  const id = `${LAB_PREFIX}${process.pid}-z${counter}${randomBytes(2).toString('hex')}`;
  const roles: ZeroNetNs[] = ['inet', 'trk', 'p3', 'r1', 'own', 'r2', 'p2'];
  const names = Object.fromEntries(roles.map((r) => [r, `${id}-${r}`])) as Record<ZeroNetNs, string>;
  const set = openNamespaceSet(id, { label: 'ZeroNet lab', setupTimeoutMs });
  const lab: ZeroNetLab = {
    id,
    tmpDir: set.tmpDir,
    ns: (role) => names[role],
    exec: (role, argv, opts) => set.exec(names[role], argv, opts),
    spawn: (role, argv) => set.spawn(names[role], argv),
    destroy: () => set.destroy(),
    setRouter: async (role, behaviour) => {
      await set.must(['ip', 'netns', 'exec', names[role], 'nft', '-f', '-'], `flush ruleset\n${ruleset(role, behaviour)}`);
    },
    host: { tmpDir: set.tmpDir, exec: (ns, argv, opts) => set.exec(ns, argv, opts), spawn: (ns, argv) => set.spawn(ns, argv) },
  };
  const ruleset = (role: 'r1' | 'r2', behaviour: Behaviour): string =>
    routerRuleset(behaviour, {
      wanIf: 'wan0',
      lanIf: 'lan0',
      publicAddress: role === 'r1' ? ZN.router1Wan : ZN.router2Wan,
      hostAddress: role === 'r1' ? ZN.owner : ZN.peer2,
      filterTimeoutSeconds: 120,
    });
  try {
    await set.build(Object.values(names), [
      veth('eth0', names.trk, 't0', names.inet),
      veth('eth0', names.p3, 'p0', names.inet),
      veth('wan0', names.r1, 'r1w', names.inet),
      veth('wan0', names.r2, 'r2w', names.inet),
      veth('eth0', names.own, 'lan0', names.r1),
      veth('eth0', names.p2, 'lan0', names.r2),
    ]);
    const host = (dev: string, address: string, gateway?: string): string[] => [
      'link set lo up',
      `addr add ${address}/24 dev ${dev}`,
      `link set ${dev} up`,
      ...(gateway ? [`route add default via ${gateway}`] : []),
    ];
    const router = (wan: string, lan: string): string[] => [...host('wan0', wan), `addr add ${lan}/24 dev lan0`, 'link set lan0 up'];
    await Promise.all([
      set.batch(names.inet, [
        'link set lo up',
        'link add inet0 type bridge',
        ...['t0', 'p0', 'r1w', 'r2w'].flatMap((p) => [`link set ${p} master inet0`, `link set ${p} up`]),
        `addr add ${ZN.server}/24 dev inet0`,
        `addr add ${ZN.stunPrimary}/24 dev inet0`,
        `addr add ${ZN.stunSecondary}/24 dev inet0`,
        'link set inet0 up',
      ]),
      set.batch(names.trk, host('eth0', ZN.tracker)),
      set.batch(names.p3, host('eth0', ZN.peer3)),
      set.batch(names.r1, router(ZN.router1Wan, ZN.router1Lan)),
      set.batch(names.r2, router(ZN.router2Wan, ZN.router2Lan)),
      set.batch(names.own, host('eth0', ZN.owner, ZN.router1Lan)),
      set.batch(names.p2, host('eth0', ZN.peer2, ZN.router2Lan)),
    ]);
    for (const r of ['r1', 'r2'] as const) {
      await set.must(['ip', 'netns', 'exec', names[r], 'nft', '-f', '-'], ruleset(r, 'symmetric'));
      await set.must(['ip', 'netns', 'exec', names[r], 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    return lab;
  } catch (e) {
    await set.destroy();
    throw e;
  }
}
