import type { ClaimRefusal } from './names.js';

/**
 * What several rendezvous nodes share (presence, names, signalling between nodes), so that peers
 * registered on different nodes meet. Injected: @nat/server keeps none of it (one node holds its
 * state in memory, the default); @nat/redis implements it over Redis (`nat-server --redis URL`).
 */
export interface RendezvousCluster {
  /** Starts delivering what other nodes send to `inbox`; called once by the rendezvous service. */
  open(inbox: ClusterInbox): void;
  /**
   * `peerId` registered on this node: it is recorded as present here, and the node it was on
   * before (if another) is told to close that connection (newest wins). Resolves with the
   * registration's sequence number (ordering registrations across nodes), or undefined when the
   * shared store is unavailable (the peer is then present on this node only).
   */
  register(peerId: string): Promise<number | undefined>;
  /** `peerId` (registration `seq`) left this node: its presence goes, unless a newer registration replaced it. */
  leave(peerId: string, seq: number): void;
  /**
   * Sends a relayed message's text to `to` on whichever node it is registered: `sent`, `offline`
   * (registered on no live node), `busy` (too many forwards in flight: the store is slow) or
   * `unavailable` (the store does not answer).
   */
  forward(to: string, text: string): Promise<ClusterForward>;
  /** Whether `peerId` is registered on some live node (false when the store does not answer). */
  online(peerId: string): Promise<boolean>;
  /** Claims `name` for `peerId` (from `source`, an IP) with the limits of {@link NameTable}; a refusal, or `unavailable`. */
  claimName(name: string, peerId: string, source: string, now: number): Promise<ClaimRefusal | 'unavailable' | undefined>;
  /** The owner of `name` (undefined: unclaimed or released), or `unavailable`. */
  ownerOf(name: string, now: number): Promise<string | undefined | 'unavailable'>;
  /** `peerId` registered: its names live another TTL. */
  touchNames(peerId: string, now: number): void;
  /** Counters and state for the status page and metrics. */
  stats(): RendezvousClusterStats;
  /** Stops the heartbeat and the subscriptions; presence of this node's peers goes. Idempotent. */
  close(): Promise<void>;
}

/** The result of {@link RendezvousCluster.forward}. */
export type ClusterForward = 'sent' | 'offline' | 'busy' | 'unavailable';

/** What a {@link RendezvousCluster} calls on the rendezvous of its node. */
export interface ClusterInbox {
  /**
   * Another node relays `text` (a message that passed its checks there) to `to`, registered here.
   * False when it was dropped: `to` is not here (any more) or does not read its messages.
   */
  deliver(to: string, text: string): boolean;
  /** `peerId` registered on another node with sequence `seq`: an older connection here is closed (4000). */
  replaced(peerId: string, seq: number): void;
  /** The shared store came back after a loss (and may have lost its data): every local peer registers again. */
  resync(): void;
}

/** Counters of a {@link RendezvousCluster}. */
export interface RendezvousClusterStats {
  /** This node's id. */
  readonly nodeId: string;
  /** 1 while the shared store answers, 0 while it is lost. */
  readonly storeUp: number;
  /** Live nodes seen at the last heartbeat (this one included). */
  readonly nodes: number;
  /** Messages sent to peers on other nodes. */
  readonly forwarded: number;
  /** Messages from other nodes delivered to peers here. */
  readonly delivered: number;
  /** Messages from other nodes whose peer was gone or not reading here (dropped). */
  readonly undeliverable: number;
  /** Forwards answered `busy` or `unavailable`. */
  readonly forwardFailures: number;
  /** Times the store was lost. */
  readonly storeLosses: number;
}
