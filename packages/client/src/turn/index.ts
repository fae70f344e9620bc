/**
 * # TURN client (RFC 8656)
 *
 * Relay through a TURN server when no direct path exists.
 *
 * - {@link TurnAllocationCore}: the allocation as a sans-I/O state machine (`handleInput`,
 *   `handleTimeout`, `pollTransmit`, `pollTimeout`, `pollEvent`), driven in tests by a virtual
 *   clock. It runs the long-term credential exchange (401 then a signed retry, 438 Stale Nonce,
 *   300 Try Alternate), checks MESSAGE-INTEGRITY on every response to a signed request,
 *   refreshes the allocation, its permissions and its channels, and picks ChannelData or Send
 *   indications for each packet.
 * - {@link TurnClient}: the driver over node:dgram, node:net and node:tls.
 *
 * @module
 */
export { TurnAllocationCore, type TurnAllocationState } from './core.js';
export { isTurnNotOffered } from './refusal.js';
export type { TurnAllocationInfo, TurnPeerData, TurnEvent, TurnSendResult, TurnAllocationStats } from './events.js';
export { TURN_DEFAULTS, type TurnAllocationOptions, type TurnTransport, type TurnPasswordAlgorithm } from './options.js';
export { TurnClient, type TurnClientInit, type TurnClientEvents, type TurnOperationOptions, type TurnMessagesOptions, type TurnPeerAddress } from './client.js';
export { connectDualStack } from './dual-stack.js';
