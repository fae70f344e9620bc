/**
 * What a TURN server shares with the other nodes of a cluster (`nat-server --redis`), injected:
 * @nat/server holds no Redis code, @nat/redis implements these, the app wires them.
 */
import type { QuotaRefusal } from './quota.js';

/** Who an allocation counts against in a cluster-wide ledger. */
export interface ClusterQuotaHolder {
  /** The quota user (`quotaUser`: a REST username without its expiry; a tier's users prefixed with the tier). */
  readonly user: string;
  /** The client's source (`sourceKey`: an IPv4 address or an IPv6 /64). */
  readonly source: string;
}

/**
 * Allocation quotas counted across every node: the per-user quota, the per-source share and the
 * total, each reserved atomically in the shared store before the relay socket is opened (after
 * the node's own synchronous ledger has admitted the allocation). A node's reservations carry a
 * lease it renews while it runs: those of a node that died go away when their lease runs out.
 */
export interface TurnClusterQuota {
  /**
   * Reserves one slot for allocation `id` of this node. Resolves with the limit that refused it,
   * `unavailable` when the store did not answer (the Allocate is refused: fail closed), or
   * undefined (reserved). Never rejects.
   */
  reserve(id: number, holder: ClusterQuotaHolder): Promise<QuotaRefusal | 'unavailable' | undefined>;
  /** The allocation ended: its slot goes back (idempotent, in the background, never rejects). */
  release(id: number): void;
}
