import { type SignallingMessage, canonicalIp, ipToBytes, parseCandidate, sourceKey } from '@nat/protocol';

/**
 * How an address came into a peer's relay scope:
 * - `source`: the other side signalled a candidate on the very address (IPv6: the /64) its own
 *   rendezvous connection comes from, so a peer is running there; or on an address it proved it
 *   receives at (see {@link RelayScope.sighted}: a dual-stack peer's other family);
 * - `relay`: the other side signalled a relayed candidate; the TURN server honours it only when
 *   the address is one of its own relay addresses (two allocations of one server).
 */
export type ScopeKind = 'source' | 'relay';

/**
 * Where anonymous peers may relay to: the addresses the other side of their own sessions
 * signalled through the rendezvous. Written by the rendezvous as it relays offers, answers and
 * candidates; read by the TURN server's anonymous tier. Injected, so that a shared store (Redis)
 * can stand in for the in-process one when the services run apart.
 */
export interface RelayScope {
  /** `peerId` may relay toward `ip` (canonical) from now on. */
  add(peerId: string, ip: string, kind: ScopeKind, now: number): void;
  /** How `ip` came into `peerId`'s scope, or undefined when it is not there (or expired). */
  lookup(peerId: string, ip: string, now: number): ScopeKind | undefined;
  /**
   * `claimant` signalled to `peerId` a candidate on `ip` that is neither on the address its
   * rendezvous connection comes from nor a relayed one (a dual-stack peer's other family): not
   * in scope unless {@link proven}. Optional: a store without it keeps such candidates out.
   */
  claim?(peerId: string, ip: string, claimant: string, now: number): void;
  /**
   * `peerId` proved it receives at `ip`: the TURN server took an Allocate from there signed with
   * its anonymous credentials and a nonce bound to that IP (RFC 8489 section 9.2: the nonce went
   * to `ip` in the 401). Optional.
   */
  sighted?(peerId: string, ip: string, now: number): void;
  /** Whether some peer that claimed `ip` toward `peerId` was sighted there (IPv6: in its /64). */
  proven?(peerId: string, ip: string, now: number): boolean;
}

/** Options of {@link MemoryRelayScope}. */
export interface MemoryRelayScopeOptions {
  /** How long an address stays in scope after it was last signalled or permitted, ms. Default 6 hours. */
  readonly ttlMs?: number;
  /** Addresses kept per peer; the least recently signalled goes first. Default 64. */
  readonly maxPerPeer?: number;
  /** Peers kept; the least recently written goes first. Default 100,000. */
  readonly maxPeers?: number;
}

/** The in-process {@link RelayScope} that one nat-server's rendezvous and TURN services share. */
export class MemoryRelayScope implements RelayScope {
  readonly #ttl: number;
  readonly #maxPerPeer: number;
  readonly #maxPeers: number;
  /** peer id -> (ip -> [kind, expiry]); Map order is least recently written first. */
  readonly #peers = new Map<string, Map<string, { kind: ScopeKind; until: number }>>();
  /** `peerId|ip` -> (claimant -> expiry): who signalled `ip` to `peerId` without proof. */
  readonly #claims = new Map<string, Map<string, number>>();
  /** peer id -> (source key -> expiry): where the TURN server saw the peer prove it receives. */
  readonly #sightings = new Map<string, Map<string, number>>();

  constructor(options: MemoryRelayScopeOptions = {}) {
    this.#ttl = options.ttlMs ?? 6 * 3600_000;
    this.#maxPerPeer = options.maxPerPeer ?? 64;
    this.#maxPeers = options.maxPeers ?? 100_000;
  }

