/**
 * # Peer connections over ICE
 *
 * The node:dgram driver of the sans-I/O ICE agent, signalled through a rendezvous service:
 *
 * ```ts
 * const rv = await RendezvousClient.connect({ url, identity });
 * const punch = await learnPunchOptions(rv.iceServers, { signal }); // optional: birthday punching
 * // caller (controlling)
 * const conn = await connectPeer(rv, peerId, { signal, punch });
 * conn.path;                 // { path: 'direct' | 'relay', localCandidate, remoteCandidate, rttMs, punched }
 * conn.send(bytes);          // application datagrams on the selected pair
 * for await (const p of conn.paths({ signal })) ...;   // relay first, then a direct upgrade
 * for await (const d of conn.data({ signal })) ...;    // or conn.on('data', ...), conn.events()
 * const rtt = await conn.ping({ signal });
 * await conn.close();        // sends `bye`, closes the sockets and the TURN allocation
 * // a failure to connect (IceError, RendezvousError, IceConnectError) carries a diagnosis:
 * // connectionDiagnosis(e) says which candidates each side had, whether a relay was offered
 * // and obtained, and which permissions the relay refused
 * // callee (controlled)
 * for await (const c of acceptedConnections(rv, { signal, punch })) c.on('data', (d) => c.send(d));
 * // or: const stop = acceptPeers(rv, (c) => ..., options);
 * ```
 *
 * Gathering: one UDP socket per host address (every interface address, loopback too with
 * `includeLoopback`, which is on by default when the rendezvous service or a STUN/TURN server is
 * on loopback, or exactly `hostAddresses`); a server-reflexive candidate per socket and
 * STUN server, learned on that same socket (responses are matched by transaction id before the
 * agent sees the datagram), and per socket from `mappedAddress` (a port mapping) when given;
 * one relayed candidate from the TURN servers of `iceServers` (the rendezvous client's by
 * default): UDP ones first, TCP/TLS ones (`turn:...?transport=tcp`, `turns:`) after
 * `tcpRelayDelayMs` or as soon as UDP failed, the first allocation wins. Host candidates go in
 * the offer or answer, the others trickle (RFC 8838) followed by `end-of-candidates`.
 *
 * Birthday punching (`punch`, from {@link learnPunchOptions}): each side's NAT mapping goes in
 * the offer or answer `app` payload; a hard side (endpoint-dependent mapping) facing an easy one
 * opens extra sockets and both probe (see `ice/birthday.ts`); two hard sides do not punch (the
 * relay is the path at once). `conn.punch` reports what it did, `path.punched` whether the
 * selected pair is the punched path.
 *
 * Defaults (every option has one):
 *
 * | option | default |
 * |---|---|
 * | `hostAddresses` / `includeLoopback` | every interface address / true when the rendezvous or a STUN/TURN server is on loopback (or the offer has loopback candidates), else false |
 * | `hostCandidates`, `serverReflexive`, `relay` | true |
 * | `iceServers` | the rendezvous client's |
 * | `mappedAddress` | none |
 * | `gatherTimeoutMs` | 5000 (server-reflexive, mapped and relayed gathering) |
 * | `tcpRelayDelayMs` | 250 |
 * | `turnTls` | system trust store, server name checked |
 * | `agent.failureTimeout` | 10,000 ms: connecting rejects with IceError `timeout` |
 * | `punch` | none (no punching, no `app` keys); budgets: 256 sockets (at most 1024), 2000 probes at 1000/s, give up after 6 s |
 * | `learnPunchOptions` probe | 1000 ms at most |
 * | `ping({ timeoutMs })` | 2000 |
 * | iterators' `bufferSize` | 1024 |
 * | `signal` | none; aborting rejects connecting with `ABORTED` and closes the connection |
 *
 * @module
 */
export {
  IceConnection,
  type IceConnectionOptions,
  type IceConnectionEvents,
  type IceConnectionEvent,
  type IceIteratorOptions,
  type ConnectionEndpoint,
  type ConnectionPath,
} from './connection.js';
export { connectPeer } from './connect-peer.js';
export { acceptOffer, acceptPeers, type AcceptPeersOptions, type PerOfferSetup, type RefusedOffer, acceptedConnections } from './accept.js';
export {
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_PEER,
  OfferAdmission,
  type OfferAdmissionOptions,
  type OfferAdmissionStats,
  type OfferRefusalCause,
  refusalReason,
} from './admission.js';
export {
  type CandidateCounts,
  type ConnectionDiagnosis,
  IceConnectError,
  type RefusedPermission,
  type RelayOutcome,
  connectionDiagnosis,
  serversOnLoopback,
} from './diagnosis.js';
export { type LearnPunchOptions, type LearnedPunchOptions, learnPunchOptions } from './nat-info.js';
export { type IcePunchOptions, MAX_PUNCH_SOCKETS, type PunchHost, type PunchReport, SocketPunch, punchBase } from './punch.js';
// The application datagram framing lives in @nat/protocol (every wire format does); re-exported here.
export { FRAME_DATA, FRAME_PING, FRAME_PONG, type AppFrame as Frame, decodeFrame, encodeDataFrame, encodePingFrame } from '@nat/protocol';
export { hostInterfaceAddresses, explicitHostAddresses, isPublicAddress, rankHostAddresses } from './hosts.js';
export { type IceServerRefs, type ParsedIceServerUrl, type StunServerRef, type TurnServerRef, iceServerRefs, parseIceServerUrl } from './servers.js';
