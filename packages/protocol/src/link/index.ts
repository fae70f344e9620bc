/**
 * The peer link's wire formats: its datagrams and control messages (`frames.ts`), stream resumption (`resume.ts`) and the header
 * of a tunnel stream (`tunnel-header.ts`).
 *
 * @module
 */
export * from './frames.js';
export * from './resume.js';
export * from './tunnel-header.js';
