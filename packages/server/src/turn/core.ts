import {
  type AddressFamily,
  Attr,
  DecodeError,
  StunClass,
  StunMethod,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  verifyFingerprint,
} from '@nat/protocol';
import type { Allocation, ClientEndpoint } from './allocation.js';
import { answerError } from './answers.js';
import { authenticate } from './authenticate.js';
import { clusterRefused, handleAllocate, relayFailed, relayOpened } from './handlers/allocate.js';
import { handleChannelBind } from './handlers/channel-bind.js';
import { handleChannelData, handlePeerData, handleSend } from './handlers/data.js';
import { handleCreatePermission } from './handlers/permission.js';
import { handleRefresh } from './handlers/refresh.js';
import { handleConnect, handleConnectionBind, tcpConnectFailed, tcpConnected, tcpIncoming } from './handlers/tcp-relay.js';
import { endAllocation, forgetTcp, sweep } from './lifecycle.js';
import type { TurnCoreInit, TurnOutput, TurnStats } from './options.js';
import type { QuotaRefusal } from './quota.js';
import { Reject, type TurnRequest, TurnState } from './state.js';

export type { TurnCoreInit, TurnOutput, TurnStats } from './options.js';

/** The handler of each TURN request method (pion/turn style: one module per method). */
const HANDLERS = new Map<number, (s: TurnState, req: TurnRequest) => void>([
  [StunMethod.Allocate, handleAllocate],
  [StunMethod.Refresh, handleRefresh],
  [StunMethod.CreatePermission, handleCreatePermission],
  [StunMethod.ChannelBind, handleChannelBind],
  [StunMethod.Connect, handleConnect],
  [StunMethod.ConnectionBind, handleConnectionBind],
]);

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

const badRequest = (e: DecodeError): Reject => new Reject(400, `Bad Request: ${e.message}`.slice(0, 120));

/**
 * The TURN server (RFC 8656, RFC 6062), sans I/O: a facade over one handler module per method
 * (handlers/), with the policies injected (auth, peer policy, quotas, tiers). Feed it what
 * clients and peers send, with the time; drain the outputs and carry them out. Allocations,
 * permissions and channels expire on `sweep(now)`. Binding requests are not its business: the
 * caller hands those to the STUN responder. Events go to `events` (TurnCoreInit).
 */
export class TurnCore {
  readonly realm: string;
  readonly #s: TurnState;

  constructor(init: TurnCoreInit) {
    this.realm = init.realm;
    this.#s = new TurnState(init);
  }

  /** Counters of the TURN core. */
  get stats(): TurnStats {
    return this.#s.stats;
  }

  /** Whether RFC 5766 channel numbers (first byte 0x50-0x7F) are in use. */
  get legacyChannelNumbers(): boolean {
    return this.#s.legacyChannels;
  }

  /** Takes the outputs produced so far. */
  drain(): TurnOutput[] {
    const out = this.#s.out;
    this.#s.out = [];
    return out;
  }

  /** The allocation of a 5-tuple, if any. */
  allocationOf(endpointKey: string): Allocation | undefined {
    return this.#s.byEndpoint.get(endpointKey);
  }

  /** The allocation with an id, if any. */
  allocation(id: number): Allocation | undefined {
    return this.#s.byId.get(id);
  }

  /** Number of live allocations. */
  get size(): number {
    return this.#s.byId.size;
  }

  /**
   * Whether a request's NONCE is one this core issued to its client's address and still valid:
   * the driver looks a user up in a remote store only then (a request with a bad nonce gets its
   * 401/438 without costing a lookup).
   */
  nonceValid(message: StunMessage, endpoint: ClientEndpoint, now: number): boolean {
    const nonce = message.get(Attr.Nonce);
    return nonce !== undefined && this.#s.nonces.check(nonce, endpoint.client.address, now) === 'valid';
  }

  /** The server's own service addresses (its listeners, rendezvous, admin ports): never relay peers. */
  addServiceAddresses(services: readonly TransportAddress[], ownIps: readonly string[] = []): void {
    this.#s.policy.addServices(services, ownIps);
  }

  // ---------------------------------------------------------------- client side

  /** A STUN message (not Binding) from a client: a TURN request or a Send indication. */
  handleStun(message: StunMessage, endpoint: ClientEndpoint, now: number): void {
    const s = this.#s;
    if (message.class === StunClass.Indication) {
      if (message.method === StunMethod.Send) handleSend(s, message, endpoint, now);
      return; // other indications are dropped (RFC 8489 section 6.3.2)
    }
    if (message.class !== StunClass.Request) return;
    if (message.fingerprintOffset >= 0 && !verifyFingerprint(message)) return;
    s.now = now;
    try {
      const handler = HANDLERS.get(message.method);
      if (handler === undefined) return answerError(s, message, endpoint, undefined, new Reject(400, 'Bad Request: unsupported method'));
      this.#request(handler, message, endpoint, now);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      answerError(s, message, endpoint, undefined, badRequest(e));
    }
  }

