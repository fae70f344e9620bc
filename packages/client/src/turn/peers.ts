import { CHANNEL_NUMBER_MAX, CHANNEL_NUMBER_MIN, ParseError, type TransportAddress, canonicalIp, ipFamily } from '@nat/protocol';
import { StunClientError } from '../errors.js';

/** A permission toward one peer IP (RFC 8656 section 9): ports do not matter. */
export interface Permission {
  readonly ip: string;
  /** Confirmed by a CreatePermission or ChannelBind success at least once. */
  installed: boolean;
  /** When the server forgets it, unless refreshed (ms). */
  expiresAt: number;
  /** When the client refreshes it (ms). */
  refreshAt: number;
  /** CreatePermission and ChannelBind requests for this IP under way. */
  inFlight: number;
}

/** A channel binding (RFC 8656 section 12). */
export interface Channel {
  readonly number: number;
  readonly peer: TransportAddress;
  readonly key: string;
  /** Confirmed by a ChannelBind success: ChannelData may be sent. */
  bound: boolean;
  expiresAt: number;
  refreshAt: number;
  inFlight: boolean;
}

const CANONICAL_CACHE_MAX = 4096;
/** IP text as given -> its canonical text and family: parsing stays off the send path. */
const canonicalCache = new Map<string, { readonly address: string; readonly family: 'IPv4' | 'IPv6' }>();

function canonical(ip: string): { readonly address: string; readonly family: 'IPv4' | 'IPv6' } {
  let c = canonicalCache.get(ip);
  if (c !== undefined) return c;
  try {
    const address = canonicalIp(ip);
    c = { address, family: ipFamily(address) ?? 'IPv4' };
  } catch (e) {
    if (e instanceof ParseError) throw new StunClientError('BAD_ADDRESS', `not an IP address: ${JSON.stringify(ip)}`, { cause: e });
    throw e;
  }
  if (canonicalCache.size >= CANONICAL_CACHE_MAX) canonicalCache.clear();
  canonicalCache.set(ip, c);
  return c;
}

/**
 * The canonical text of a peer IP (so that `::FFFF:1.2.3.4` and `::ffff:1.2.3.4` are one
 * peer). Throws a `BAD_ADDRESS` StunClientError for text that is not an IP address.
 */
export function canonicalPeerIp(ip: string): string {
  return canonical(ip).address;
}

/** A peer transport address with its IP made canonical; throws `BAD_ADDRESS` for a bad one. */
export function canonicalPeer(peer: TransportAddress): TransportAddress {
  const c = canonical(peer.address);
  if (!Number.isInteger(peer.port) || peer.port < 0 || peer.port > 65535) {
    throw new StunClientError('BAD_ADDRESS', `bad peer port ${String(peer.port)}`);
  }
  return c.address === peer.address && c.family === peer.family ? peer : { family: c.family, address: c.address, port: peer.port };
}

/** The map key of a peer transport address with a canonical IP. */
export function peerKey(peer: TransportAddress): string {
  return `${peer.address}|${peer.port}`;
}

/** A packet waiting for its peer's permission. */
interface Queued {
  readonly peer: TransportAddress;
  readonly data: Uint8Array;
}

/**
 * The allocation's permissions, channels and the packets waiting for a permission: the
 * bookkeeping of RFC 8656 sections 9 and 12 on the client side, with no timers of its own.
 */
export class PeerTable {
  readonly permissions = new Map<string, Permission>();
  readonly channels = new Map<number, Channel>();
  readonly channelByPeer = new Map<string, Channel>();
  readonly #queues = new Map<string, Queued[]>();
  #queued = 0;
  #nextChannel = CHANNEL_NUMBER_MIN;

  /** Packets waiting, all peers together. */
  get queued(): number {
    return this.#queued;
  }

  /** The permission of an IP (canonical), made if absent. */
  permission(ip: string): Permission {
    let p = this.permissions.get(ip);
    if (p === undefined) {
      p = { ip, installed: false, expiresAt: 0, refreshAt: Number.POSITIVE_INFINITY, inFlight: 0 };
      this.permissions.set(ip, p);
    }
    return p;
  }

  /** Whether data may be sent toward `ip` now under an installed, unexpired permission. */
  permitted(ip: string, now: number): boolean {
    const p = this.permissions.get(ip);
    return p !== undefined && p.installed && now < p.expiresAt;
  }

  /** A permission was confirmed at `now`. */
  installed(ip: string, now: number, lifetimeMs: number, refreshMs: number): void {
    const p = this.permission(ip);
    p.installed = true;
    p.expiresAt = now + lifetimeMs;
    p.refreshAt = now + refreshMs;
  }

  /**
   * A free channel number, lowest first from 0x4000 (RFC 8656 section 12: 0x4000-0x4FFF), or
   * undefined when all 4096 are taken.
   */
  freeChannelNumber(): number | undefined {
    const span = CHANNEL_NUMBER_MAX - CHANNEL_NUMBER_MIN + 1;
    for (let i = 0; i < span; i++) {
      const n = CHANNEL_NUMBER_MIN + ((this.#nextChannel - CHANNEL_NUMBER_MIN + i) % span);
      if (!this.channels.has(n)) {
        this.#nextChannel = n + 1 > CHANNEL_NUMBER_MAX ? CHANNEL_NUMBER_MIN : n + 1;
        return n;
      }
    }
    return undefined;
  }

  /** Adds a channel binding under way. */
  addChannel(number: number, peer: TransportAddress, key: string): Channel {
    const c: Channel = { number, peer, key, bound: false, expiresAt: 0, refreshAt: Number.POSITIVE_INFINITY, inFlight: false };
    this.channels.set(number, c);
    this.channelByPeer.set(key, c);
    return c;
  }

  /** Forgets a channel binding. */
  removeChannel(c: Channel): void {
    if (this.channels.get(c.number) === c) this.channels.delete(c.number);
    if (this.channelByPeer.get(c.key) === c) this.channelByPeer.delete(c.key);
  }

  /** Queues a packet for `ip`; false when `max` packets are already waiting. */
  enqueue(ip: string, peer: TransportAddress, data: Uint8Array, max: number): boolean {
    if (this.#queued >= max) return false;
    let q = this.#queues.get(ip);
    if (q === undefined) {
      q = [];
      this.#queues.set(ip, q);
    }
    q.push({ peer, data });
    this.#queued++;
    return true;
  }

  /** Takes the packets waiting for `ip`. */
  takeQueue(ip: string): readonly Queued[] {
    const q = this.#queues.get(ip);
    if (q === undefined) return [];
    this.#queues.delete(ip);
    this.#queued -= q.length;
    return q;
  }

  /** Forgets everything (the allocation is gone); returns the number of packets dropped. */
  clear(): number {
    const dropped = this.#queued;
    this.permissions.clear();
    this.channels.clear();
    this.channelByPeer.clear();
    this.#queues.clear();
    this.#queued = 0;
    return dropped;
  }
}
