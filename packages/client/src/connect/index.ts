/**
 * # Peer connections over ICE
 *
 * The node:dgram driver of the sans-I/O ICE agent, signalled through a rendezvous service:
 *
 * ```ts
 * const rv = await RendezvousClient.connect({ url, identity });
 * // caller (controlling)
 * const conn = await connectPeer(rv, peerId, { signal });
 * conn.path;                 // { path: 'direct' | 'relay', localCandidate, remoteCandidate, rttMs }
 * conn.send(bytes);          // application datagrams on the selected pair
 * conn.on('data', (d) => ...);
 * const rtt = await conn.ping();
 * await conn.close();        // sends `bye`, closes the sockets and the TURN allocation
 * // callee (controlled)
 * acceptPeers(rv, (conn) => conn.on('data', (d) => conn.send(d)));
 * ```
 *
 * Gathering: one UDP socket per host address (every interface address, loopback only with
 * `includeLoopback`, or exactly `hostAddresses`); a server-reflexive candidate per socket and
 * STUN server, learned on that same socket (responses are matched by transaction id before the
 * agent sees the datagram); one relayed candidate from the first TURN server of `iceServers`
 * (the rendezvous client's by default). Host candidates go in the offer or answer, the others
 * trickle (RFC 8838) followed by `end-of-candidates`.
 *
 * Birthday punching (opt-in, `punch`): each side's NAT mapping goes in the offer or answer
 * `app` payload; a hard side facing an easy one opens extra sockets and both probe (see
 * `ice/birthday.ts`); `conn.punch` reports what it did, `path.punched` whether the selected pair
 * is the punched path.
 *
 * Defaults: gathering gives up after 5 s; the agent fails after `agent.failureTimeout` (10 s)
 * without a selected pair, and connecting then rejects with StunClientError `TIMEOUT`.
 *
 * @module
 */
export {
  IceConnection,
  type IceConnectionOptions,
  type IceConnectionEvents,
  type ConnectionEndpoint,
  type ConnectionPath,
  connectPeer,
  acceptOffer,
  acceptPeers,
} from './connection.js';
export { type LearnPunchOptions, type LearnedPunchOptions, learnPunchOptions } from './nat-info.js';
export { type IcePunchOptions, MAX_PUNCH_SOCKETS, type PunchHost, type PunchReport, SocketPunch, punchBase } from './punch.js';
export { FRAME_DATA, FRAME_PING, FRAME_PONG, type Frame, decodeFrame, encodeDataFrame, encodePingFrame } from './framing.js';
export { hostInterfaceAddresses, explicitHostAddresses } from './hosts.js';
export { type IceServerRefs, type ParsedIceServerUrl, type StunServerRef, type TurnServerRef, iceServerRefs, parseIceServerUrl } from './servers.js';
