/**
 * The part of the rendezvous protocol that reaches other nodes through a {@link RendezvousCluster}:
 * presence recorded in the shared store, relayed messages to peers registered elsewhere, names
 * claimed and resolved across nodes, and what other nodes send here. Used by {@link Signalling}
 * only when a cluster is given; a single node never enters this code.
 */
import { type ClaimNameMessage, type ResolveNameMessage, SIGNALLING_VERSION, type SignallingMessage } from '@nat/protocol';
import type { Logger } from '../logger.js';
import type { ClusterForward, ClusterInbox, RendezvousCluster } from './cluster.js';
import type { Connection } from './connection.js';
import type { ClaimRefusal } from './names.js';
import type { ResolvedLimits } from './options.js';
import type { RendezvousCounters } from './signalling.js';

/** What the link needs of the signalling of its node. */
export interface ClusterLinkHost {
  readonly peers: ReadonlyMap<string, Connection>;
  readonly limits: ResolvedLimits;
  readonly stats: RendezvousCounters;
  readonly log: Logger;
  /** Closes `c` as replaced by a newer registration (4000). */
  replace(c: Connection): void;
  /** Answers a refused claim as a local refusal is answered. */
  claimRefused(c: Connection, m: ClaimNameMessage, refused: ClaimRefusal): void;
}

const FORWARD_REFUSED: Record<Exclude<ClusterForward, 'sent'>, [code: 'peer-offline' | 'rate-limited', text: string]> = {
  offline: ['peer-offline', 'the peer is not connected'],
  busy: ['rate-limited', 'the rendezvous is busy: try again'],
  unavailable: ['peer-offline', 'the peer is not connected to this node, and the other nodes cannot be reached now'],
};

export class ClusterLink implements ClusterInbox {
  readonly #cluster: RendezvousCluster;
  readonly #host: ClusterLinkHost;

  constructor(cluster: RendezvousCluster, host: ClusterLinkHost) {
    this.#cluster = cluster;
    this.#host = host;
    cluster.open(this);
  }

  /** `c` registered here as `peerId`: recorded in the store, then `registered` is sent (even when the store is down). */
  register(c: Connection, peerId: string, registered: SignallingMessage): void {
    this.#cluster.touchNames(peerId, Date.now());
    void this.#cluster.register(peerId).then((seq) => {
      this.#sequenced(c, seq);
      c.send(registered);
    });
  }

  /** Records the sequence of `c`'s registration, closing it if a newer one elsewhere arrived first. */
  #sequenced(c: Connection, seq: number | undefined): void {
    if (seq === undefined || c.closed) return;
    c.clusterSeq = seq;
    if (c.replacedBy !== undefined && c.replacedBy > seq) this.#host.replace(c);
  }

  /** `c` (registered as `peerId`) left: its presence in the store goes. */
  left(c: Connection, peerId: string): void {
    if (c.clusterSeq !== undefined) this.#cluster.leave(peerId, c.clusterSeq);
  }

  /** Relays `text` to `to`, not registered here, through the store; answers the sender as locally when it cannot. */
  forward(c: Connection, to: string, ref: string | undefined, text: string, onSent: () => void): void {
    void this.#cluster.forward(to, text).then((r) => {
      if (r === 'sent') return onSent();
      const [code, message] = FORWARD_REFUSED[r];
      if (code === 'peer-offline') this.#host.stats.peerOffline++;
      else this.#host.stats.rateLimited++;
      c.error(code, message, ref);
    });
  }

  /** `claim-name` or `resolve-name` against the shared name table. */
  name(c: Connection, peerId: string, m: ClaimNameMessage | ResolveNameMessage): void {
    void this.#name(c, peerId, m);
  }

  async #name(c: Connection, peerId: string, m: ClaimNameMessage | ResolveNameMessage): Promise<void> {
    const now = Date.now();
    let owner: string | undefined;
    if (m.type === 'claim-name') {
      const refused = await this.#cluster.claimName(m.name, peerId, c.ip, now);
      if (refused === 'unavailable') return c.error('internal', 'the name table cannot be reached now; try later', m.id);
      if (refused !== undefined) return this.#host.claimRefused(c, m, refused);
      owner = peerId;
    } else {
      const found = await this.#cluster.ownerOf(m.name, now);
      if (found === 'unavailable') return c.error('internal', 'the name table cannot be reached now; try later', m.id);
      if (found === undefined) return c.error('unknown-name', `nobody claimed the name ${m.name}`, m.id);
      owner = found;
    }
    const local = this.#host.peers.get(owner);
    const online = local !== undefined ? local.ws.readyState === 1 : await this.#cluster.online(owner);
    c.send({ v: SIGNALLING_VERSION, type: 'name', ...(m.id === undefined ? {} : { ref: m.id }), name: m.name, peerId: owner, online });
  }

  deliver(to: string, text: string): boolean {
    const target = this.#host.peers.get(to);
    if (target === undefined || target.ws.readyState !== target.ws.OPEN || target.ws.bufferedAmount > this.#host.limits.maxBufferedBytes) return false;
    target.ws.send(text);
    return true;
  }

  replaced(peerId: string, seq: number): void {
    const c = this.#host.peers.get(peerId);
    if (c === undefined) return;
    if (c.clusterSeq === undefined)
      c.replacedBy = Math.max(c.replacedBy ?? 0, seq); // its own registration is still on its way
    else if (c.clusterSeq < seq) this.#host.replace(c);
  }

  resync(): void {
    this.#host.log.info({ peers: this.#host.peers.size }, 'rendezvous cluster: the shared store is back; registering the peers of this node again');
    for (const [peerId, c] of this.#host.peers) void this.#cluster.register(peerId).then((seq) => this.#sequenced(c, seq));
  }
}
