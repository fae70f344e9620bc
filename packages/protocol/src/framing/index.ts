/**
 * Framing below and beside STUN: TURN ChannelData messages, splitting a TCP/TLS stream into
 * STUN and ChannelData messages, RFC 4571 length-prefixed framing (ICE-TCP), and the
 * first-byte demultiplexing of RFC 7983 / RFC 9443, and the application datagrams an ICE
 * connection carries in the range RFC 7983 leaves unassigned; what a TLS stream carries, by its first bytes.
 *
 * @module
 */
export * from './channel-data.js';
export * from './stun-stream.js';
export * from './rfc4571.js';
export * from './demux.js';
export * from './app-datagram.js';
export * from './stream-start.js';
