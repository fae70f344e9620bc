export * from './constants.js';
export * from './error-reasons.js';
export * from './message.js';
export * from './encode.js';
export * from './integrity.js';
export * from './fingerprint.js';
