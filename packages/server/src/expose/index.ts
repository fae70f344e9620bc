/**
 * # Expose service
 *
 * Public exposure through the server, as frp and ngrok do it: a client behind NAT keeps one
 * control connection to the server (an HTTP Upgrade to `nat-expose` on the rendezvous service's
 * HTTP server, so the same ws:// or wss:// address serves both), asks for a public TCP or UDP
 * port, and receives each inbound public connection as a yamux stream on that connection.
 * See {@link attachExpose}.
 * @module
 */
export { type ExposeHandle, type ExposeStats, type ExposureInfo, attachExpose } from './service.js';
export { type ExposeOptions, type ExposeLimits, DEFAULT_EXPOSE_LIMITS, parsePortRange } from './options.js';
export { ByteBudget } from './budget.js';
export type { ExposeCluster, ExposeOwnerRecord, ExposePortAddress } from './cluster.js';
export { type ExposeOutboundOptions, OutboundSide } from './outbound.js';
