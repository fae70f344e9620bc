import {
  type AddressFamily,
  Attr,
  type AttributeEntry,
  DecodeError,
  PasswordAlgorithm,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  canonicalIp,
  decodeStunMessage,
  encodeChannelData,
  encodeStunMessage,
  errorCode,
  isLegacyChannelNumber,
  isValidChannelNumber,
  verifyFingerprint,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
  sourceKey,
} from '@nat/protocol';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { boundedErrorAttributes } from '../stun/error-answer.js';
import { RateLimiter } from '../stun/rate-limiter.js';
import { Allocation, type ClientEndpoint, peerKey } from './allocation.js';
import type { TurnAuthenticator } from './auth.js';
import { NonceIssuer } from './nonce.js';
import { PeerPolicy, type PeerPolicyInit } from './peer-policy.js';
import { RESERVATION_COUNTED_MS, TurnQuotas, quotaUser, tokenKey } from './quota.js';
import { type TcpOrigin, TcpPeerLimits } from './tcp-limits.js';
import { type RelayLease, type RelayTierPolicy, isRelayRefusal } from './tiers.js';

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
  /** Allocations and reserved ports one user may hold (486 beyond); REST usernames count without their expiry. Default 10. */
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
  /** Redirect every authenticated Allocate here with 300 (RFC 8489 ALTERNATE-SERVER). Default none. */
  readonly alternateServer?: TransportAddress;
  /** SOFTWARE in responses. Default none. */
  readonly software?: string;
  /** Nonce lifetime in ms. Default 600,000. */
  readonly nonceLifetimeMs?: number;
  /**
   * Accept only RFC 8656's channel numbers 0x4000-0x4FFF. Default false: RFC 5766's 0x4000-0x7FFF
   * are accepted too, as coturn does (its turnutils_uclient and other older clients bind them).
   */
  readonly strictChannelNumbers?: boolean;
  /** Allow TCP relay allocations (RFC 6062) for clients on TCP/TLS. Default true. */
  readonly tcpRelay?: boolean;
  /** Unauthenticated requests per second per client IP (401 answers cost the server). Default 50. */
  readonly unauthenticatedRate?: number;
  /** Trust tiers (e.g. `RelayTiers`): narrower leases for some users' allocations. Default none: every user relays as configured. */
  readonly tiers?: RelayTierPolicy;
  readonly logger?: Logger;
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

const PERMISSION_LIFETIME = 300_000; // RFC 8656 section 9: 300 seconds
const CHANNEL_LIFETIME = 600_000; // RFC 8656 section 12: 10 minutes
const TRANSPORT_UDP = 17;
/** PASSWORD-ALGORITHMS offered in 401 and 438 answers (RFC 8489 section 14.11); a client picks the first it supports. */
const OFFERED_ALGORITHMS: readonly PasswordAlgorithm[] = [PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256];
const TRANSPORT_TCP = 6;
/** RFC 6062 section 5.3: a peer connection not bound by the client within 30 s is closed. */
const CONNECTION_BIND_TIMEOUT = 30_000;

/** A TCP connection between the relay and a peer (RFC 6062). */
interface TcpConnection {
  readonly id: number;
  readonly allocation: number;
  readonly peer: TransportAddress;
  state: 'connecting' | 'pending-bind' | 'bound';
  readonly origin: TcpOrigin;
  /** The Connect request to answer when the connection is up. */
  connect?: StunMessage;
  expiresAt: number;
}

// Attributes a TURN server understands in requests (RFC 8489 section 7.3.1: others that are
// comprehension-required get 420).
const UNDERSTOOD = new Set<number>(
  [
    Attr.Username,
    Attr.MessageIntegrity,
    Attr.MessageIntegritySha256,
    Attr.Realm,
    Attr.Nonce,
    Attr.PasswordAlgorithm,
    Attr.Userhash,
    Attr.ChannelNumber,
    Attr.Lifetime,
    Attr.XorPeerAddress,
    Attr.Data,
    Attr.RequestedAddressFamily,
    Attr.EvenPort,
    Attr.RequestedTransport,
    Attr.DontFragment,
    Attr.ReservationToken,
    Attr.XorMappedAddress,
    Attr.ConnectionId,
  ].map((s) => s.type),
);

class Reject {
  constructor(
    readonly code: number,
    readonly reason?: string,
    readonly extra: AttributeEntry[] = [],
  ) {}
}

/**
 * The TURN server (RFC 8656), sans I/O. Feed it what clients and peers send, with the time;
 * drain the outputs and carry them out. Allocations, permissions and channels expire on
 * `sweep(now)`. Binding requests are not its business: the caller hands those to the STUN
 * responder.
 */
