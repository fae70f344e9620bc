/**
 * @nat/server: the server roles of the NAT traversal stack, each a library first so that any
 * peer with a reachable address can volunteer it.
 *
 * - STUN (RFC 8489) with RFC 5780 behaviour discovery and classic RFC 3489 answers:
 *   {@link startStunServer} runs it on sockets; {@link StunResponder} is the sans-I/O core.
 *
 * @example
 * ```ts
 * import { startStunServer } from '@nat/server';
 * const server = await startStunServer({ listen: ['127.0.0.1'], alternate: ['127.0.0.2'] });
 * // ... later
 * await server.close();
 * ```
 */
export { ServerError, type ServerErrorCode } from './errors.js';
export { type Logger, silentLogger } from './logger.js';
export {
  type AllocationEndCause,
  type AuthFailureReason,
  type CloseCause,
  type EventTransport,
  type RefusalCause,
  type ServerEvent,
  type ServerEventOf,
  type ServerEventSink,
  type ServerEventType,
  type ServiceName,
  ServerEventHub,
  noEvents,
} from './events.js';
export { type TlsCredentials, type TlsCredentialsSource, loadTlsCredentials } from './tls/credentials.js';
export { type EndpointSet, type SocketRole, SOCKET_ROLES, availableRoles, changeRole, roleAddress } from './stun/endpoints.js';
export { type ExternalAddress, ExternalAddresses } from './stun/external.js';
export { DEFAULT_RATE_LIMIT, type RateLimit, RateLimiter } from './stun/rate-limiter.js';
export { StunResponder, type StunReply, type StunResponderInit, type StunResponderStats } from './stun/responder.js';
export { type StunListener, type StunServer, type StunServerInit, startStunServer } from './stun/server.js';
export {
  DEFAULT_STREAM_LIMITS,
  StreamGovernor,
  type StreamGovernorOptions,
  type StreamGovernorStats,
  type StreamHooks,
  StreamLease,
  type StreamLimits,
  type StreamOutputKind,
} from './listeners/stream.js';
export { type GovernedConnection, createGovernedTlsServer, governTcpServer, proxiedTlsListener } from './listeners/listen.js';
export { ONE_PORT_ALPN, type OnePortRoutes, routeOnePort } from './listeners/one-port.js';
export { ProxyFront, type ProxyFrontStats, type ProxyProtocolOptions } from './listeners/proxy-front.js';
export { adoptClientAddress } from './listeners/client-address.js';
export { type BoundEndpointSet, type EndpointPorts, type UdpSockets, bindEndpointSet, bindUdp } from './listeners/udp.js';
export { TurnDriver, type TurnDriverInit, type TurnOptions } from './relay/driver.js';
export { TurnCore, type TurnCoreInit, type TurnOutput, type TurnStats } from './turn/core.js';
export { Allocation, type ClientEndpoint, type Channel } from './turn/allocation.js';
export type { AlternateServerOf } from './turn/options.js';
export {
  type TurnAuthenticator,
  staticUsers,
  restApiSecrets,
  restApiCredentials,
  parseUsersFile,
  anyOf,
  TurnAuthUnavailableError,
  anonymousRelayCredentials,
  anonymousRelayUsers,
} from './turn/auth.js';
// Moved to @nat/protocol (the CLI, the client and the expose service share them): re-exported
// here so that code importing them from @nat/server keeps working.
export {
  type RestApiCredentials,
  restApiPassword,
  restApiExpiry,
  ANONYMOUS_RELAY_LABEL,
  anonymousRelayKey,
  anonymousRelayPeer,
  type PeerVerdict,
  DEFAULT_DENIED_PEERS,
  embeddedIPv4,
  type Cidr,
  parseCidr,
  cidrContains,
} from '@nat/protocol';
export {
  type AnonymousRelayLimits,
  DEFAULT_ANONYMOUS_RELAY_LIMITS,
  type RelayLease,
  type RelayRefusal,
  type RelayTierPolicy,
  type RelayTierStats,
  RelayTiers,
  type RelayTiersOptions,
  isRelayRefusal,
} from './turn/tiers.js';
export { NonceIssuer } from './turn/nonce.js';
export { PeerPolicy, type PeerPolicyInit } from './turn/peer-policy.js';
export { RelayPorts, type RelayPortRange, DEFAULT_RELAY_PORTS } from './turn/relay-ports.js';
export { TurnQuotas, type TurnQuotaInit, type QuotaRefusal, quotaUser } from './turn/quota.js';
export type { TurnClusterQuota, ClusterQuotaHolder } from './turn/cluster.js';
export type { TierQuota } from './turn/quota.js';
export { TcpPeerLimits, type TcpPeerLimitsInit, type TcpOrigin } from './turn/tcp-limits.js';
export { boundedErrorAttributes, MIN_ERROR_ANSWER } from './stun/error-answer.js';
export * from './rendezvous/index.js';
export * from './expose/index.js';
export { ServerMetrics, type ServerMetricsInit, type MetricsSources } from './admin/metrics.js';
export { type AdminServer, type AdminServerInit, startAdminServer } from './admin/server.js';
export { StatusView, type StatusViewInit, type StatusSnapshot, type RecentRefusal, type ExposedPortStatus } from './admin/status.js';
export { renderStatusPage } from './admin/status-page.js';
