import type { AddressFamily, TransportAddress } from '@nat/protocol';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import type { ClientEndpoint } from './allocation.js';
import type { TurnAuthenticator } from './auth.js';
import type { PeerPolicyInit } from './peer-policy.js';
import type { RelayTierPolicy } from './tiers.js';

/** What the TURN core asks its driver to do. */
export type TurnOutput =
  /** Send bytes to a client over the 5-tuple's transport (stream transports: already framed). */
  | { readonly kind: 'to-client'; readonly endpoint: ClientEndpoint; readonly bytes: Uint8Array }
  /** Send a datagram from an allocation's relay socket of the peer's family to the peer. */
  | { readonly kind: 'to-peer'; readonly allocation: number; readonly peer: TransportAddress; readonly bytes: Uint8Array }
  /**
   * Open the relay socket(s) of a new allocation, then call `relayOpened` or `relayFailed`.
   * `evenPort` asks for an even port; `reserveNext` also reserves port + 1 under
   * `reservationToken`; `reservationToken` on its own asks for the port reserved under it.
   */
  | {
      readonly kind: 'open-relay';
      readonly allocation: number;
      /** 'udp' (RFC 8656) or 'tcp' (RFC 6062: a listening TCP socket on the relayed address). */
      readonly transport: 'udp' | 'tcp';
      readonly families: readonly AddressFamily[];
      readonly evenPort: boolean;
      readonly reserveNext: boolean;
      readonly reservationToken: Uint8Array | undefined;
      readonly newReservationToken: Uint8Array | undefined;
    }
  /** Close an allocation's relay socket(s). */
  | { readonly kind: 'close-relay'; readonly allocation: number }
  /** RFC 6062 Connect: open a TCP connection from the relay to the peer, then call tcpConnected/tcpConnectFailed. */
  | { readonly kind: 'tcp-connect'; readonly allocation: number; readonly connectionId: number; readonly peer: TransportAddress }
  /** RFC 6062 ConnectionBind succeeded: after the response, the client's data connection becomes a raw pipe to the peer connection. */
  | { readonly kind: 'tcp-bind'; readonly connectionId: number; readonly endpoint: ClientEndpoint }
  /** Close a peer TCP connection (never bound in time, or its allocation is gone). */
  | { readonly kind: 'tcp-close'; readonly connectionId: number };

/** Options of the TURN core. Every option has its default documented. */
/** Where an authenticated Allocate of `username` from `endpoint` is redirected (300), or undefined to serve it here. */
export type AlternateServerOf = (username: string, endpoint: ClientEndpoint) => TransportAddress | undefined;

export interface TurnCoreInit {
  /** The REALM (RFC 8489 section 9.2). Required. */
  readonly realm: string;
  /** Where long-term keys come from. Required. */
  readonly auth: TurnAuthenticator;
  /** Families the relay can allocate in (the driver has a relay IP for them). Default ['IPv4']. */
  readonly relayFamilies?: readonly AddressFamily[];
  /** Peer address policy. Default: refuse loopback, private, link-local, multicast and the like. */
  readonly peers?: PeerPolicyInit;
  /** Allocation lifetime when the client asks for none or less, in seconds. Default 600 (RFC 8656). */
  readonly defaultLifetime?: number;
  /** Longest allocation lifetime granted, in seconds. Default 3600 (RFC 8656). */
  readonly maxLifetime?: number;
  /**
   * Allocations and reserved ports one user may hold (486 beyond); REST usernames count without
   * their expiry. A tier's users (see `tiers`) are held to their tier's own per-user limit instead.
   * Default 10.
   */
  readonly userQuota?: number;
  /** Allocations and reserved ports one source IPv4 address or IPv6 /64 may hold (486 beyond). Default 64. */
  readonly sourceQuota?: number;
  /** Allocations and reserved ports the server holds at once (508 beyond). Default 10,000. */
  readonly totalQuota?: number;
  /** RFC 6062 peer connections one TCP allocation may open with Connect (508 beyond). Default 64. */
  readonly tcpConnectsPerAllocation?: number;
  /** RFC 6062 peer connections peers may open to one TCP allocation (closed beyond). Default 64. */
  readonly tcpIncomingPerAllocation?: number;
  /** Permissions one allocation may hold (508 beyond). Default 100. */
  readonly maxPermissions?: number;
  /** Channels one allocation may bind (508 beyond). Default 100. */
  readonly maxChannels?: number;
  /** Relayed bytes per second per allocation, both directions together; 0 = unlimited. Default 0. */
  readonly bandwidth?: number;
  /**
   * Redirect every authenticated Allocate here with 300 (RFC 8489 ALTERNATE-SERVER); a function
   * picks the address per request (its user and the client's transport and endpoint), undefined
   * to serve it here (how `nat-server --workers` sends each user to the worker that owns it).
   * Default none.
   */
  readonly alternateServer?: TransportAddress | AlternateServerOf;
  /** SOFTWARE in responses. Default none. */
  readonly software?: string;
  /** Nonce lifetime in ms. Default 600,000. */
  readonly nonceLifetimeMs?: number;
  /**
   * The key nonces are made with. Default a random one per core. Servers that take turns on one
   * socket (the workers of `nat-server --workers`) share one, so a nonce issued by any of them is
   * valid at all of them.
   */
  readonly nonceSecret?: Uint8Array;
  /**
   * Accept only RFC 8656's channel numbers 0x4000-0x4FFF. Default false: RFC 5766's 0x4000-0x7FFF
   * are accepted too, as coturn does (its turnutils_uclient and other older clients bind them).
   */
  readonly strictChannelNumbers?: boolean;
  /** Allow TCP relay allocations (RFC 6062) for clients on TCP/TLS. Default true. */
  readonly tcpRelay?: boolean;
  /**
   * Error answers (401/438 challenges included) to unauthenticated requests per second per source
   * (an IPv4 address or an IPv6 /64), with bursts of twice that. Default 50.
   */
  readonly unauthenticatedRate?: number;
  /** Trust tiers (e.g. `RelayTiers`): narrower leases for some users' allocations. Default none: every user relays as configured. */
  readonly tiers?: RelayTierPolicy;
  readonly logger?: Logger;
  /** Where allocation, authentication, refusal, rate-limit and relayed-traffic events go. Default none (`noEvents`). */
  readonly events?: ServerEventSink;
}

/** Counters of the TURN core. */
export interface TurnStats {
  allocations: number;
  allocationsCreated: number;
  unauthorized: number;
  forbidden: number;
  quotaRejected: number;
  /** RFC 6062 Connects refused (508) and incoming peer connections closed over an allocation's share. */
  tcpRefused: number;
  /** Unauthenticated requests left unanswered by the per-source rate limit. */
  rateLimited: number;
  relayedToPeer: number;
  relayedToClient: number;
  dropped: number;
}
