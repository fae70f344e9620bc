/**
 * Port mapping codecs: NAT-PMP (RFC 6886), PCP (RFC 6887) and SSDP search (UPnP). No I/O;
 * the drivers live in @nat/client.
 */
export * from './natpmp.js';
export * from './pcp.js';
export * from './ssdp.js';
export * from './epoch.js';