  /** A request of a TURN method: 420 for unknown comprehension-required attributes, authentication, then its handler. */
  #request(handler: (s: TurnState, req: TurnRequest) => void, m: StunMessage, endpoint: ClientEndpoint, now: number): void {
    const s = this.#s;
    const unknown = m.unknownComprehensionRequired((t) => UNDERSTOOD.has(t));
    if (unknown.length > 0) return answerError(s, m, endpoint, undefined, new Reject(420, undefined, [attr(Attr.UnknownAttributes, unknown)]));
    const auth = authenticate(s, m, endpoint, now);
    if (auth === undefined) return;
    try {
      handler(s, { m, endpoint, auth, now });
    } catch (e) {
      if (e instanceof Reject) return answerError(s, m, endpoint, auth, e, auth.username);
      if (e instanceof DecodeError) return answerError(s, m, endpoint, auth, badRequest(e), auth.username);
      throw e;
    }
  }

  /** A ChannelData message from a client (RFC 8656 section 12.4). */
  handleChannelData(bytes: Uint8Array, endpoint: ClientEndpoint, now: number): void {
    handleChannelData(this.#s, bytes, endpoint, now);
  }

  /** The client's transport connection closed (TCP/TLS): its allocation goes with it (RFC 8656 section 3.1). */
  handleEndpointClosed(endpointKey: string): void {
    const a = this.#s.byEndpoint.get(endpointKey);
    if (a) endAllocation(this.#s, a, 'connection-closed');
  }

  // ---------------------------------------------------------------- peer side

  /** A datagram that arrived on an allocation's relay socket from a peer (RFC 8656 section 10.3, 12.5). */
  handlePeerData(allocationId: number, data: Uint8Array, from: TransportAddress, now: number): void {
    const a = this.#s.byId.get(allocationId);
    if (a !== undefined) handlePeerData(this.#s, a, data, from, now);
  }

  // ---------------------------------------------------------------- relay sockets

  /** The driver opened the relay socket(s): answer the pending Allocate. */
  relayOpened(allocationId: number, family: AddressFamily, relayed: TransportAddress): void {
    const a = this.#s.byId.get(allocationId);
    if (a !== undefined) relayOpened(this.#s, a, family, relayed);
  }

  /** The driver could not open a relay socket: 508 (no port free) or 437/508 for a bad token. */
  relayFailed(allocationId: number, code = 508): void {
    const a = this.#s.byId.get(allocationId);
    if (a !== undefined) relayFailed(this.#s, a, code);
  }

  /** The cluster's ledger refused the allocation (its limit, or `unavailable`): 486/508/500, and it ends. */
  relayRefused(allocationId: number, refusal: QuotaRefusal | 'unavailable'): void {
    const a = this.#s.byId.get(allocationId);
    if (a !== undefined) clusterRefused(this.#s, a, refusal);
  }

  /**
   * Expires allocations, permissions, channels and unbound TCP peer connections, and emits each
   * allocation's `relayed` traffic at most once a second. Call about once a second.
   */
  sweep(now: number): void {
    sweep(this.#s, now);
  }

  /** The server is closing: every allocation ends (cause `server-close`) and its relay is closed. */
  close(now: number): void {
    this.#s.now = now;
    for (const a of [...this.#s.byId.values()]) endAllocation(this.#s, a, 'server-close');
  }

  // ---------------------------------------------------------------- RFC 6062 (TCP relay)

  /** The relay's TCP connection to the peer is up: answer the Connect with CONNECTION-ID. */
  tcpConnected(connectionId: number, now: number): void {
    tcpConnected(this.#s, connectionId, now);
  }

  /** The relay could not reach the peer: 447 Connection Timeout or Failure. */
  tcpConnectFailed(connectionId: number): void {
    tcpConnectFailed(this.#s, connectionId);
  }

  /**
   * A peer connected to a TCP allocation's relayed address (RFC 6062 section 5.3). Returns the
   * connection id when the peer has a permission (a ConnectionAttempt indication goes to the
   * client), or undefined: the driver then closes the peer's connection.
   */
  tcpIncoming(allocationId: number, peer: TransportAddress, now: number): number | undefined {
    const a = this.#s.byId.get(allocationId);
    return a === undefined ? undefined : tcpIncoming(this.#s, a, peer, now);
  }

  /** A peer TCP connection closed. */
  tcpClosed(connectionId: number): void {
    const c = this.#s.tcp.get(connectionId);
    if (c) forgetTcp(this.#s, c);
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
