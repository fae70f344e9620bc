/**
 * What an expose service shares with the other nodes of a cluster (`nat-server --redis`),
 * injected: @nat/server holds no Redis code, @nat/redis implements this, the app wires it in.
 * Without it (the default) every count and every owner lives in this process's memory alone.
 */
import { type ExposeTransport, canonicalIp, ipFamily } from '@nat/protocol';

/** The public address as the cluster's keys and the owner lookup's `host` name it: canonical IP text (anything else as given). */
export function clusterHost(publicIp: string): string {
  return ipFamily(publicIp) === undefined ? publicIp : canonicalIp(publicIp);
}

/** An advertised owner of a public port: its peer id and the public address (`ip:port`). */
export interface ExposeOwnerRecord {
  readonly peer: string;
  readonly address: string;
}

/** Where a public port is: the node's public address, the transport and the port. */
export interface ExposePortAddress {
  /** The public IP address (canonical text, `canonicalIp`). */
  readonly host: string;
  readonly transport: ExposeTransport;
  readonly port: number;
}

/**
 * The public ports of every node: the per-user quota counted across nodes, and the owner
 * advertisements (`--advertise-peer`) visible from every node. A node's entries carry a lease it
 * renews while it runs: those of a node that died go away when their lease runs out.
 */
export interface ExposeCluster {
  /**
   * Reserves one of `user`'s public ports across the nodes for reservation `id` of this node,
   * after the node's own synchronous count admitted it and before the port is bound. Resolves
   * `over-quota` when the user holds `quota` ports on the nodes together, `unavailable` when
   * the store did not answer (the request is refused: fail closed), or undefined (reserved).
   * Never rejects.
   */
  reserve(id: number, user: string, quota: number): Promise<'over-quota' | 'unavailable' | undefined>;
  /** The port went (unexposed, or its grace period ran out): its slot goes back (idempotent, in the background, never rejects). */
  release(id: number): void;
  /** Tells every node who owns this node's public port `at` (kept, renewed, until {@link withdraw}). Never throws. */
  advertise(at: ExposePortAddress, owner: ExposeOwnerRecord): void;
  /** The owner of `at` no longer tells (its client went away, or the port went). Idempotent, never throws. */
  withdraw(at: ExposePortAddress): void;
  /** The advertised owner of public port `at` on any node, undefined when none, `unavailable` when the store did not answer. Never rejects. */
  owner(at: ExposePortAddress): Promise<ExposeOwnerRecord | 'unavailable' | undefined>;
}
