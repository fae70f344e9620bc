/**
 * The rendezvous signalling protocol, version 1: the JSON messages peers and the rendezvous
 * server exchange over a WebSocket, their zod schemas, the codec, and the peer identity
 * (Ed25519 public key -> peer id) with the bytes a peer signs to register.
 */
export * from './version.js';
export * from './base32.js';
export * from './peer-id.js';
export * from './fields.js';
export * from './messages.js';
export * from './register.js';
export * from './codec.js';
export * from './close-codes.js';
export * from './cluster.js';
