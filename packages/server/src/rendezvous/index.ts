/**
 * # Rendezvous service
 *
 * A WebSocket signalling service over the messages of `@nat/protocol` (version 1): peers prove
 * their Ed25519 identity by signing the server's challenge, then exchange offers, answers and
 * trickled candidates through it. It keeps nothing but live presence (peer id -> connection).
 *
 * - {@link startRendezvous}: stand-alone, on its own HTTP server.
 * - {@link attachRendezvous}: embedded in an existing node:http server, so any peer with a
 *   reachable address can volunteer as a rendezvous point.
 *
 * Behaviour:
 * - On connect the server sends `challenge` (32 random bytes); the peer answers `register`.
 *   The signature is checked over `registerSigningPayload(nonce, peerIdFromPublicKey(key))`;
 *   the peer id is derived by the server. A bad signature is answered `error` `unauthorized`
 *   and the connection is closed (4002): the challenge is single-use.
 * - A connection that does not register within `registerTimeoutMs` (10 s) is closed (4001).
 * - The same peer id registering again: the newest connection wins; the old one is closed with
 *   4000 "replaced" (no protocol message says "replaced": a relayed `bye` needs a session id).
 * - Relayed messages (`offer`, `answer`, `candidate`, `end-of-candidates`, `bye`) need a
 *   registered sender whose id is `from` (else `unauthorized`); they are forwarded unchanged, or
 *   answered at once with `peer-offline` (with `ref`) when `to` is not connected. Since nothing
 *   is kept about peers that left, `unknown-peer` is never sent.
 * - Per connection token bucket (20 messages/s, bursts of 50): the first message over is
 *   answered `rate-limited`, and after 20 more without one accepted the connection is closed
 *   (4003). Messages larger than 64 KiB close the connection (1009, ws `maxPayload`).
 * - Heartbeat: a WebSocket ping every 30 s; a connection silent for a whole round is dropped.
 * - With `turn`, `registered` carries the STUN/TURN URIs and anonymous relay credentials
 *   (`username = expiry:~peerId`, `credential = base64(HMAC-SHA1(anonymousRelayKey(secret),
 *   username))`) valid for `ttl` seconds (default one day): never an operator's REST credential.
 *   The TURN server takes them with `anonymousRelayUsers` and narrows them with `RelayTiers`: UDP
 *   relay only, toward what the peer's sessions signalled, which this service records in
 *   `scope` as it relays offers, answers and candidates. Public exposure refuses them.
 * - Admission (`admission`): open by default; a key list and/or invite tokens
 *   (`Authorization: Bearer TOKEN` on the upgrade, else 401) close it.
 * - Names: at most 8 per key, 32 new claims per source address (IPv6: /64) per hour, 100,000 in
 *   all; a name whose owner has not registered for 30 days is released.
 * - One source address (IPv6: /64) holds at most 64 WebSocket connections (1013 beyond).
 * - {@link startRendezvous} only: every TCP connection of its HTTP server (services attached to
 *   it, such as `attachExpose`, included) goes through a StreamGovernor from accept: at most
 *   20,000 in all and 80 per source (IPv6: /64) by default (`connections`), refused at accept
 *   beyond; one that sends nothing before its upgrade is closed after 10 s (`handshakeTimeoutMs`;
 *   node:http answers 408 to one whose request is not whole by then); one source may have at
 *   most 16 connections that have not sent their request. Upgraded connections are governed by
 *   their service's heartbeat.
 * - Events (`events`): peer-online/peer-offline (closed, replaced, timeout, server-close),
 *   session-brokered (an offer relayed), auth-failure (bad-integrity, missing, not-allowed),
 *   refused (connections, pending-connections, names), rate-limited (requests, registrations).
 * - Several nodes (`cluster`, e.g. @nat/redis over Redis): presence, names and signalling are
 *   shared, so peers registered on different nodes meet; newest wins across nodes too (the older
 *   node closes its connection with 4000); a message for a peer on no live node is answered
 *   `peer-offline` as locally, with the same rate and size limits (checked where it was sent).
 *   `registered` is sent once the presence is recorded (or the store failed: local only).
 * - {@link anonymousRelayTier} wires what TURN and the rendezvous share for the anonymous tier.
 *
 * @example
 * ```ts
 * const rv = await startRendezvous({ host: '0.0.0.0', port: 8443,
 *   turn: { urls: ['stun:turn.example.org', 'turn:turn.example.org'], secret } });
 * // give peers rv.url; later
 * await rv.close();
 * ```
 * @module
 */
export {
  type RendezvousLimits,
  type RendezvousTurnOptions,
  type RendezvousOptions,
  type StartRendezvousOptions,
  DEFAULT_RENDEZVOUS_LIMITS,
  DEFAULT_TURN_CREDENTIAL_TTL,
} from './options.js';
/** Re-exported from @nat/protocol, where the client reads the same codes. */
export { RENDEZVOUS_CLOSE_CODES } from '@nat/protocol';
export { type RendezvousHandle, attachRendezvous } from './service.js';
export type { RendezvousCluster, ClusterInbox, ClusterForward, RendezvousClusterStats } from './cluster.js';
export type { RendezvousStats, RendezvousGateStats } from './stats.js';
export { type RendezvousAdmission } from './admission.js';
export { type NameLimits, DEFAULT_NAME_LIMITS, NameTable } from './names.js';
export { type RelayScope, type ScopeKind, type MemoryRelayScopeOptions, MemoryRelayScope, recordSignalledCandidates, sameSource, plainIp } from './scope.js';
export { type RendezvousServer, startRendezvous } from './server.js';
export { TokenBucket } from './token-bucket.js';
export { type AnonymousRelayTier, type AnonymousRelayTierOptions, anonymousRelayTier } from './relay-tier.js';
