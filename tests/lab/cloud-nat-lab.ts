/**
 * A cloud VM behind its provider's 1:1 NAT, and two peers on the "internet", in network
 * namespaces: the VM holds only a private address; the provider's gateway owns the public
 * address and maps it to the VM both ways (nftables dnat in, snat out, ports kept).
 *
 * ```
 *   vm ns: eth0 10.0.0.5/24 (default via 10.0.0.1)
 *              |
 *   gw ns: lan0 10.0.0.1/24; bridge inet0 203.0.113.254/24 + 203.0.113.50/24 (the VM's public address)
 *          ports wa0, wb0                    dnat 203.0.113.50 -> 10.0.0.5, snat 10.0.0.5 -> 203.0.113.50
 *              |                |
 *   a ns: eth0 203.0.113.10/24   b ns: eth0 203.0.113.11/24   (no route to 10.0.0.0/24: only the public address reaches the VM)
 * ```
 *
 * Namespaces are named `natlab-<pid>-c<n><random>-{vm,gw,a,b}`; they are those of
 * {@link openNamespaceSet}: removed by `destroy()`, by the exit handler, or by the next sweep
 * when their owner died.
 */
import { randomBytes } from 'node:crypto';
import { LAB_PREFIX, openNamespaceSet, veth, type ExecOptions, type ExecResult, type LabProcess } from './netns.js';

/** The lab's addresses. */
export const CLOUD_NAT = {
  vmPrivate: '10.0.0.5',
  gatewayLan: '10.0.0.1',
  gatewayWan: '203.0.113.254',
  vmPublic: '203.0.113.50',
  peerA: '203.0.113.10',
  peerB: '203.0.113.11',
} as const;

/** Role names of the lab's namespaces. */
export type CloudNatNs = 'vm' | 'gw' | 'a' | 'b';

/** A built cloud-NAT lab. */
export interface CloudNatLab {
  readonly id: string;
  readonly namespaces: readonly string[];
  readonly tmpDir: string;
  /** Runs `ip netns exec NS argv...` with a timeout. */
  exec(ns: CloudNatNs, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a daemon; killed by stop(), destroy(), or when this process dies. */
  spawn(ns: CloudNatNs, argv: readonly string[]): LabProcess;
  /** Kills the lab's processes and deletes its namespaces; safe to call more than once. */
  destroy(): Promise<void>;
}

/** The provider's 1:1 NAT: everything to the public address goes to the VM, the VM's packets leave with it. */
export const ONE_TO_ONE_RULESET = `table ip cloudnat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "inet0" ip daddr ${CLOUD_NAT.vmPublic} dnat to ${CLOUD_NAT.vmPrivate}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "inet0" ip saddr ${CLOUD_NAT.vmPrivate} snat to ${CLOUD_NAT.vmPublic}
  }
}
`;

let counter = 0;

/** Builds the lab. Throws (after removing what it had built) when a step fails. */
export async function createCloudNatLab(setupTimeoutMs = 10_000): Promise<CloudNatLab> {
  counter += 1;
  const id = `${LAB_PREFIX}${process.pid}-c${counter}${randomBytes(2).toString('hex')}`;
  const names: Record<CloudNatNs, string> = { vm: `${id}-vm`, gw: `${id}-gw`, a: `${id}-a`, b: `${id}-b` };
  const set = openNamespaceSet(id, { label: 'cloud NAT lab', setupTimeoutMs });
  const lab: CloudNatLab = {
    id,
    namespaces: Object.values(names),
    tmpDir: set.tmpDir,
    exec: (ns, argv, opts) => set.exec(names[ns], argv, opts),
    spawn: (ns, argv) => set.spawn(names[ns], argv),
    destroy: () => set.destroy(),
  };
  const C = CLOUD_NAT;
  try {
    await set.build(lab.namespaces, [veth('eth0', names.vm, 'lan0', names.gw), veth('eth0', names.a, 'wa0', names.gw), veth('eth0', names.b, 'wb0', names.gw)]);
    const host = (address: string, gateway?: string): string[] => [
      'link set lo up',
      `addr add ${address}/24 dev eth0`,
      'link set eth0 up',
      ...(gateway ? [`route add default via ${gateway}`] : []),
    ];
    await Promise.all([
      set.batch(names.vm, host(C.vmPrivate, C.gatewayLan)),
      set.batch(names.a, host(C.peerA)),
      set.batch(names.b, host(C.peerB)),
      set.batch(names.gw, [
        'link set lo up',
        `addr add ${C.gatewayLan}/24 dev lan0`,
        'link add inet0 type bridge',
        'link set wa0 master inet0',
        'link set wb0 master inet0',
        `addr add ${C.gatewayWan}/24 dev inet0`,
        `addr add ${C.vmPublic}/24 dev inet0`,
        'link set lan0 up',
        'link set wa0 up',
        'link set wb0 up',
        'link set inet0 up',
      ]),
    ]);
    await set.must(['ip', 'netns', 'exec', names.gw, 'nft', '-f', '-'], ONE_TO_ONE_RULESET);
    await set.must(['ip', 'netns', 'exec', names.gw, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    return lab;
  } catch (e) {
    await set.destroy();
    throw e;
  }
}
