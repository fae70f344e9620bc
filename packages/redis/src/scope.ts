/**
 * The anonymous tier's relay scope across nodes: a peer's sessions may be signalled through
 * node A's rendezvous while it relays through node B's TURN. TURN reads the scope on every
 * permission check, synchronously, so each node keeps it in memory (the inner scope) and every
 * write is applied there and published to the other nodes (`<prefix>scope`), which apply it to
 * theirs: a lookup stays a local read. Writes are batched: those made in one run of synchronous
 * code (all the addresses one signalling message records, a TURN permission's adds) go out in one
 * PUBLISH from a microtask once it ends, at most `MAX_CLUSTER_SCOPE_WRITES` to a message. A node
 * started later knows the writes from its start on (scope entries are renewed as sessions signal
 * again).
 */
import { type ClusterScopeOp, type ClusterScopeWrite, MAX_CLUSTER_SCOPE_WRITES, decodeClusterMessage, encodeClusterMessage } from '@nat/protocol';
import { type RelayScope, type ScopeKind, plainIp } from '@nat/server';
import type { Redis } from 'ioredis';

/** Options of {@link RedisRelayScope}. */
export interface RedisRelayScopeInit {
  /** This process's id (its writes come back to it and are skipped). Required. */
  readonly instance: string;
  /** Key and channel prefix. Default `nat:`. */
  readonly prefix?: string;
  /** PUBLISHes waiting for Redis at once; the writes of more are applied locally only. Default 1,000. */
  readonly maxInFlight?: number;
}

/** Counters of a {@link RedisRelayScope}. */
export interface RedisRelayScopeStats {
  /** Writes published to the other nodes. */
  published: number;
  /** PUBLISH commands sent (each carries one or more writes). */
  messages: number;
  /** Writes of other nodes applied here. */
  applied: number;
  /** Writes not published (Redis down or slow): the other nodes miss them. */
  dropped: number;
  /** Messages on the channel that did not decode (ignored). */
  badMessages: number;
}

export class RedisRelayScope implements RelayScope {
  readonly #inner: RelayScope;
  readonly #r: Redis;
  readonly #channel: string;
  readonly #instance: string;
  readonly #maxInFlight: number;
  #inFlight = 0;
  #pending: ClusterScopeWrite[] = [];
  readonly counts: RedisRelayScopeStats = { published: 0, messages: 0, applied: 0, dropped: 0, badMessages: 0 };

  /** Mirrors `inner` (the scope this node's TURN reads) through `commands`; `subscriber` hears the other nodes. */
  constructor(inner: RelayScope, connections: { commands: Redis; subscriber: Redis }, init: RedisRelayScopeInit) {
    this.#inner = inner;
    this.#r = connections.commands;
    this.#channel = `${init.prefix ?? 'nat:'}scope`;
    this.#instance = init.instance;
    this.#maxInFlight = init.maxInFlight ?? 1000;
    connections.subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.#channel) this.#apply(text);
    });
    void connections.subscriber.subscribe(this.#channel).catch(() => undefined);
  }

  add(peerId: string, ip: string, kind: ScopeKind, now: number): void {
    this.#inner.add(peerId, ip, kind, now);
    this.#publish('a', peerId, ip, kind, now);
  }

  lookup(peerId: string, ip: string, now: number): ScopeKind | undefined {
    return this.#inner.lookup(peerId, ip, now);
  }

  claim(peerId: string, ip: string, claimant: string, now: number): void {
    this.#inner.claim?.(peerId, ip, claimant, now);
    this.#publish('c', peerId, ip, claimant, now);
  }

  sighted(peerId: string, ip: string, now: number): void {
    this.#inner.sighted?.(peerId, ip, now);
    this.#publish('s', peerId, ip, '-', now);
  }

  proven(peerId: string, ip: string, now: number): boolean {
    return this.#inner.proven?.(peerId, ip, now) ?? false;
  }

  #publish(op: ClusterScopeOp, peer: string, ip: string, arg: string, now: number): void {
    if (this.#pending.length === 0) queueMicrotask(() => this.#flush());
    this.#pending.push({ op, peer, ip, arg, now });
    if (this.#pending.length >= MAX_CLUSTER_SCOPE_WRITES) this.#flush();
  }

  #flush(): void {
    const writes = this.#pending;
    if (writes.length === 0) return;
    this.#pending = [];
    if (this.#inFlight >= this.#maxInFlight || this.#r.status !== 'ready') {
      this.counts.dropped += writes.length;
      return;
    }
    let text: string;
    try {
      text = encodeClusterMessage({ type: 'scope', origin: this.#instance, writes });
    } catch {
      // A field that cannot travel (never from the rendezvous's checked input): drop that write only.
      const good = writes.filter((w) => this.#encodes(w));
      this.counts.dropped += writes.length - good.length;
      if (good.length > 0) this.#pending.push(...good);
      return good.length > 0 ? this.#flush() : undefined;
    }
    this.#inFlight++;
    this.counts.messages++;
    this.#r.publish(this.#channel, text).then(
      () => {
        this.#inFlight--;
        this.counts.published += writes.length;
      },
      () => {
        this.#inFlight--;
        this.counts.dropped += writes.length;
      },
    );
  }

  #encodes(w: ClusterScopeWrite): boolean {
    try {
      encodeClusterMessage({ type: 'scope', origin: this.#instance, writes: [w] });
      return true;
    } catch {
      return false;
    }
  }

  #apply(text: string): void {
    let m;
    try {
      m = decodeClusterMessage(text);
    } catch {
      this.counts.badMessages++;
      return;
    }
    if (m.type !== 'scope' || m.origin === this.#instance) return;
    for (const w of m.writes) this.#applyWrite(w);
  }

  #applyWrite(w: ClusterScopeWrite): void {
    const ip = plainIp(w.ip);
    if (ip === undefined) return void this.counts.badMessages++;
    if (w.op === 'a') {
      if (w.arg !== 'source' && w.arg !== 'relay') return void this.counts.badMessages++;
      this.#inner.add(w.peer, ip, w.arg, w.now);
    } else if (w.op === 'c') this.#inner.claim?.(w.peer, ip, w.arg, w.now);
    else this.#inner.sighted?.(w.peer, ip, w.now);
    this.counts.applied++;
  }
}
