import type { AddressErrorCodeValue, IcmpValue, TransportAddress } from '@nat/protocol';
import type { StunClientError } from '../errors.js';

/** What the server granted: the result of a successful Allocate (RFC 8656 section 7.3). */
export interface TurnAllocationInfo {
  /** The relayed transport address, the first XOR-RELAYED-ADDRESS. */
  readonly relayedAddress: TransportAddress;
  /** Every XOR-RELAYED-ADDRESS: two with ADDITIONAL-ADDRESS-FAMILY (IPv4 then IPv6). */
  readonly relayedAddresses: readonly TransportAddress[];
  /** The client's server-reflexive address (XOR-MAPPED-ADDRESS), when the server sent it. */
  readonly mappedAddress: TransportAddress | undefined;
  /** Granted lifetime, in seconds. */
  readonly lifetime: number;
  /** RESERVATION-TOKEN for the next port, when EVEN-PORT asked for one to be reserved. */
  readonly reservationToken: Uint8Array | undefined;
  /** ADDRESS-ERROR-CODE: why the additional address family was not allocated. */
  readonly addressError: AddressErrorCodeValue | undefined;
}

/** Application data from a peer, relayed by the server. */
export interface TurnPeerData {
  /** The peer it came from. */
  readonly peer: TransportAddress;
  /** The data: a view of the received bytes. */
  readonly data: Uint8Array;
  /** The channel it came on, or undefined for a Data indication. */
  readonly channel: number | undefined;
}

/**
 * What the allocation core reports, in the order things happened. `op` ties the outcome of a
 * `createPermission` or `bindChannel` call to that call; automatic refreshes carry no `op`.
 */
export type TurnEvent =
  /** The Allocate succeeded. */
  | { readonly type: 'allocated'; readonly allocation: TurnAllocationInfo }
  /** A Refresh succeeded; the allocation now lives `lifetime` more seconds. */
  | { readonly type: 'refreshed'; readonly lifetime: number }
  /**
   * The server answered the Allocate with 300 Try Alternate (RFC 8489 section 10): allocate at
   * `alternateServer` instead (over TLS, checking the certificate for `alternateDomain`). Final.
   */
  | { readonly type: 'redirect'; readonly alternateServer: TransportAddress; readonly alternateDomain: string | undefined }
  /** A CreatePermission succeeded (`error` undefined) or failed. */
  | { readonly type: 'permission'; readonly op: number | undefined; readonly peers: readonly string[]; readonly error: StunClientError | undefined }
  /** A ChannelBind succeeded (`error` undefined) or failed. */
  | {
      readonly type: 'channel';
      readonly op: number | undefined;
      readonly channel: number;
      readonly peer: TransportAddress;
      readonly error: StunClientError | undefined;
    }
  /** Data from a peer (a Data indication or ChannelData). */
  | ({ readonly type: 'data' } & TurnPeerData)
  /** The relay got an ICMP error sending to a peer (RFC 8656 section 11.5). */
  | { readonly type: 'icmp'; readonly peer: TransportAddress; readonly icmp: IcmpValue }
  /** The Allocate failed, or the allocation was lost (refresh refused or timed out). Final. */
  | { readonly type: 'failed'; readonly error: StunClientError }
  /** The allocation ended after `close()` (deallocated, or abandoned by `abort()`). Final. */
  | { readonly type: 'closed' };

/** What `send` did with a packet. */
export type TurnSendResult =
  /** Sent as ChannelData on a confirmed channel. */
  | 'channel'
  /** Sent in a Send indication under an installed permission. */
  | 'indication'
  /** Held until the permission for the peer is confirmed (a CreatePermission is under way). */
  | 'queued'
  /** Dropped: the queue is full, or there is no allocation. */
  | 'dropped';

/** Counters of an allocation. */
export interface TurnAllocationStats {
  /** ChannelData messages sent. */
  channelDataSent: number;
  /** Send indications sent. */
  indicationsSent: number;
  /** Packets received from peers (ChannelData and Data indications). */
  received: number;
  /** Packets dropped: queue full, permission refused, or received from a peer with no permission or channel. */
  dropped: number;
  /** Requests sent, retransmissions included. */
  requests: number;
}
