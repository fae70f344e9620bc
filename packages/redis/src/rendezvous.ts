/**
 * The rendezvous of several nat-server nodes over one Redis: presence (which node each peer is
 * registered on), signalling between nodes (a pub/sub channel per node), names (atomic Lua
 * claims with the limits of one node's NameTable) and each node's liveness. Implements
 * @nat/server's RendezvousCluster.
 */
import { randomBytes } from 'node:crypto';
import { type ClusterMessage, decodeClusterMessage, encodeClusterMessage, sourceKey } from '@nat/protocol';
import {
  type ClusterForward,
  type ClusterInbox,
  DEFAULT_NAME_LIMITS,
  type Logger,
  type NameLimits,
  type RendezvousCluster,
  type RendezvousClusterStats,
  silentLogger,
} from '@nat/server';
import type { Redis } from 'ioredis';
import { RedisStateError } from './errors.js';
import { CLAIM_NAME, FORWARD, LEAVE, REGISTER, TOUCH_NAMES } from './scripts.js';

/** Options of {@link RedisRendezvousCluster}. */
export interface RedisRendezvousInit {
  /** This node's id, shown to operators and in the node's record. Required: 1-64 of `A-Z a-z 0-9 . _ : -`. */
  readonly nodeId: string;
  /** The rendezvous URL peers dial on this node, published in its record (for clients and operators). Default none. */
  readonly url?: string;
  /** Key and channel prefix. Default `nat:`. */
  readonly prefix?: string;
  /** How often the node renews its liveness key, ms. Default 1,000. */
  readonly heartbeatMs?: number;
  /** A node whose liveness key is this old is dead: its peers are offline, ms. Default 5,000. */
  readonly nodeTtlMs?: number;
  /** A peer's presence key lives this long unless renewed (its node renews it a third of the way), ms. Default 3,600,000. */
  readonly presenceTtlMs?: number;
  /** Forwards and writes waiting for Redis at once; more are refused (`busy`) rather than queued. Default 1,000. */
  readonly maxInFlight?: number;
  /** The name limits (those of the rendezvous service: give the same). */
  readonly names?: NameLimits;
  /** Logger (pino-compatible). Default silent. Nothing is logged per message above debug. */
  readonly logger?: Logger;
}

/** The parts a {@link RedisRendezvousCluster} runs on. */
export interface RedisRendezvousConnections {
  /** Commands and PUBLISH. */
  readonly commands: Redis;
  /** SUBSCRIBE only (a Redis connection in subscriber mode runs nothing else). */
  readonly subscriber: Redis;
}

