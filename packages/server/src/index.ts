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
export { type TlsCredentials, type TlsCredentialsSource, loadTlsCredentials } from './tls/credentials.js';
export { type EndpointSet, type SocketRole, SOCKET_ROLES, availableRoles, changeRole, roleAddress } from './stun/endpoints.js';
export { DEFAULT_RATE_LIMIT, type RateLimit, RateLimiter } from './stun/rate-limiter.js';
export { StunResponder, type StunReply, type StunResponderInit, type StunResponderStats } from './stun/responder.js';
export { type StunListener, type StunServer, type StunServerInit, startStunServer } from './stun/server.js';
