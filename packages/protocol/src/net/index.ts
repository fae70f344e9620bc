/**
 * Address arithmetic shared by the client, the server and the CLI: per-source share keys, IP
 * prefixes (CIDR) and the relay's default peer ranges.
 */
export * from './source-key.js';
export * from './cidr.js';
export * from './peer-ranges.js';
