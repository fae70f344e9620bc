/**
 * ICE priorities: the candidate priority of RFC 8445 section 5.1.2.1, the TCP local preference
 * of RFC 6544 section 4.2, and the candidate pair priority of RFC 8445 section 6.1.2.3.
 */
import { EncodeError } from '../errors.js';
import type { CandidateType, TcpType } from './candidate.js';

/**
 * The type preferences RFC 8445 section 5.1.2.2 recommends: host 126, peer-reflexive 110,
 * server-reflexive 100, relayed 0. The RFC requires peer-reflexive to rank above
 * server-reflexive: a peer-reflexive candidate is learned during the checks and must win over
 * the server-reflexive one with the same address (section 5.1.2.1).
 */
export const RECOMMENDED_TYPE_PREFERENCES: Readonly<Record<CandidateType, number>> = Object.freeze({
  host: 126,
  prflx: 110,
  srflx: 100,
  relay: 0,
});

/** The largest local preference (RFC 8445 section 5.1.2.1: 0 to 65535 inclusive). */
export const MAX_LOCAL_PREFERENCE = 65535;

/** The largest candidate or check priority: priorities are 32-bit unsigned integers. */
export const MAX_PRIORITY = 0xffff_ffff;

function checkInteger(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EncodeError('BAD_VALUE', `${what} must be an integer from ${min} to ${max}, not ${String(value)}`);
  }
}

/**
 * The priority of a candidate (RFC 8445 section 5.1.2.1):
 * `2^24 * type preference + 2^8 * local preference + (256 - component ID)`.
 *
 * @param type the candidate type, whose type preference comes from `typePreferences`
 * @param localPreference 0..65535, 65535 the most preferred (RFC 8445 section 5.1.2.2:
 *   65535 when the agent has a single IP address; see {@link tcpLocalPreference} for TCP)
 * @param componentId 1..256 (1 for RTP or a single-component stream)
 * @param typePreferences overrides of {@link RECOMMENDED_TYPE_PREFERENCES}, each 0..126
 * @throws EncodeError `BAD_VALUE` when an argument is out of range
 */
export function candidatePriority(
  type: CandidateType,
  localPreference: number,
  componentId: number,
  typePreferences: Partial<Readonly<Record<CandidateType, number>>> = RECOMMENDED_TYPE_PREFERENCES,
): number {
  const typePreference = typePreferences[type] ?? RECOMMENDED_TYPE_PREFERENCES[type];
  if (typePreference === undefined) {
    throw new EncodeError('BAD_VALUE', `unknown candidate type ${JSON.stringify(type)}`);
  }
  checkInteger(`type preference of ${type}`, typePreference, 0, 126);
  checkInteger('local preference', localPreference, 0, MAX_LOCAL_PREFERENCE);
  checkInteger('component ID', componentId, 1, 256);
  // At most 126 * 2^24 + 65535 * 2^8 + 255 = 2130706431 < 2^31: exact in a double.
  return typePreference * 0x100_0000 + localPreference * 0x100 + (256 - componentId);
}

/**
 * The direction preferences RFC 6544 section 4.2 recommends for TCP candidates, 0..7 with 7 the
 * most preferred. Host, UDP-tunneled and relayed candidates prefer active, then passive, then
 * simultaneous-open; server-reflexive (NAT-assisted) candidates reverse that: simultaneous-open
 * is what gets a connection through a NAT.
 */
export const RECOMMENDED_TCP_DIRECTION_PREFERENCES: Readonly<{
  readonly host: Readonly<Record<TcpType, number>>;
  readonly reflexive: Readonly<Record<TcpType, number>>;
}> = Object.freeze({
  host: Object.freeze({ active: 6, passive: 4, so: 2 }),
  reflexive: Object.freeze({ so: 6, active: 4, passive: 2 }),
});

/**
 * The RFC 6544 section 4.2 recommended direction preference for a TCP candidate of this type:
 * srflx and prflx candidates use the server-reflexive row, host and relay the host row.
 */
export function recommendedTcpDirectionPreference(type: CandidateType, tcpType: TcpType): number {
  const row = type === 'srflx' || type === 'prflx' ? RECOMMENDED_TCP_DIRECTION_PREFERENCES.reflexive : RECOMMENDED_TCP_DIRECTION_PREFERENCES.host;
  return row[tcpType];
}

/**
 * The local preference of a TCP candidate (RFC 6544 section 4.2):
 * `2^13 * direction-pref + other-pref`.
 *
 * @param directionPreference 0..7, see {@link recommendedTcpDirectionPreference}
 * @param otherPreference 0..8191; the preference among the host's IP addresses, 8191 (the
 *   default) when there is only one
 * @throws EncodeError `BAD_VALUE` when an argument is out of range
 */
export function tcpLocalPreference(directionPreference: number, otherPreference = 8191): number {
  checkInteger('direction preference', directionPreference, 0, 7);
  checkInteger('other preference', otherPreference, 0, 8191);
  return directionPreference * 0x2000 + otherPreference;
}

/**
 * The priority of a candidate pair (RFC 8445 section 6.1.2.3), with G the priority of the
 * controlling agent's candidate and D that of the controlled agent's:
 * `2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0)`.
 *
 * The result exceeds the 2^53 a number holds exactly, so it is a bigint. With priorities in the
 * 1..2^31-1 range RFC 8445 section 5.1.2.1 allows it stays below 2^63 (fits an int64); this
 * function accepts any uint32, for which it reaches 2^64 + 2^32 - 2.
 * Both agents compute the same value for the same pair because G and D are named by role, not
 * by which side is local.
 *
 * @throws EncodeError `BAD_VALUE` when a priority is not a 32-bit unsigned integer
 */
export function pairPriority(controllingPriority: number, controlledPriority: number): bigint {
  checkInteger('controlling priority', controllingPriority, 0, MAX_PRIORITY);
  checkInteger('controlled priority', controlledPriority, 0, MAX_PRIORITY);
  const g = BigInt(controllingPriority);
  const d = BigInt(controlledPriority);
  const [min, max] = g < d ? [g, d] : [d, g];
  return (min << 32n) + 2n * max + (g > d ? 1n : 0n);
}
