/**
 * The expose protocol (public exposure through a server, frp/ngrok style): yamux framing, a
 * sans-I/O session with TCP-like streams, stream preambles, UDP datagram framing, the control
 * messages and the PROXY protocol v2 header. No sockets, no clocks.
 * @module
 */
export * from './frame.js';
export { MuxSession, MuxStream, MuxStreamError, type MuxSessionInit } from './session.js';
export * from './preamble.js';
export * from './datagram.js';
export * from './proxy-v2.js';
export * from './control.js';
export { spliceTcp, frameWriter, readControlMessages, type ByteMeter, type ResettableSocket, type SpliceResult } from './splice.js';
export * from './outbound.js';
export * from './socks5.js';
export { readStreamPrefix, StreamPrefixError, type PrefixReadable } from './prefix.js';
