/**
 * ICE (RFC 8445) data without I/O: candidates and their SDP `candidate` attribute (RFC 8839,
 * RFC 6544 `tcptype`), candidate and pair priorities, and candidate foundations.
 */
export * from './candidate.js';
export * from './priority.js';
export * from './foundation.js';
