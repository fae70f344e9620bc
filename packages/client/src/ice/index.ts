/**
 * # ICE agent (sans-I/O)
 *
 * {@link IceAgent} is an RFC 8445 full agent with RFC 8838 trickle ICE and RFC 7675 consent
 * freshness, as a state machine with no sockets, timers or clock inside:
 *
 * ```ts
 * const agent = new IceAgent({ role: 'controlling', tieBreaker, ufrag, pwd });
 * agent.addLocalCandidate(hostCandidate, 'udp0');      // the driver gathers
 * agent.setRemoteCredentials(remoteUfrag, remotePwd);  // from signalling
 * agent.addRemoteCandidate(parseCandidate(line));      // trickled
 * agent.handlePacket(bytes, { base: 'udp0', from }, now);  // false: application data
 * agent.handleTimeout(now);
 * for (let t; (t = agent.pollTransmit()); ) socketOf(t.base).send(t.bytes, t.to);
 * for (let e; (e = agent.pollEvent()); ) console.log(e);
 * const wakeAt = agent.pollTimeout();
 * ```
 *
 * Defaults ({@link ICE_AGENT_DEFAULTS}): Ta 50 ms, check RTO 250 ms doubling to 1 s, 7
 * transmissions per check, failure after 10 s, nomination delay 200 ms, relay first, consent
 * every 5 s (randomised), disconnected after 8 s and failed after 30 s without consent.
 */
export { IceAgent, type IceAgentInit } from './agent.js';
export {
  type BaseId,
  type CandidatePairInfo,
  type CandidatePairState,
  ICE_AGENT_DEFAULTS,
  type IceAgentEvent,
  type IceAgentOptions,
  type IceAgentState,
  type IceFailureReason,
  type IcePacketSource,
  type IcePath,
  type IceRole,
  type IceTransmit,
  type ResolvedIceAgentOptions,
  pathOf,
} from './types.js';
export { type CheckRequestInit, encodeCheckRequest, encodeCheckSuccess, encodeCheckError, encodeKeepalive } from './messages.js';
export {
  BIRTHDAY_DEFAULTS,
  BirthdayPuncher,
  type BirthdayOptions,
  type BirthdayPuncherInit,
  PUNCH_APP_KEYS,
  type PortAllocation,
  type PunchCredentials,
  type PunchEvent,
  type PunchMapping,
  type PunchNatInfo,
  type PunchOutcome,
  type PunchRole,
  type PunchSocket,
  type PunchTransmit,
  addPunchedPath,
  classifyPortAllocation,
  punchInfoFromApp,
  punchInfoToApp,
  punchRole,
  punchTarget,
} from './birthday.js';
export { addressPrecedence, isRelayBase, relayBase, relayLocalPreference } from './family.js';
