import { type SignallingMessage, canonicalIp, ipToBytes, parseCandidate } from '@nat/protocol';

/**
 * How an address came into a peer's relay scope:
 * - `source`: the other side signalled a candidate on the very address (IPv6: the /64) its own
 *   rendezvous connection comes from, so a peer is running there;
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

  /** Peers with a scope (for tests and stats). */
  get size(): number {
    return this.#peers.size;
  }
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
 * Other candidates (an address the sender merely names) are not recorded: two colluding keys
 * must not be able to point a relay at a third party. Returns how many addresses were recorded.
 */
export function recordSignalledCandidates(scope: RelayScope, m: SignallingMessage & { to: string }, senderIp: string, now: number): number {
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
    else continue;
    n++;
  }
  return n;
}