  add(peerId: string, ip: string, kind: ScopeKind, now: number): void {
    let set = this.#peers.get(peerId);
    if (set === undefined) {
      if (this.#peers.size >= this.#maxPeers) this.#peers.delete(this.#peers.keys().next().value as string);
      set = new Map();
    } else this.#peers.delete(peerId); // re-inserted below: most recently written last
    this.#peers.set(peerId, set);
    const old = set.get(ip);
    set.delete(ip);
    if (set.size >= this.#maxPerPeer) set.delete(set.keys().next().value as string);
    // a `source` entry is never weakened to `relay` by a later relayed candidate on the same address
    set.set(ip, { kind: old?.kind === 'source' ? 'source' : kind, until: now + this.#ttl });
  }

  lookup(peerId: string, ip: string, now: number): ScopeKind | undefined {
    const e = this.#peers.get(peerId)?.get(ip);
    return e !== undefined && e.until > now ? e.kind : undefined;
  }

  claim(peerId: string, ip: string, claimant: string, now: number): void {
    touch(this.#claims, `${peerId}|${ip}`, claimant, now + this.#ttl, this.#maxPeers, this.#maxPerPeer);
  }

  sighted(peerId: string, ip: string, now: number): void {
    touch(this.#sightings, peerId, sourceKey(ip), now + this.#ttl, this.#maxPeers, this.#maxPerPeer);
  }

  proven(peerId: string, ip: string, now: number): boolean {
    const key = sourceKey(ip);
    for (const [claimant, until] of this.#claims.get(`${peerId}|${ip}`) ?? []) {
      const seen = this.#sightings.get(claimant)?.get(key);
      if (until > now && seen !== undefined && seen > now) return true;
    }
    return false;
  }

  /** Peers with a scope (for tests and stats). */
  get size(): number {
    return this.#peers.size;
  }
}

/** Sets `outer[key][inner] = until`, most recently written last, within both bounds. */
function touch(outer: Map<string, Map<string, number>>, key: string, inner: string, until: number, maxOuter: number, maxInner: number): void {
  let m = outer.get(key);
  if (m === undefined) {
    if (outer.size >= maxOuter) outer.delete(outer.keys().next().value as string);
    m = new Map();
  } else outer.delete(key);
  outer.set(key, m);
  m.delete(inner);
  if (m.size >= maxInner) m.delete(m.keys().next().value as string);
  m.set(inner, until);
}

/** The canonical text of an IP, an IPv4-mapped IPv6 address as plain IPv4; undefined when not an IP. */
export function plainIp(text: string): string | undefined {
  try {
    const ip = canonicalIp(text);
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
    return mapped === null ? ip : mapped[1];
  } catch {
    return undefined;
  }
}

/** Whether two IPs are the same source: equal for IPv4, the same /64 for IPv6. */
export function sameSource(a: string, b: string): boolean {
  const pa = plainIp(a);
  const pb = plainIp(b);
  if (pa === undefined || pb === undefined) return false;
  try {
    const x = ipToBytes(pa);
    const y = ipToBytes(pb);
    if (x.length !== y.length) return false;
    const n = x.length === 16 ? 8 : 4;
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
    return true;
  } catch {
    return false;
  }
}

function candidateLines(m: SignallingMessage): readonly string[] {
  if (m.type === 'offer' || m.type === 'answer') return m.candidates;
  if (m.type === 'candidate') return [m.candidate];
  return [];
}

/**
 * Records in `scope` what a relayed message lets its receiver relay toward: each candidate of the
 * sender on the sender's own source address (`source`), and each relayed candidate (`relay`).
 * Any other candidate (an address the sender merely names, such as a dual-stack peer's address
 * in the family it did not register from) is only a claim: it comes into scope once the sender
 * has proved it receives there (see {@link RelayScope.sighted}), never on its word, so that two
 * colluding keys cannot point a relay at a third party. Returns how many addresses were recorded
 * in scope (claims not counted).
 */
export function recordSignalledCandidates(scope: RelayScope, m: SignallingMessage & { from: string; to: string }, senderIp: string, now: number): number {
  let n = 0;
  for (const line of candidateLines(m)) {
    let ip: string | undefined;
    let type: string;
    try {
      const c = parseCandidate(line);
      ip = plainIp(c.address);
      type = c.type;
    } catch {
      continue; // a line the parser refuses: nothing to record
    }
    if (ip === undefined) continue; // a host name (mDNS): nothing to relay toward
    if (sameSource(ip, senderIp)) scope.add(m.to, ip, 'source', now);
    else if (type === 'relay') scope.add(m.to, ip, 'relay', now);
    else {
      scope.claim?.(m.to, ip, m.from, now);
      continue;
    }
    n++;
  }
  return n;
}
