/**
 * # Rendezvous client
 *
 * Register with a rendezvous service (see `startRendezvous` in @nat/server) under an Ed25519
 * identity, learn the STUN/TURN servers it offers, and exchange offers, answers and trickled
 * candidates with other peers.
 *
 * ```ts
 * const identity = await loadOrCreateIdentity(); // ~/.config/nat/identity.pem, mode 0600
 * const rv = await RendezvousClient.connect({ url: 'ws://rv.example.org:8443/', identity });
 * rv.id;          // this peer's id
 * rv.iceServers;  // STUN/TURN with time-limited credentials
 * const ref = rv.send({ type: 'offer', to: peerId, sessionId, ufrag, pwd, candidates: [] });
 * for await (const m of rv) {
 *   if (m.type === 'error' && m.ref === ref) console.log(m.code); // 'peer-offline'
 *   if (m.type === 'answer') break;
 * }
 * await rv.close();
 * ```
 *
 * Several nodes: {@link resolveRendezvousTargets} turns URLs (a host name with several addresses
 * counts as one target per address) into targets, and {@link connectRendezvousTargets} registers
 * with the first that accepts, from a given start index around the list once, with the protocol
 * ping on (every 1 s, dropped after 1.5 s without an answer) so that a stopped node is left fast.
 * Staying registered (moving on when the connection drops) is the caller's loop: `nat listen`'s
 * is in apps/cli `keepRendezvous`.
 *
 * Errors are StunClientError (the client layer's one error type) with `code` `BAD_ADDRESS`,
 * `SOCKET`, `ERROR_RESPONSE` (`reason` = the signalling error code), `BAD_RESPONSE`, `TIMEOUT`
 * or `ABORTED`.
 *
 * @module
 */
export { RendezvousClient } from './client.js';
export {
  RENDEZVOUS_REPLACED,
  type RendezvousConnectOptions,
  type RendezvousCloseInfo,
  type RendezvousClientEvents,
  type RendezvousMessagesOptions,
  type RendezvousInbound,
  type RelayedMessage,
  type OutgoingRelayedMessage,
} from './options.js';
export {
  type RendezvousTarget,
  type ResolveRendezvousTargetsOptions,
  type ConnectRendezvousTargetsOptions,
  FAILOVER_PING_INTERVAL_MS,
  FAILOVER_PING_TIMEOUT_MS,
  connectRendezvousTargets,
  describeRendezvousTarget,
  resolveRendezvousTargets,
} from './targets.js';
export {
  type RendezvousIdentity,
  type LoadedIdentity,
  type IdentityFileErrorCode,
  IdentityFileError,
  defaultIdentityPath,
  generateIdentity,
  identityFromPem,
  loadOrCreateIdentity,
  peerIdOf,
  rawPublicKeyBase64url,
} from './identity.js';
