/**
 * # @nat/client: NAT discovery
 *
 * Learn what NAT this host is behind and what address the world sees, over STUN.
 *
 * ```ts
 * import { detectNat, stunBinding } from '@nat/client';
 *
 * const { mappedAddress } = await stunBinding('stun.example.org:3478');
 * const report = await detectNat({ server: '127.0.0.1:3478', onProgress: console.log });
 * report.classic;   // 'port-restricted-cone' (letter 'D'), ...
 * report.mapping;   // 'endpoint-independent', ...
 * ```
 *
 * Layers, bottom up:
 *
 * - **Transactions, sans-I/O** ({@link StunTransaction}, {@link TransactionManager}): RFC 8489
 *   section 6.2 retransmission as plain state machines fed with time and messages
 *   (`start`, `handleResponse`, `handleTimeout`, `pollTransmit`, `pollTimeout`), tested with a
 *   virtual clock. Defaults: RTO 500 ms doubling, Rc 7, Rm 16 (39.5 s), Ti 39.5 s on TCP/TLS.
 * - **Drivers** ({@link StunUdpSocket}, {@link StunStreamSocket}): node:dgram, node:net and
 *   node:tls sockets with one timer each, many transactions at once, an `AbortSignal` on every
 *   operation.
 * - **Binding** ({@link stunBinding}): one request, with CHANGE-REQUEST, RESPONSE-PORT, PADDING
 *   or as a classic RFC 3489 request; returns the mapped address and the rest of the response.
 * - **Discovery**: the classic test of the project's seed document ({@link classicNextStep},
 *   {@link classicNatTest}; types A-G, {@link NAT_CLASSES}), RFC 5780 behaviour discovery
 *   ({@link classifyMapping}, {@link classifyFiltering}, {@link testHairpinning},
 *   {@link measureBindingLifetime}), and {@link detectNat}, which runs them all at once and
 *   returns a {@link NatReport}.
 *
 * Discovery does not use the RFC 8489 timing: it would wait 39.5 s for every test that expects
 * no answer. Its default ({@link DISCOVERY_RETRANSMISSION}) is RTO 250 ms, Rc 4, Rm 4: requests
 * at 0, 250, 750 and 1750 ms, given up at 2750 ms. Every value can be set.
 *
 * - **TURN** ({@link TurnClient}, {@link TurnAllocationCore}): allocations with the long-term
 *   credential exchange, refreshes, permissions, channels, Send indications and ChannelData over
 *   UDP, TCP and TLS (RFC 8656).
 *
 * Errors: every error is a {@link NatClientError} with a `code`, of one subclass per layer.
 * The STUN and TURN operations (and the sockets under ICE and the rendezvous) reject with a
 * {@link StunClientError} whose `code` is `TIMEOUT`, `ABORTED`, `ERROR_RESPONSE` (with
 * `stunErrorCode`), `BAD_RESPONSE`, `SOCKET` or `BAD_ADDRESS`; ICE failures with an
 * {@link IceError} (`all-pairs-failed`, `timeout`, ...), refusals by the rendezvous or the peer
 * with a {@link RendezvousError} (`peer-offline`, `name-taken`, `bye`, ...); the peer link with a `PeerLinkError`, port mapping with a
 * `PortMapError`, identity files with an `IdentityFileError`. Discovery reports test failures
 * in its result instead of throwing.
 *
 * @packageDocumentation
 */

export {
  IceError,
  type IceErrorCode,
  NatClientError,
  RendezvousError,
  type RendezvousErrorCode,
  StunClientError,
  type StunClientErrorCode,
  isStunClientError,
} from './errors.js';

export { type RetransmissionOptions, type Retransmission, RFC8489_RETRANSMISSION, resolveRetransmission, transactionBudget } from './transaction/options.js';
export { StunTransaction, type StunTransactionInit, type TransactionResult, type TransactionState } from './transaction/transaction.js';
export { TransactionManager, type Transmit } from './transaction/manager.js';

export type { RequestOptions, StunResponse } from './driver/runner.js';
export { StunUdpSocket, type StunUdpSocketInit, type IncomingMessage, type WaitOptions } from './driver/udp.js';
export { StunStreamSocket, type StunStreamSocketInit, type StreamTransport } from './driver/stream.js';

export { DEFAULT_STUN_PORT, DEFAULT_STUNS_PORT, type ServerAddress, type ResolvedServer, resolveServer, routeSourceAddress } from './resolve.js';
export {
  type BindingRequestOptions,
  type StunBindingOptions,
  type StunBindingResult,
  encodeBindingRequest,
  parseBindingResponse,
  stunBinding,
  effectiveLocalAddress,
} from './binding.js';

export { type NatClass, type NatClassLetter, type NatBehavior, type NatClassInfo, NAT_CLASSES, natClassInfo, natClassLetter } from './discovery/nat-class.js';
export type { TestOutcome, FirstTestOutcome } from './discovery/outcome.js';
export { type ClassicObservations, type ClassicStep, type ClassicStepName, type ClassicTestName, classicNextStep } from './discovery/classic.js';
export { type BehaviorStep, type MappingObservations, type FilteringObservations, classifyMapping, classifyFiltering } from './discovery/behavior.js';
export { DISCOVERY_RETRANSMISSION, type DiscoveryProgress } from './discovery/probes.js';
export { classicNatTest, type ClassicNatTestOptions, type ClassicNatTestResult } from './discovery/classic-run.js';
export { testHairpinning, type HairpinTestInit } from './discovery/hairpin.js';
export {
  BindingLifetimeSearch,
  type BindingLifetimeSearchOptions,
  type BindingLifetimeOptions,
  type BindingLifetimeResult,
  type LifetimeProbe,
  measureBindingLifetime,
} from './discovery/lifetime.js';
export { detectNat, type DetectNatOptions, type NatReport, describeReachability, algFrom } from './discovery/detect.js';
export { probeNatMapping, type ProbeNatMappingOptions, type NatMappingProbe } from './discovery/mapping-probe.js';
export * from './turn/index.js';
export * from './rendezvous/index.js';
export * from './ice/index.js';
export * from './connect/index.js';
export * from './link/index.js';
export * from './portmap/index.js';
export * from './expose/index.js';
