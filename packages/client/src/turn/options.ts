import type { AddressFamily } from '@nat/protocol';
import type { RetransmissionOptions } from '../transaction/options.js';

/** How the client reaches the TURN server (RFC 8656 section 3.1). */
export type TurnTransport = 'udp' | 'tcp' | 'tls';

/**
 * The password algorithm of the long-term credential mechanism (RFC 8489 section 9.2.2).
 * `'MD5'` (MESSAGE-INTEGRITY with the MD5 key) works with every TURN server; `'SHA-256'`
 * (MESSAGE-INTEGRITY-SHA256 with the SHA-256 key) needs a server that offers it in
 * PASSWORD-ALGORITHMS.
 */
export type TurnPasswordAlgorithm = 'MD5' | 'SHA-256';

/** What an allocation asks the server for, and how the client keeps it alive. */
export interface TurnAllocationOptions {
  /** Long-term credential username. Required. */
  readonly username: string;
  /** Long-term credential password. Required. */
  readonly password: string;
  /**
   * The transport to the server. Over UDP every request is retransmitted (RFC 8489 section
   * 6.2.1); over TCP and TLS it is sent once and ChannelData is padded to 4 bytes (RFC 8656
   * section 12.5). Default `'udp'`.
   */
  readonly transport?: TurnTransport;
  /** Password algorithm. Default `'MD5'`. */
  readonly passwordAlgorithm?: TurnPasswordAlgorithm;
  /** LIFETIME to ask for, in seconds (the server clamps it; RFC 8656 section 7.2). Default: none sent. */
  readonly lifetime?: number;
  /** REQUESTED-ADDRESS-FAMILY (RFC 8656 section 18.6). Default: none sent (the server relays on IPv4). */
  readonly requestedAddressFamily?: AddressFamily;
  /**
   * Ask for an IPv6 relayed address as well as the IPv4 one (ADDITIONAL-ADDRESS-FAMILY, RFC 8656
   * section 18.11). Default false.
   */
  readonly additionalIPv6?: boolean;
  /**
   * EVEN-PORT (RFC 8656 section 18.7): ask for an even relay port, and with `reserve` also
   * reserve the next port (the response then carries a RESERVATION-TOKEN). Default: none sent.
   */
  readonly evenPort?: { readonly reserve: boolean };
  /** RESERVATION-TOKEN from an earlier allocation's EVEN-PORT reservation. Default: none sent. */
  readonly reservationToken?: Uint8Array;
  /**
   * DONT-FRAGMENT (RFC 8656 section 18.9) in the Allocate request and every Send indication:
   * ask the relay to set the DF bit toward peers. Default false.
   */
  readonly dontFragment?: boolean;
  /** SOFTWARE attribute in requests. Default: none sent. */
  readonly software?: string;
  /** Append FINGERPRINT to requests (RFC 8489 section 14.7). Default true. */
  readonly fingerprint?: boolean;
  /** Request timing (RTO, Rc, Rm over UDP; Ti over TCP/TLS). Default: RFC 8489 (500 ms, 7, 16, 39.5 s). */
  readonly retransmission?: RetransmissionOptions;
  /**
   * Refresh the allocation this long before it expires, in seconds; never earlier than half its
   * lifetime. RFC 8656 section 7.3 suggests a minute. Default 60.
   */
  readonly refreshMargin?: number;
  /**
   * Refresh each permission this long after it was installed, in milliseconds. Permissions live
   * 300 s (RFC 8656 section 9). Default 240,000.
   */
  readonly permissionRefreshMs?: number;
  /**
   * Refresh each channel binding this long after it was made, in milliseconds. Bindings live
   * 600 s (RFC 8656 section 12). Default 540,000.
   */
  readonly channelRefreshMs?: number;
  /**
   * Packets held back while waiting for a permission (all peers together); beyond this,
   * `send` drops and returns `'dropped'`. Default 256.
   */
  readonly maxQueuedPackets?: number;
}

/** Timing defaults of the allocation core. */
export const TURN_DEFAULTS = Object.freeze({
  /** RFC 8656 section 7.3 suggests refreshing a minute before the allocation expires. */
  refreshMargin: 60,
  /** RFC 8656 section 9: permissions last 300 s; refresh a minute early. */
  permissionRefreshMs: 240_000,
  /** RFC 8656 section 12: channel bindings last 600 s; refresh a minute early. */
  channelRefreshMs: 540_000,
  maxQueuedPackets: 256,
  /** The lifetime assumed for permissions (RFC 8656 section 9). */
  permissionLifetimeMs: 300_000,
  /** The lifetime assumed for channel bindings (RFC 8656 section 12). */
  channelLifetimeMs: 600_000,
  /** Stale-nonce retries of one operation before it fails. */
  maxStaleNonceRetries: 3,
  /** XOR-PEER-ADDRESS attributes in one CreatePermission refresh. */
  maxPeersPerPermissionRequest: 32,
});
