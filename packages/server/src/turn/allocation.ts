import type { AddressFamily, TransportAddress } from '@nat/protocol';

/** The client side of an allocation: RFC 8656's 5-tuple, with a key the driver computes. */
export interface ClientEndpoint {
  /** Unique per 5-tuple (e.g. `udp|203.0.113.7|40000|192.0.2.1|3478`, or a connection id). */
  readonly key: string;
  readonly client: TransportAddress;
  readonly server: TransportAddress;
  readonly transport: 'udp' | 'tcp' | 'tls';
}

/** A channel binding (RFC 8656 section 12): a number standing for one peer transport address. */
export interface Channel {
  readonly number: number;
  readonly peer: TransportAddress;
  readonly peerKey: string;
  expiresAt: number;
}

/** The relayed transport address(es) of an allocation: one per family (RFC 8656 dual allocation). */
export type RelayedAddresses = Partial<Record<AddressFamily, TransportAddress>>;

/** One allocation's state. Plain data: the core mutates it; nothing here does I/O. */
export class Allocation {
  readonly id: number;
  readonly endpoint: ClientEndpoint;
  readonly username: string;
  /** The long-term key the allocation was authenticated with (signs its responses). */
  readonly key: Uint8Array;
  /** 'sha1' for MESSAGE-INTEGRITY, 'sha256' for MESSAGE-INTEGRITY-SHA256. */
  readonly mac: 'sha1' | 'sha256';
  relayed: RelayedAddresses = {};
  /** 'udp' relay (RFC 8656) or 'tcp' relay (RFC 6062). */
  transport: 'udp' | 'tcp' = 'udp';
  /** Families the relay sockets are being opened for. */
  readonly families: AddressFamily[];
  expiresAt: number;
  /** Peer IP (canonical text) -> expiry. RFC 8656 section 9: permissions are per IP, ports ignored. */
  readonly permissions = new Map<string, number>();
  readonly channels = new Map<number, Channel>();
  readonly channelByPeer = new Map<string, number>();
  /** The Allocate transaction that created it, to answer its retransmissions (RFC 8656 section 7.2). */
  allocateTransaction = '';
  allocateResponse: Uint8Array | undefined;
  /** Bytes left in the current bandwidth window. */
  tokens: number;
  tokensAt: number;
  /** The trust tier it was allocated under (e.g. 'anonymous'), or undefined for an operator's user. */
  tier: string | undefined = undefined;
  /** Counters: relayed packets and bytes each way, dropped packets, and those dropped over a bandwidth cap. */
  toPeerPackets = 0;
  toPeerBytes = 0;
  toClientPackets = 0;
  toClientBytes = 0;
  dropped = 0;
  overBandwidth = 0;
  /** The counters the last `relayed` (and bandwidth `refused`) event covered, and when it was emitted. */
  readonly reported = { toPeerPackets: 0, toPeerBytes: 0, toClientPackets: 0, toClientBytes: 0, overBandwidth: 0, at: 0 };

  constructor(
    id: number,
    endpoint: ClientEndpoint,
    username: string,
    key: Uint8Array,
    mac: 'sha1' | 'sha256',
    families: AddressFamily[],
    expiresAt: number,
    burst: number,
    now: number,
  ) {
    this.id = id;
    this.endpoint = endpoint;
    this.username = username;
    this.key = key;
    this.mac = mac;
    this.families = families;
    this.expiresAt = expiresAt;
    this.tokens = burst;
    this.tokensAt = now;
    this.reported.at = now;
  }

  /** True once every relay socket is open. */
  get ready(): boolean {
    return this.families.every((f) => this.relayed[f] !== undefined);
  }

  hasPermission(peerIp: string, now: number): boolean {
    const until = this.permissions.get(peerIp);
    return until !== undefined && until > now;
  }
}

/** `ip|port`: the key of a peer transport address. */
export function peerKey(a: TransportAddress): string {
  return `${a.address}|${a.port}`;
}
