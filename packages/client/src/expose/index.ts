/**
 * Public exposure through a nat-server (frp/ngrok style): {@link exposePublic}.
 * @module
 */
export { exposePublic, type ExposeInit, type ExposeCredentials, type ExposeTunnel, type ExposeEvents, type ExposedAddress } from './client.js';
export { exposeEndpoint, openExposeConnection, type ExposeTlsOptions } from './connect.js';
export { openOutbound, ExposeOutboundError, type ExposeOutboundErrorCode, type OutboundConnection } from './outbound.js';
export { startOutboundSocks, OutboundSocksError, type OutboundSocks, type OutboundSocksEvent, type OutboundSocksInit } from './socks.js';
export { lookupExposeOwner, ExposeOwnerError, type ExposeOwner } from './owner.js';