export class TurnCore {
  readonly realm: string;
  readonly stats: TurnStats = {
    allocations: 0,
    allocationsCreated: 0,
    unauthorized: 0,
    forbidden: 0,
    quotaRejected: 0,
    tcpRefused: 0,
    rateLimited: 0,
    relayedToPeer: 0,
    relayedToClient: 0,
    dropped: 0,
  };
  readonly #auth: TurnAuthenticator;
  readonly #families: readonly AddressFamily[];
  readonly #policy: PeerPolicy;
  readonly #defaultLifetime: number;
  readonly #maxLifetime: number;
  readonly #quotas: TurnQuotas;
  readonly #tcpLimits: TcpPeerLimits;
  readonly #maxPermissions: number;
  readonly #maxChannels: number;
  readonly #bandwidth: number;
  readonly #alternate: TransportAddress | undefined;
  readonly #software: string | undefined;
  readonly #legacyChannels: boolean;
  readonly #tcpRelay: boolean;
  readonly #tcp = new Map<number, TcpConnection>();
  readonly #nonces: NonceIssuer;
  readonly #limiter: RateLimiter;
  readonly #log: Logger;
  readonly #byEndpoint = new Map<string, Allocation>();
  readonly #byId = new Map<number, Allocation>();
  readonly #tiers: RelayTierPolicy | undefined;
  readonly #leases = new Map<number, RelayLease>();
  #nextId = 1;
  #now = 0; // the time of the message being handled (for the error answers' rate limit)
  #out: TurnOutput[] = [];

