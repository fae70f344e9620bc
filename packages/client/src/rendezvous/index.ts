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
 * Errors are StunClientError (the client layer's one error type) with `code` `BAD_ADDRESS`,
 * `SOCKET`, `ERROR_RESPONSE` (`reason` = the signalling error code), `BAD_RESPONSE`, `TIMEOUT`
 * or `ABORTED`.
 *
 * @module
 */
export {
  RendezvousClient,
  RENDEZVOUS_REPLACED,
  type RendezvousConnectOptions,
  type RendezvousCloseInfo,
  type RendezvousClientEvents,
  type RendezvousMessagesOptions,
  type RendezvousInbound,
  type RelayedMessage,
  type OutgoingRelayedMessage,
} from './client.js';
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
