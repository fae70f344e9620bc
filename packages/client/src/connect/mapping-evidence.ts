/**
 * What the ICE checks themselves tell about both sides' NAT mappings, for the punch driver when
 * the connect-time probe could not tell (a server with one address and one port, no second
 * server) or was fooled (an address-dependent mapping looks endpoint-independent from two ports of
 * one IP).
 *
 * - Our mapping: a check from a host base that succeeded with an XOR-MAPPED-ADDRESS unlike that
 *   base's server-reflexive address (the pair's mapped local candidate is peer-reflexive) means
 *   our NAT made a new mapping for that destination: endpoint-dependent (RFC 4787 section 4.1).
 * - The peer's mapping: a check that arrived from the peer's public IP on a port it never
 *   signalled (a peer-reflexive remote candidate) means the peer's NAT did the same.
 *
 * @module
 */
import { type IceCandidate, candidateTransportAddress } from '@nat/protocol';
import type { CandidatePairInfo } from '../ice/types.js';
import type { BaseId } from '../ice/types.js';

/** An endpoint-dependent mapping seen in the checks, and how. */
export interface MappingEvidence {
  readonly reason: string;
}

/**
 * Our mapping from the agent's pairs and local candidates: the first succeeded check from a host
 * base whose mapped address is neither a known candidate of ours nor that base's
 * server-reflexive address.
 */
export function localMappingEvidence(
  pairs: readonly CandidatePairInfo[],
  locals: readonly { readonly candidate: IceCandidate; readonly base: BaseId }[],
): MappingEvidence | undefined {
  const srflx = new Map<BaseId, IceCandidate>();
  for (const l of locals) if (l.candidate.type === 'srflx' && l.candidate.transport === 'udp') srflx.set(l.base, l.candidate);
  for (const p of pairs) {
    if (p.state !== 'succeeded' || p.local.type !== 'host' || p.mappedLocal.type !== 'prflx') continue;
    const reflexive = srflx.get(p.base);
    const seen = candidateTransportAddress(p.mappedLocal);
    if (reflexive === undefined || seen === undefined || seen.family !== 'IPv4') continue;
    if (seen.address === reflexive.address && seen.port === reflexive.port) continue;
    return {
      reason: `the peer saw our check to ${p.remoteAddress.address}:${p.remoteAddress.port} come from ${seen.address}:${seen.port}, not from our server-reflexive ${reflexive.address}:${reflexive.port}`,
    };
  }
  return undefined;
}

/**
 * The peer's mapping from its signalled candidates and the agent's remote candidates: the first
 * peer-reflexive one on the IP of a signalled server-reflexive candidate, on a port none of the
 * signalled candidates of that IP has.
 */
export function remoteMappingEvidence(signalled: readonly IceCandidate[], remotes: readonly IceCandidate[]): MappingEvidence | undefined {
  const publicIps = new Set(signalled.filter((c) => c.type === 'srflx' && c.transport === 'udp').map((c) => c.address));
  for (const r of remotes) {
    if (r.type !== 'prflx' || r.transport !== 'udp' || !publicIps.has(r.address)) continue;
    if (signalled.some((c) => c.address === r.address && c.port === r.port)) continue;
    const known = signalled
      .filter((c) => c.address === r.address)
      .map((c) => c.port)
      .join(', ');
    return { reason: `a check of the peer came from ${r.address}:${r.port}, a port it did not signal (it signalled ${known})` };
  }
  return undefined;
}