  constructor(init: TurnCoreInit) {
    this.realm = init.realm;
    this.#auth = init.auth;
    this.#families = init.relayFamilies ?? ['IPv4'];
    this.#policy = new PeerPolicy(init.peers);
    this.#defaultLifetime = init.defaultLifetime ?? 600;
    this.#maxLifetime = init.maxLifetime ?? 3600;
    this.#quotas = new TurnQuotas({ userQuota: init.userQuota ?? 10, sourceQuota: init.sourceQuota ?? 64, totalQuota: init.totalQuota ?? 10_000 });
    this.#tcpLimits = new TcpPeerLimits({
      connectsPerAllocation: init.tcpConnectsPerAllocation ?? 64,
      incomingPerAllocation: init.tcpIncomingPerAllocation ?? 64,
    });
    this.#maxPermissions = init.maxPermissions ?? 100;
    this.#maxChannels = init.maxChannels ?? 100;
    this.#bandwidth = init.bandwidth ?? 0;
    this.#alternate = init.alternateServer;
    this.#software = init.software;
    this.#legacyChannels = init.strictChannelNumbers !== true;
    this.#tcpRelay = init.tcpRelay !== false;
    this.#nonces = new NonceIssuer({ lifetimeMs: init.nonceLifetimeMs ?? 600_000 });
    this.#limiter = new RateLimiter({ perSecond: init.unauthenticatedRate ?? 50 });
    this.#log = init.logger ?? silentLogger;
    this.#tiers = init.tiers;
  }

  /** Whether RFC 5766 channel numbers (first byte 0x50-0x7F) are in use. */
  get legacyChannelNumbers(): boolean {
    return this.#legacyChannels;
  }

  /** Takes the outputs produced so far. */
  drain(): TurnOutput[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  /** The allocation of a 5-tuple, if any. */
  allocationOf(endpointKey: string): Allocation | undefined {
    return this.#byEndpoint.get(endpointKey);
  }

  /** The allocation with an id, if any. */
  allocation(id: number): Allocation | undefined {
    return this.#byId.get(id);
  }

  /** Number of live allocations. */
  get size(): number {
    return this.#byId.size;
  }

  /** The server's own service addresses (its listeners, rendezvous, admin ports): never relay peers. */
  addServiceAddresses(services: readonly TransportAddress[], ownIps: readonly string[] = []): void {
    this.#policy.addServices(services, ownIps);
  }

  // ---------------------------------------------------------------- client side

  /** A STUN message (not Binding) from a client: a TURN request or a Send indication. */
  handleStun(message: StunMessage, endpoint: ClientEndpoint, now: number): void {
    if (message.class === StunClass.Indication) {
      if (message.method === StunMethod.Send) this.#send(message, endpoint, now);
      return; // other indications are dropped (RFC 8489 section 6.3.2)
    }
    if (message.class !== StunClass.Request) return;
    if (message.fingerprintOffset >= 0 && !verifyFingerprint(message)) return;
    this.#now = now;
    try {
      switch (message.method) {
        case StunMethod.Allocate:
        case StunMethod.Refresh:
        case StunMethod.CreatePermission:
        case StunMethod.ChannelBind:
        case StunMethod.Connect:
        case StunMethod.ConnectionBind:
          this.#request(message, endpoint, now);
          return;
        default:
          this.#error(message, endpoint, undefined, new Reject(400, 'Bad Request: unsupported method'));
      }
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.#error(message, endpoint, undefined, new Reject(400, `Bad Request: ${e.message}`.slice(0, 120)));
    }
  }

  /** A ChannelData message from a client (RFC 8656 section 12.4). */
  handleChannelData(bytes: Uint8Array, endpoint: ClientEndpoint, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined || bytes.length < 4) return void this.stats.dropped++;
    const number = (bytes[0]! << 8) | bytes[1]!;
    const length = (bytes[2]! << 8) | bytes[3]!;
    const channel = a.channels.get(number);
    if (channel === undefined || channel.expiresAt <= now || 4 + length > bytes.length) return void this.#drop(a);
    if (!this.#spend(a, length, now)) return void this.#drop(a);
    a.toPeerPackets++;
    this.stats.relayedToPeer++;
    this.#out.push({ kind: 'to-peer', allocation: a.id, peer: channel.peer, bytes: bytes.subarray(4, 4 + length) });
  }

  /** The client's transport connection closed (TCP/TLS): its allocation goes with it (RFC 8656 section 3.1). */
  handleEndpointClosed(endpointKey: string): void {
    const a = this.#byEndpoint.get(endpointKey);
    if (a) this.#delete(a);
  }

  // ---------------------------------------------------------------- peer side

  /** A datagram that arrived on an allocation's relay socket from a peer (RFC 8656 section 10.3, 12.5). */
  handlePeerData(allocationId: number, data: Uint8Array, from: TransportAddress, now: number): void {
    const a = this.#byId.get(allocationId);
    if (a === undefined) return;
    // RFC 8656 section 9: only peers with a permission get through.
    if (!a.hasPermission(from.address, now) && !a.hasPermission(canonicalIpSafe(from.address), now)) return void this.#drop(a);
    if (!this.#spend(a, data.length, now)) return void this.#drop(a);
    const number = a.channelByPeer.get(peerKey(from));
    let bytes: Uint8Array;
    if (number !== undefined && a.channels.get(number)!.expiresAt > now) {
      bytes = encodeChannelData(number, data, { padded: a.endpoint.transport !== 'udp', legacyChannelNumbers: this.#legacyChannels });
    } else {
      bytes = encodeStunMessage({ method: StunMethod.Data, class: StunClass.Indication, attributes: [attr(Attr.XorPeerAddress, from), attr(Attr.Data, data)] });
    }
    a.toClientPackets++;
    this.stats.relayedToClient++;
    this.#out.push({ kind: 'to-client', endpoint: a.endpoint, bytes });
  }

  // ---------------------------------------------------------------- relay sockets

  /** The driver opened the relay socket(s): answer the pending Allocate. */
  relayOpened(allocationId: number, family: AddressFamily, relayed: TransportAddress): void {
    const a = this.#byId.get(allocationId);
    if (a === undefined) return;
    a.relayed[family] = relayed;
    if (!a.ready || a.allocateResponse !== undefined) return;
    const pending = this.#pending.get(a.id);
    this.#pending.delete(a.id);
    if (pending === undefined) return;
    const attributes: AttributeEntry[] = [];
    for (const f of a.families) attributes.push(attr(Attr.XorRelayedAddress, a.relayed[f]!));
    if (pending.familyError) attributes.push(attr(Attr.AddressErrorCode, { family: pending.familyError, code: 440, reason: 'Address Family not Supported' }));
    attributes.push(attr(Attr.Lifetime, pending.lifetime), attr(Attr.XorMappedAddress, a.endpoint.client));
    if (pending.token) attributes.push(attr(Attr.ReservationToken, pending.token));
    const bytes = this.#respond(pending.request, a.key, a.mac, attributes);
    a.allocateResponse = bytes;
    this.#out.push({ kind: 'to-client', endpoint: a.endpoint, bytes });
    this.stats.allocationsCreated++;
    this.#log.debug({ allocation: a.id, user: a.username, relayed: a.relayed }, 'allocation created');
  }

  /** The driver could not open a relay socket: 508 (no port free) or 437/508 for a bad token. */
  relayFailed(allocationId: number, code = 508): void {
    const a = this.#byId.get(allocationId);
    if (a === undefined) return;
    const pending = this.#pending.get(a.id);
    this.#pending.delete(a.id);
    this.#delete(a);
    if (pending?.token) this.#quotas.cancelReservation(tokenKey(pending.token));
    if (pending) this.#error(pending.request, a.endpoint, { key: a.key, mac: a.mac }, new Reject(code));
  }

  /** Expires allocations, permissions, channels and unbound TCP peer connections. Call about once a second. */
  sweep(now: number): void {
    this.#quotas.sweep(now);
    for (const c of this.#tcp.values()) {
      if (c.state === 'pending-bind' && c.expiresAt <= now) {
        this.#forgetTcp(c);
        this.#out.push({ kind: 'tcp-close', connectionId: c.id });
      }
    }
    for (const a of this.#byId.values()) {
      if (a.expiresAt <= now) {
        this.#delete(a);
        continue;
      }
      for (const [ip, until] of a.permissions) if (until <= now) a.permissions.delete(ip);
      for (const [n, c] of a.channels) {
        // RFC 8656 section 12: a channel number stays unusable for 5 minutes after expiry; we keep
        // the binding (so it cannot be rebound to another peer) until then.
        if (c.expiresAt + 300_000 <= now) {
          a.channels.delete(n);
          a.channelByPeer.delete(c.peerKey);
        }
      }
    }
  }

  // ---------------------------------------------------------------- RFC 6062 (TCP relay)

  /** The relay's TCP connection to the peer is up: answer the Connect with CONNECTION-ID. */
  tcpConnected(connectionId: number, now: number): void {
    const c = this.#tcp.get(connectionId);
    const a = c && this.#byId.get(c.allocation);
    if (!c || !a || !c.connect) return;
    const request = c.connect;
    c.connect = undefined;
    c.state = 'pending-bind';
    c.expiresAt = now + CONNECTION_BIND_TIMEOUT;
    this.#out.push({ kind: 'to-client', endpoint: a.endpoint, bytes: this.#respond(request, a.key, a.mac, [attr(Attr.ConnectionId, c.id)]) });
  }

  /** The relay could not reach the peer: 447 Connection Timeout or Failure. */
  tcpConnectFailed(connectionId: number): void {
    const c = this.#tcp.get(connectionId);
    if (c) this.#forgetTcp(c);
    const a = c && this.#byId.get(c.allocation);
    if (!c || !a || !c.connect) return;
    this.#error(c.connect, a.endpoint, { key: a.key, mac: a.mac }, new Reject(447));
  }

  /**
   * A peer connected to a TCP allocation's relayed address (RFC 6062 section 5.3). Returns the
   * connection id when the peer has a permission (a ConnectionAttempt indication goes to the
   * client), or undefined: the driver then closes the peer's connection.
   */
  tcpIncoming(allocationId: number, peer: TransportAddress, now: number): number | undefined {
    const a = this.#byId.get(allocationId);
    if (!a || a.transport !== 'tcp' || !a.hasPermission(canonicalIpSafe(peer.address), now)) return undefined;
    if (!this.#tcpLimits.tryOpen(a.id, 'incoming')) return void this.#tcpRefused(a, 'incoming', peer);
    const id = this.#newConnectionId();
    this.#tcp.set(id, { id, allocation: a.id, peer, origin: 'incoming', state: 'pending-bind', expiresAt: now + CONNECTION_BIND_TIMEOUT });
    this.#out.push({
      kind: 'to-client',
      endpoint: a.endpoint,
      bytes: encodeStunMessage({
        method: StunMethod.ConnectionAttempt,
        class: StunClass.Indication,
        attributes: [attr(Attr.ConnectionId, id), attr(Attr.XorPeerAddress, peer)],
      }),
    });
    return id;
  }

  /** A peer TCP connection closed. */
  tcpClosed(connectionId: number): void {
    const c = this.#tcp.get(connectionId);
    if (c) this.#forgetTcp(c);
  }

  #forgetTcp(c: TcpConnection): void {
    if (this.#tcp.delete(c.id)) this.#tcpLimits.closed(c.allocation, c.origin);
  }

  #tcpRefused(a: Allocation, origin: TcpOrigin, peer: TransportAddress): void {
    this.stats.tcpRefused++;
    this.#log.info({ allocation: a.id, user: a.username, peer: peer.address, origin }, 'peer connection refused: the allocation holds its share');
  }

  #newConnectionId(): number {
    for (;;) {
      const id = crypto.getRandomValues(new Uint32Array(1))[0]!;
      if (id !== 0 && !this.#tcp.has(id)) return id;
    }
  }

  /** Connect (RFC 6062 section 5.2). */
  #connect(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined) throw new Reject(437);
    if (a.transport !== 'tcp') throw new Reject(400, 'Bad Request: Connect needs a TCP allocation');
    if (a.username !== auth.username) throw new Reject(441);
    const peer = m.get(Attr.XorPeerAddress);
    if (peer === undefined) throw new Reject(400, 'Bad Request: XOR-PEER-ADDRESS is required');
    const ip = this.#checkPeer(a, peer);
    for (const c of this.#tcp.values()) {
      if (c.allocation === a.id && c.peer.port === peer.port && canonicalIpSafe(c.peer.address) === ip) throw new Reject(446);
    }
    if (!this.#tcpLimits.tryOpen(a.id, 'connect')) {
      this.#tcpRefused(a, 'connect', peer);
      throw new Reject(508, 'Insufficient Capacity: too many peer connections');
    }
    // RFC 6062 section 5.2: a Connect installs (or refreshes) a permission for the peer.
    a.permissions.set(ip, now + PERMISSION_LIFETIME);
    const id = this.#newConnectionId();
    this.#tcp.set(id, {
      id,
      allocation: a.id,
      peer: { family: peer.family, address: ip, port: peer.port },
      origin: 'connect',
      state: 'connecting',
      connect: m,
      expiresAt: now + CONNECTION_BIND_TIMEOUT,
    });
    this.#out.push({ kind: 'tcp-connect', allocation: a.id, connectionId: id, peer: { family: peer.family, address: ip, port: peer.port } });
  }

  /** ConnectionBind (RFC 6062 section 5.4), on a new TCP/TLS connection from the client. */
  #connectionBind(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, _now: number): void {
    if (endpoint.transport === 'udp') throw new Reject(400, 'Bad Request: ConnectionBind needs a TCP or TLS connection');
    if (this.#byEndpoint.has(endpoint.key)) throw new Reject(400, 'Bad Request: this connection carries an allocation');
    const id = m.get(Attr.ConnectionId);
    const c = id === undefined ? undefined : this.#tcp.get(id);
    if (c === undefined || c.state !== 'pending-bind') throw new Reject(400, 'Bad Request: unknown CONNECTION-ID');
    const a = this.#byId.get(c.allocation);
    if (a === undefined) throw new Reject(400, 'Bad Request: unknown CONNECTION-ID');
    if (a.username !== auth.username) throw new Reject(441);
    c.state = 'bound';
    this.#ok(m, endpoint, auth, []);
    this.#out.push({ kind: 'tcp-bind', connectionId: c.id, endpoint });
  }

  // ---------------------------------------------------------------- internals

  readonly #pending = new Map<number, { request: StunMessage; lifetime: number; token: Uint8Array | undefined; familyError: AddressFamily | undefined }>();

  #drop(a: Allocation): void {
    a.dropped++;
    this.stats.dropped++;
  }

  #spend(a: Allocation, bytes: number, now: number): boolean {
    const lease = this.#leases.size === 0 ? undefined : this.#leases.get(a.id);
    if (lease !== undefined && !lease.spend(bytes, now)) return false;
    if (this.#bandwidth <= 0) return true;
    a.tokens = Math.min(this.#bandwidth, a.tokens + ((now - a.tokensAt) * this.#bandwidth) / 1000);
    a.tokensAt = now;
    if (a.tokens < bytes) return false;
    a.tokens -= bytes;
    return true;
  }

  #delete(a: Allocation): void {
    if (!this.#byId.delete(a.id)) return;
    this.#byEndpoint.delete(a.endpoint.key);
    this.#pending.delete(a.id);
    this.#quotas.release(a.id);
    this.#leases.get(a.id)?.release();
    this.#leases.delete(a.id);
    this.stats.allocations = this.#byId.size;
    for (const c of this.#tcp.values()) {
      if (c.allocation === a.id) {
        this.#forgetTcp(c);
        this.#out.push({ kind: 'tcp-close', connectionId: c.id });
      }
    }
    this.#out.push({ kind: 'close-relay', allocation: a.id });
    this.#log.debug({ allocation: a.id }, 'allocation deleted');
  }

  /** Send indication (RFC 8656 section 10.2): never answered, dropped when not allowed. */
  #send(m: StunMessage, endpoint: ClientEndpoint, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined) return void this.stats.dropped++;
    let peer: TransportAddress | undefined;
    let data: Uint8Array | undefined;
    try {
      peer = m.get(Attr.XorPeerAddress);
      data = m.get(Attr.Data);
    } catch {
      return void this.#drop(a);
    }
    if (peer === undefined || data === undefined || !a.hasPermission(canonicalIpSafe(peer.address), now) || this.#policy.isService(peer))
      return void this.#drop(a);
    if (a.relayed[peer.family] === undefined || !this.#spend(a, data.length, now)) return void this.#drop(a);
    a.toPeerPackets++;
    this.stats.relayedToPeer++;
    this.#out.push({ kind: 'to-peer', allocation: a.id, peer, bytes: data });
  }

  #request(m: StunMessage, endpoint: ClientEndpoint, now: number): void {
    const unknown = m.unknownComprehensionRequired((t) => UNDERSTOOD.has(t));
    if (unknown.length > 0) return this.#error(m, endpoint, undefined, new Reject(420, undefined, [attr(Attr.UnknownAttributes, unknown)]));
    const auth = this.#authenticate(m, endpoint, now);
    if (auth === undefined) return;
    try {
      switch (m.method) {
        case StunMethod.Allocate:
          return this.#allocate(m, endpoint, auth, now);
        case StunMethod.Refresh:
          return this.#refresh(m, endpoint, auth, now);
        case StunMethod.CreatePermission:
          return this.#createPermission(m, endpoint, auth, now);
        case StunMethod.ChannelBind:
          return this.#channelBind(m, endpoint, auth, now);
        case StunMethod.Connect:
          return this.#connect(m, endpoint, auth, now);
        case StunMethod.ConnectionBind:
          return this.#connectionBind(m, endpoint, auth, now);
      }
    } catch (e) {
      if (e instanceof Reject) return this.#error(m, endpoint, auth, e);
      if (e instanceof DecodeError) return this.#error(m, endpoint, auth, new Reject(400, `Bad Request: ${e.message}`.slice(0, 120)));
      throw e;
    }
  }

  /**
   * The long-term credential mechanism, server side (RFC 8489 section 9.2.4). Returns the key on
   * success; otherwise queues the 400/401/438 answer and returns undefined.
   */
  #authenticate(m: StunMessage, endpoint: ClientEndpoint, now: number): { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string } | undefined {
    const ip = endpoint.client.address;
    const sha256 = m.integritySha256Offset >= 0;
    if (m.integrityOffset < 0 && !sha256) {
      if (!this.#limiter.allow(ip, now)) return undefined;
      this.stats.unauthorized++;
      this.#challenge(m, endpoint, 401, now);
      return undefined;
    }
    const username = m.get(Attr.Username);
    const realm = m.get(Attr.Realm);
    const nonce = m.get(Attr.Nonce);
    if (username === undefined || realm === undefined || nonce === undefined) {
      this.#error(m, endpoint, undefined, new Reject(400, 'Bad Request: USERNAME, REALM and NONCE are required'));
      return undefined;
    }
    const verdict = this.#nonces.check(nonce, ip, now);
    if (verdict !== 'valid') {
      if (!this.#limiter.allow(ip, now)) return undefined;
      this.#challenge(m, endpoint, verdict === 'stale' ? 438 : 401, now);
      return undefined;
    }
    // RFC 8489 section 9.2.4 (bid-down protection): a client that echoes PASSWORD-ALGORITHMS must
    // echo exactly what we offered, and its PASSWORD-ALGORITHM must be one of them. A client that
    // sends neither (an RFC 5389 client, every browser) is taken to use MD5.
    const chosen = m.get(Attr.PasswordAlgorithm);
    const offered = m.get(Attr.PasswordAlgorithms);
    const offeredOk =
      offered === undefined ||
      (offered.length === OFFERED_ALGORITHMS.length && offered.every((o, i) => o.algorithm === OFFERED_ALGORITHMS[i] && o.parameters.length === 0));
    const chosenAlgorithm = chosen?.algorithm ?? PasswordAlgorithm.MD5;
    if (
      !offeredOk ||
      (chosen !== undefined && offered === undefined) ||
      !OFFERED_ALGORITHMS.includes(chosenAlgorithm as PasswordAlgorithm) ||
      sha256 !== (chosenAlgorithm === PasswordAlgorithm.SHA256)
    ) {
      this.#error(m, endpoint, undefined, new Reject(400, 'Bad Request: PASSWORD-ALGORITHM(S) do not match what the server offered'));
      return undefined;
    }
    const algorithm = chosenAlgorithm as PasswordAlgorithm;
    // The realm must be ours; a key derived for another realm would never verify anyway.
    const keys = realm === this.realm ? this.#auth.keys(username, realm, algorithm, now) : [];
    for (const key of keys) {
      if (sha256 ? verifyMessageIntegritySha256(m, key) : verifyMessageIntegrity(m, key)) return { key, mac: sha256 ? 'sha256' : 'sha1', username };
    }
    if (!this.#limiter.allow(ip, now)) return undefined;
    this.stats.unauthorized++;
    this.#log.info({ user: username, client: ip }, 'authentication failed'); // no secret, no MAC logged
    this.#challenge(m, endpoint, 401, now);
    return undefined;
  }

  #challenge(m: StunMessage, endpoint: ClientEndpoint, code: 401 | 438, now: number): void {
    const attributes: AttributeEntry[] = [
      attr(Attr.ErrorCode, errorCode(code)),
      attr(Attr.Realm, this.realm),
      attr(Attr.Nonce, this.#nonces.issue(endpoint.client.address, now)),
      attr(
        Attr.PasswordAlgorithms,
        OFFERED_ALGORITHMS.map((algorithm) => ({ algorithm, parameters: new Uint8Array(0) })),
      ),
    ];
    if (this.#software) attributes.push(attr(Attr.Software, this.#software));
    this.#out.push({
      kind: 'to-client',
      endpoint,
      bytes: encodeStunMessage({ method: m.method, class: StunClass.ErrorResponse, transactionId: m.transactionId, attributes }),
    });
  }

  #respond(m: StunMessage, key: Uint8Array, mac: 'sha1' | 'sha256', attributes: AttributeEntry[], cls: StunClass = StunClass.SuccessResponse): Uint8Array {
    if (this.#software) attributes.push(attr(Attr.Software, this.#software));
    return encodeStunMessage(
      { method: m.method, class: cls, transactionId: m.transactionId, attributes },
      mac === 'sha1' ? { integrity: key, fingerprint: m.fingerprintOffset >= 0 } : { integritySha256: key, fingerprint: m.fingerprintOffset >= 0 },
    );
  }

  #error(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256' } | undefined, r: Reject): void {
    // Unauthenticated answers are rate limited per source and, over UDP, no larger than needed.
    if (!auth && !this.#limiter.allow(endpoint.client.address, this.#now)) return void this.stats.rateLimited++;
    const attributes = auth
      ? [attr(Attr.ErrorCode, errorCode(r.code, r.reason)), ...r.extra]
      : boundedErrorAttributes(r.code, r.reason, r.extra, endpoint.transport === 'udp' ? m.bytes.length : Infinity);
    const bytes = auth
      ? this.#respond(m, auth.key, auth.mac, attributes, StunClass.ErrorResponse)
      : encodeStunMessage({ method: m.method, class: StunClass.ErrorResponse, transactionId: m.transactionId, attributes });
    this.#out.push({ kind: 'to-client', endpoint, bytes });
  }

  #ok(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256' }, attributes: AttributeEntry[]): void {
    this.#out.push({ kind: 'to-client', endpoint, bytes: this.#respond(m, auth.key, auth.mac, attributes) });
  }

  /** Allocate (RFC 8656 section 7.2), in the order of its checks. */
  #allocate(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, now: number): void {
    const existing = this.#byEndpoint.get(endpoint.key);
    if (existing) {
      // A retransmission of the Allocate that made it gets the same answer; anything else is 437.
      if (existing.allocateTransaction === m.transactionKey) {
        if (existing.allocateResponse) this.#out.push({ kind: 'to-client', endpoint, bytes: existing.allocateResponse });
        return;
      }
      throw new Reject(437);
    }
    const transport = m.get(Attr.RequestedTransport);
    if (transport === undefined) throw new Reject(400, 'Bad Request: REQUESTED-TRANSPORT is required');
    if (transport !== TRANSPORT_UDP && !(transport === TRANSPORT_TCP && this.#tcpRelay)) throw new Reject(442);
    const token = m.get(Attr.ReservationToken);
    const even = m.get(Attr.EvenPort);
    if (transport === TRANSPORT_TCP) {
      // RFC 6062 section 5.1: TCP relays only for clients on TCP or TLS, and without the UDP-only attributes.
      if (endpoint.transport === 'udp') throw new Reject(400, 'Bad Request: TCP relay needs a TCP or TLS connection to the server');
      if (token || even || m.has(Attr.DontFragment)) throw new Reject(400, 'Bad Request: EVEN-PORT, RESERVATION-TOKEN and DONT-FRAGMENT are UDP-only');
    }
    const requestedFamily = m.get(Attr.RequestedAddressFamily);
    const additional = m.get(Attr.AdditionalAddressFamily);
    if (token && (even || requestedFamily || additional)) throw new Reject(400, 'Bad Request: RESERVATION-TOKEN with EVEN-PORT or an address family');
    if (requestedFamily && additional) throw new Reject(400, 'Bad Request: REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together');
    if (additional === 'IPv4') throw new Reject(400, 'Bad Request: ADDITIONAL-ADDRESS-FAMILY must be IPv6');
    const family: AddressFamily = requestedFamily ?? 'IPv4';
    if (!this.#families.includes(family)) throw new Reject(440);
    const families: AddressFamily[] = [family];
    let familyError: AddressFamily | undefined;
    if (additional === 'IPv6') {
      if (this.#families.includes('IPv6')) families.push('IPv6');
      else familyError = 'IPv6';
    }
    if (this.#alternate) throw new Reject(300, undefined, [attr(Attr.AlternateServer, this.#alternate)]);
    const lease = this.#tiers?.allocate(auth.username, transport === TRANSPORT_TCP ? 'tcp' : 'udp', now);
    if (isRelayRefusal(lease)) throw new Reject(lease.code, lease.reason);
    const lifetime = this.#lifetime(m.get(Attr.Lifetime));
    const id = this.#nextId++;
    const newToken = even?.reserve ? crypto.getRandomValues(new Uint8Array(8)) : undefined;
    // Checked and taken in one call, with no await before the allocation exists (quota.ts).
    const refused = this.#quotas.take(id, quotaUser(auth.username), sourceKey(endpoint.client.address), {
      ...(newToken ? { reserve: tokenKey(newToken), reserveUntil: now + RESERVATION_COUNTED_MS } : {}),
      ...(token ? { consume: tokenKey(token) } : {}),
    });
    if (refused !== undefined) {
      lease?.release();
      this.stats.quotaRejected++;
      this.#log.info({ user: auth.username, client: endpoint.client.address, quota: refused }, 'allocation refused: quota reached');
      throw new Reject(refused === 'total' ? 508 : 486);
    }
    if (lease !== undefined) this.#leases.set(id, lease);
    const a = new Allocation(id, endpoint, auth.username, auth.key, auth.mac, families, now + lifetime * 1000, this.#bandwidth, now);
    a.transport = transport === TRANSPORT_TCP ? 'tcp' : 'udp';
    a.allocateTransaction = m.transactionKey;
    this.#byId.set(id, a);
    this.#byEndpoint.set(endpoint.key, a);
    this.stats.allocations = this.#byId.size;
    this.#pending.set(id, { request: m, lifetime, token: newToken, familyError });
    this.#out.push({
      kind: 'open-relay',
      allocation: id,
      transport: a.transport,
      families,
      evenPort: even !== undefined,
      reserveNext: even?.reserve === true,
      reservationToken: token,
      newReservationToken: newToken,
    });
  }

  #lifetime(requested: number | undefined): number {
    // RFC 8656 section 7.2: the default when absent or smaller, capped at the maximum.
    if (requested === undefined) return this.#defaultLifetime;
    return Math.min(Math.max(requested, this.#defaultLifetime), this.#maxLifetime);
  }

  /** Refresh (RFC 8656 section 7.3). LIFETIME 0 deletes the allocation. */
  #refresh(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined) throw new Reject(437);
    if (a.username !== auth.username) throw new Reject(441);
    const family = m.get(Attr.RequestedAddressFamily);
    if (family !== undefined && !a.families.includes(family)) throw new Reject(443);
    const requested = m.get(Attr.Lifetime);
    if (requested === 0) {
      this.#delete(a);
      this.#ok(m, endpoint, auth, [attr(Attr.Lifetime, 0)]);
      return;
    }
    const lifetime = this.#lifetime(requested);
    a.expiresAt = now + lifetime * 1000;
    this.#ok(m, endpoint, auth, [attr(Attr.Lifetime, lifetime)]);
  }

  #checkPeer(a: Allocation, peer: TransportAddress, withPort = true): string {
    if (a.relayed[peer.family] === undefined) throw new Reject(443);
    const verdict =
      withPort && this.#policy.isService(peer) ? { allowed: false as const, rule: 'a service address of this server' } : this.#policy.check(peer.address);
    if (!verdict.allowed) {
      this.stats.forbidden++;
      this.#log.info({ allocation: a.id, peer: peer.address, rule: verdict.rule }, 'peer refused by policy');
      throw new Reject(403, 'Forbidden: peer address not allowed');
    }
    if (this.#leases.get(a.id)?.permit(canonicalIpSafe(peer.address)) === false) {
      this.stats.forbidden++;
      throw new Reject(403, "Forbidden: peer address not signalled in this credential's sessions");
    }
    return canonicalIpSafe(peer.address);
  }

  /** CreatePermission (RFC 8656 section 9.2): all or nothing over its XOR-PEER-ADDRESSes. */
  #createPermission(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined) throw new Reject(437);
    if (a.username !== auth.username) throw new Reject(441);
    const peers = m.getAll(Attr.XorPeerAddress);
    if (peers.length === 0) throw new Reject(400, 'Bad Request: XOR-PEER-ADDRESS is required');
    const ips = peers.map((p) => this.#checkPeer(a, p, false)); // permissions are per IP (RFC 8656 section 9)
    const fresh = new Set(ips.filter((ip) => !a.permissions.has(ip)));
    if (a.permissions.size + fresh.size > this.#maxPermissions) throw new Reject(508, 'Insufficient Capacity: too many permissions');
    for (const ip of ips) a.permissions.set(ip, now + PERMISSION_LIFETIME);
    this.#ok(m, endpoint, auth, []);
  }

  /** ChannelBind (RFC 8656 section 11.2). */
  #channelBind(m: StunMessage, endpoint: ClientEndpoint, auth: { key: Uint8Array; mac: 'sha1' | 'sha256'; username: string }, now: number): void {
    const a = this.#byEndpoint.get(endpoint.key);
    if (a === undefined) throw new Reject(437);
    if (a.username !== auth.username) throw new Reject(441);
    const number = m.get(Attr.ChannelNumber);
    const peer = m.get(Attr.XorPeerAddress);
    if (number === undefined || peer === undefined) throw new Reject(400, 'Bad Request: CHANNEL-NUMBER and XOR-PEER-ADDRESS are required');
    if (!(this.#legacyChannels ? isLegacyChannelNumber(number) : isValidChannelNumber(number))) {
      throw new Reject(400, `Bad Request: channel number outside 0x4000-${this.#legacyChannels ? '0x7FFF' : '0x4FFF'}`);
    }
    const ip = this.#checkPeer(a, peer);
    const canonicalPeer = { family: peer.family, address: ip, port: peer.port };
    const key = peerKey(canonicalPeer);
    const bound = a.channels.get(number);
    if (bound && bound.peerKey !== key) throw new Reject(400, 'Bad Request: channel bound to another peer');
    const other = a.channelByPeer.get(key);
    if (other !== undefined && other !== number) throw new Reject(400, 'Bad Request: peer bound to another channel');
    if (!bound && a.channels.size >= this.#maxChannels) throw new Reject(508, 'Insufficient Capacity: too many channels');
    if (bound) bound.expiresAt = now + CHANNEL_LIFETIME;
    else {
      a.channels.set(number, { number, peer: canonicalPeer, peerKey: key, expiresAt: now + CHANNEL_LIFETIME });
      a.channelByPeer.set(key, number);
    }
    // RFC 8656 section 11.2: binding a channel also installs or refreshes the permission.
    a.permissions.set(ip, now + PERMISSION_LIFETIME);
    this.#ok(m, endpoint, auth, []);
  }
}

function canonicalIpSafe(ip: string): string {
  try {
    return canonicalIp(ip);
  } catch {
    return ip;
  }
}

/** Decodes a client datagram's STUN message or returns undefined (not STUN): for drivers. */
export function tryDecodeStun(bytes: Uint8Array): StunMessage | undefined {
  try {
    return decodeStunMessage(bytes);
  } catch (e) {
    if (e instanceof DecodeError) return undefined;
    throw e;
  }
}
