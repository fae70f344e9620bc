/**
 * Small pure helpers of an ICE connection: the local candidates it builds (host, server-reflexive,
 * relayed), and how a selected pair is reported as a {@link ConnectionPath}.
 */
import { randomBytes } from 'node:crypto';
import { type IceCandidate, type TransportAddress, candidateFoundation, candidatePriority, ipFamily } from '@nat/protocol';
import type { BaseId, CandidatePairInfo } from '../ice/types.js';
import type { ConnectionEndpoint, ConnectionPath } from './options.js';

/** base64 of random bytes: ice-chars only (RFC 8445 section 5.3) when the length is a multiple of 3. */
export const iceChars = (bytes: number): string => randomBytes(bytes).toString('base64');

/** The key of a (base, remote address) pair in the set of validated ones. */
export const addressKey = (base: BaseId, a: TransportAddress): string => `${base}|${a.address}|${a.port}`;

function toEndpoint(c: IceCandidate): ConnectionEndpoint {
  const family = ipFamily(c.address) ?? 'IPv4';
  return { type: c.type, address: { family, address: c.address, port: c.port } };
}

/** The selected pair as the connection reports it. */
export function pathOfPair(p: CandidatePairInfo, punched: boolean): ConnectionPath {
  return { path: p.path, localCandidate: toEndpoint(p.mappedLocal), remoteCandidate: toEndpoint(p.remote), rttMs: p.rttMs, punched };
}

/** A local UDP candidate of component 1 (RFC 8445 section 5.1.2 priority, section 5.1.1.3 foundation). */
export function candidate(
  type: 'host' | 'srflx' | 'relay',
  address: TransportAddress,
  base: TransportAddress,
  related: TransportAddress | undefined,
  localPreference: number,
  server?: string,
): IceCandidate {
  return {
    foundation: candidateFoundation({ type, baseAddress: base.address, transport: 'udp', ...(server === undefined ? {} : { serverAddress: server }) }),
    component: 1,
    transport: 'udp',
    priority: candidatePriority(type, localPreference, 1),
    address: address.address,
    port: address.port,
    type,
    ...(related === undefined ? {} : { relatedAddress: related.address, relatedPort: related.port }),
    extensions: [],
  };
}