const NODE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Checks a node id (`--node-id`). Throws RedisStateError BAD_NODE_ID. */
export function checkNodeId(id: string): string {
  if (!NODE_ID.test(id))
    throw new RedisStateError('BAD_NODE_ID', `a node id is 1-64 characters of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

export class RedisRendezvousCluster implements RendezvousCluster {
  /** This process's id in Redis: the node id and a random suffix (a restarted node is a new instance). */
  readonly instance: string;
  readonly #r: Redis;
  readonly #sub: Redis;
  readonly #p: string;
  readonly #init: RedisRendezvousInit;
  readonly #names: Required<NameLimits>;
  readonly #log: Logger;
  readonly #maxInFlight: number;
  readonly #presenceTtl: number;
  /** peer id -> the presence value this node wrote (renewed by the heartbeat). */
  readonly #local = new Map<string, string>();
  readonly #pending = new Set<Promise<unknown>>();
  #inbox: ClusterInbox | undefined;
  #up = true;
  #nodes = 1;
  #closed = false;
  #beat: NodeJS.Timeout | undefined;
  #nextRenew = 0;
  #url: string | undefined;
  readonly #counts = { forwarded: 0, delivered: 0, undeliverable: 0, forwardFailures: 0, storeLosses: 0, badMessages: 0 };

  constructor(connections: RedisRendezvousConnections, init: RedisRendezvousInit) {
    this.#r = connections.commands;
    this.#sub = connections.subscriber;
    this.#init = init;
    this.#p = init.prefix ?? 'nat:';
    this.instance = `${checkNodeId(init.nodeId)}~${randomBytes(4).toString('hex')}`;
    this.#names = { ...DEFAULT_NAME_LIMITS, ...Object.fromEntries(Object.entries(init.names ?? {}).filter(([, v]) => v !== undefined)) };
    this.#log = init.logger ?? silentLogger;
    this.#maxInFlight = init.maxInFlight ?? 1000;
    this.#presenceTtl = init.presenceTtlMs ?? 3_600_000;
    this.#url = init.url;
  }

  /** The rendezvous URL this node publishes in its record (known once the service listens). */
  setUrl(url: string): void {
    this.#url = url;
    if (this.#inbox !== undefined) this.#heartbeat(); // published now, not at the next beat
  }

  /** The channel this node listens on. */
  get channel(): string {
    return `${this.#p}to:${this.instance}`;
  }

  open(inbox: ClusterInbox): void {
    if (this.#inbox !== undefined) throw new RedisStateError('ALREADY_OPEN', 'this cluster is open already');
    this.#inbox = inbox;
    this.#sub.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.#message(text);
    });
    void this.#track(this.#sub.subscribe(this.channel));
    this.#r.on('close', () => this.#lost());
    this.#r.on('ready', () => this.#back());
    this.#heartbeat();
    this.#beat = setInterval(() => this.#heartbeat(), this.#init.heartbeatMs ?? 1000);
    this.#beat.unref();
  }

  #message(text: string): void {
    let m: ClusterMessage;
    try {
      m = decodeClusterMessage(text);
    } catch {
      this.#counts.badMessages++;
      return;
    }
    if (m.type === 'deliver') {
      if (this.#inbox!.deliver(m.to, m.text)) this.#counts.delivered++;
      else this.#counts.undeliverable++;
    } else if (m.type === 'replaced') this.#inbox!.replaced(m.peerId, m.seq);
  }

  #lost(): void {
    if (!this.#up || this.#closed) return;
    this.#up = false;
    this.#counts.storeLosses++;
    this.#log.warn({ node: this.#init.nodeId }, 'rendezvous cluster: Redis lost; serving the peers of this node only until it is back');
  }

  #back(): void {
    if (this.#up || this.#closed) return;
    this.#up = true;
    this.#log.info({ node: this.#init.nodeId }, 'rendezvous cluster: Redis is back');
    this.#heartbeat();
    this.#inbox?.resync();
  }

  /** Runs `p` counted among the in-flight commands; resolves undefined when it failed. */
  #track<T>(p: Promise<T>): Promise<T | undefined> {
    const q = p.then(
      (v) => v,
      (e: unknown) => {
        this.#log.debug({ err: e instanceof Error ? e.message : String(e) }, 'rendezvous cluster: Redis command failed');
        return undefined;
      },
    );
    this.#pending.add(q);
    void q.finally(() => this.#pending.delete(q));
    return q;
  }

  #busy(): boolean {
    return this.#pending.size >= this.#maxInFlight;
  }

  /** Renews this node's liveness key and its record; counts the live nodes; renews presence now and then. */
  #heartbeat(): void {
    if (this.#closed) return; // never skipped when busy: a node that stops beating is taken for dead
    const now = Date.now();
    const ttl = this.#init.nodeTtlMs ?? 5000;
    const record = JSON.stringify({ nodeId: this.#init.nodeId, url: this.#url, peers: this.#local.size, at: now });
    const tx = this.#r
      .multi()
      .set(`${this.#p}node:${this.instance}`, record, 'PX', ttl)
      .zadd(`${this.#p}nodes`, now, this.instance)
      .zremrangebyscore(`${this.#p}nodes`, '-inf', now - ttl)
      .zcard(`${this.#p}nodes`);
    void this.#track(tx.exec()).then((r) => {
      const n = r?.[3]?.[1];
      if (typeof n === 'number') this.#nodes = n;
    });
    if (now >= this.#nextRenew && this.#local.size > 0) {
      this.#nextRenew = now + this.#presenceTtl / 3;
      const p = this.#r.pipeline();
      for (const peer of this.#local.keys()) p.pexpire(`${this.#p}peer:${peer}`, this.#presenceTtl);
      void this.#track(p.exec());
    }
  }

  async register(peerId: string): Promise<number | undefined> {
    if (this.#closed) return undefined;
    const seq = await this.#track(REGISTER.run(this.#r, [`${this.#p}seq`, `${this.#p}peer:${peerId}`, this.instance, this.#presenceTtl, this.#p, peerId]));
    if (typeof seq !== 'number') return undefined;
    this.#local.set(peerId, `${this.instance} ${seq}`);
    return seq;
  }

  leave(peerId: string, seq: number): void {
    const value = `${this.instance} ${seq}`;
    if (this.#local.get(peerId) === value) this.#local.delete(peerId);
    if (!this.#closed || this.#up) void this.#track(LEAVE.run(this.#r, [`${this.#p}peer:${peerId}`, value]));
  }

  async forward(to: string, text: string): Promise<ClusterForward> {
    if (this.#busy()) return this.#failed('busy');
    if (!this.#up) return this.#failed('unavailable');
    const n = await this.#track(FORWARD.run(this.#r, [`${this.#p}peer:${to}`, this.#p, encodeClusterMessage({ type: 'deliver', to, text })]));
    if (n === undefined) return this.#failed('unavailable');
    if (n === 0) return 'offline';
    this.#counts.forwarded++;
    return 'sent';
  }

  #failed(r: 'busy' | 'unavailable'): ClusterForward {
    this.#counts.forwardFailures++;
    return r;
  }

  async online(peerId: string): Promise<boolean> {
    if (this.#busy()) return false;
    return (await this.#track(FORWARD.run(this.#r, [`${this.#p}peer:${peerId}`, this.#p, '']))) === 1;
  }

  async claimName(
    name: string,
    peerId: string,
    source: string,
    now: number,
  ): Promise<'taken' | 'per-peer' | 'per-source' | 'full' | 'unavailable' | undefined> {
    if (this.#busy()) return 'unavailable';
    const l = this.#names;
    const keys = [`${this.#p}name:${name}`, `${this.#p}names-of:${peerId}`, `${this.#p}names`, `${this.#p}name-claims:${sourceKey(source)}`];
    const args = [this.#p, l.nameTtlMs, now, peerId, name, l.maxNamesPerPeer, l.maxNames, l.nameClaimsPerSource, l.nameClaimWindowMs];
    const r = await this.#track(CLAIM_NAME.run(this.#r, [...keys, ...args]));
    if (r === 'ok') return undefined;
    return r === 'taken' || r === 'per-peer' || r === 'per-source' || r === 'full' ? r : 'unavailable';
  }

  async ownerOf(name: string): Promise<string | undefined | 'unavailable'> {
    if (this.#busy()) return 'unavailable';
    const r = await this.#track(this.#r.get(`${this.#p}name:${name}`).then((owner) => ({ owner })));
    return r === undefined ? 'unavailable' : (r.owner ?? undefined);
  }

  touchNames(peerId: string, now: number): void {
    if (!this.#up || this.#busy()) return;
    const set = `${this.#p}names-of:${peerId}`;
    void this.#track(TOUCH_NAMES.run(this.#r, [set, set, `${this.#p}names`, this.#p, this.#names.nameTtlMs, now]));
  }

  stats(): RendezvousClusterStats {
    const { badMessages: _, ...counts } = this.#counts;
    return { nodeId: this.#init.nodeId, storeUp: this.#up ? 1 : 0, nodes: this.#nodes, ...counts };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    const drained = Promise.allSettled([...this.#pending]);
    await Promise.race([drained, new Promise((r) => setTimeout(r, 1000).unref())]);
    if (this.#up) {
      await this.#track(this.#r.pipeline().del(`${this.#p}node:${this.instance}`).zrem(`${this.#p}nodes`, this.instance).exec());
    }
  }
}
