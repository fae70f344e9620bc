/**
 * The TURN client core's data path (RFC 8656 sections 10 and 12): application data out as
 * ChannelData on a confirmed channel or in Send indications, what waited for a permission
 * flushed once it is installed, and data in from ChannelData and Data indications, checked
 * against the channels and permissions. No I/O: it writes to the core's output and event
 * queues; used by `core.ts`.
 */
import {
  Attr,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeChannelData,
  encodeChannelData,
  encodeStunMessage,
  verifyFingerprint,
} from '@nat/protocol';
import type { TurnAllocationStats, TurnEvent } from './events.js';
import { type Channel, type PeerTable, peerKey } from './peers.js';

/** What the data path writes to and reads: the core's queues, counters and peer table. */
export interface DataPathInit {
  readonly out: Uint8Array[];
  readonly events: TurnEvent[];
  readonly stats: TurnAllocationStats;
  readonly peers: PeerTable;
  /** TCP or TLS to the server: ChannelData is padded (RFC 8656 section 12.5). */
  readonly reliable: boolean;
  /** DONT-FRAGMENT on Send indications. */
  readonly dontFragment: boolean;
}

/** The data path of one allocation; see the module documentation. */
export class TurnDataPath {
  readonly #d: DataPathInit;

  constructor(init: DataPathInit) {
    this.#d = init;
  }

  /** The confirmed, unexpired channel to `peer` (canonical), if any. */
  boundChannel(peer: TransportAddress, now: number): Channel | undefined {
    const c = this.#d.peers.channelByPeer.get(peerKey(peer));
    return c !== undefined && c.bound && now < c.expiresAt ? c : undefined;
  }

  sendChannelData(c: Channel, data: Uint8Array): void {
    // RFC 8656 section 12.5: over TCP and TLS, ChannelData is padded to a multiple of 4 bytes.
    this.#d.out.push(encodeChannelData(c.number, data, { padded: this.#d.reliable }));
    this.#d.stats.channelDataSent++;
  }

  sendIndication(peer: TransportAddress, data: Uint8Array): void {
    const attributes = [attr(Attr.XorPeerAddress, peer), attr(Attr.Data, data)];
    if (this.#d.dontFragment) attributes.push(attr(Attr.DontFragment, true));
    this.#d.out.push(encodeStunMessage({ method: StunMethod.Send, class: StunClass.Indication, attributes }));
    this.#d.stats.indicationsSent++;
  }

  /** Sends what waited for the permission toward `ip`. */
  flush(ip: string, now: number): void {
    for (const q of this.#d.peers.takeQueue(ip)) {
      const c = this.boundChannel(q.peer, now);
      if (c !== undefined) this.sendChannelData(c, q.data);
      else this.sendIndication(q.peer, q.data);
    }
  }

  /** A ChannelData message from the server. */
  onChannelData(bytes: Uint8Array): void {
    const { stats } = this.#d;
    let number: number;
    let data: Uint8Array;
    try {
      ({ channel: number, data } = decodeChannelData(bytes));
    } catch {
      stats.dropped++;
      return;
    }
    // RFC 8656 section 12.7: ChannelData on a channel that is not bound is discarded.
    const c = this.#d.peers.channels.get(number);
    if (c === undefined) {
      stats.dropped++;
      return;
    }
    stats.received++;
    this.#d.events.push({ type: 'data', peer: c.peer, data, channel: number });
  }

  /** A Data indication from the server. */
  onDataIndication(m: StunMessage): void {
    if (m.fingerprintOffset >= 0 && !verifyFingerprint(m)) return;
    const { stats, events } = this.#d;
    let peer: TransportAddress | undefined;
    let data: Uint8Array | undefined;
    try {
      peer = m.get(Attr.XorPeerAddress);
      data = m.get(Attr.Data);
      if (peer !== undefined && data === undefined) {
        const icmp = m.get(Attr.Icmp);
        if (icmp !== undefined) events.push({ type: 'icmp', peer, icmp });
        return;
      }
    } catch {
      peer = undefined;
    }
    // RFC 8656 section 10.4: the peer must be one we gave a permission to.
    if (peer === undefined || data === undefined || !this.#d.peers.permissions.has(peer.address)) {
      stats.dropped++;
      return;
    }
    stats.received++;
    events.push({ type: 'data', peer, data, channel: undefined });
  }
}
