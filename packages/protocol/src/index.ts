export * from './errors.js';
export * from './address.js';
export * from './stun/index.js';
export * from './attributes/index.js';
export * from './ice/index.js';
export * from './framing/index.js';
export * from './signalling/index.js';
export * from './credentials/index.js';
