/**
 * The ICE agent's bookkeeping types: local and remote candidates, candidate pairs (RFC 8445
 * section 6.1.2.6), the connectivity-check transactions and the triggered-check queue, with
 * the small helpers every part of the agent shares. Internal to the agent (see `agent.ts`).
 */
import { type IceCandidate, type TransportAddress, canonicalIp } from '@nat/protocol';
import { type BaseId, type CandidatePairInfo, type CandidatePairState, type IceRole, pathOf } from './types.js';

export interface LocalCandidate {
  readonly candidate: IceCandidate;
  readonly base: BaseId;
  readonly address: TransportAddress;
  readonly key: string;
}

export interface RemoteCandidate {
  candidate: IceCandidate;
  readonly address: TransportAddress;
  readonly key: string;
}

export interface Pair {
  readonly id: number;
  readonly local: LocalCandidate;
  readonly remote: RemoteCandidate;
  readonly foundation: string;
  priority: bigint;
  state: CandidatePairState;
  nominated: boolean;
  /** The controlled agent saw USE-CANDIDATE before the pair succeeded (RFC 8445 section 7.3.1.5). */
  nominateOnSuccess: boolean;
  mappedLocal: LocalCandidate | undefined;
  rttMs: number | undefined;
  validAt: number | undefined;
  consentAt: number;
  lastSentAt: number;
  /** When the pair's current connectivity check first went out (undefined before any). */
  checkStartedAt: number | undefined;
}

export type TransactionKind = 'check' | 'consent';

export interface Transaction {
  readonly key: string;
  readonly pair: Pair;
  readonly kind: TransactionKind;
  readonly useCandidate: boolean;
  readonly role: IceRole;
  readonly remoteKey: Uint8Array;
  readonly bytes: Uint8Array;
  readonly sentPriority: number;
  readonly firstSentAt: number;
  readonly maxSends: number;
  nextAt: number;
  rto: number;
  sends: number;
  /** RFC 8445 section 7.3.1.4: no more retransmits, no failure, but a late response still counts. */
  cancelled: boolean;
}

export interface Triggered {
  readonly pair: Pair;
  useCandidate: boolean;
}

/** RFC 8445 section 6.1.2.5: the recommended limit on the size of a checklist. */
export const MAX_PAIRS = 100;
/** Consent checks retransmit a few times within their interval (RFC 7675 section 5.1). */
export const CONSENT_TRANSMISSIONS = 4;
export const COMPONENT = 1;

export const keyOf = (a: TransportAddress): string => `${a.address}|${a.port}`;
export const txKeyOf = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset + 4, 16).toString('hex');
/**
 * How long a valid pair waits for a pending higher-priority pair toward a global IPv6 address
 * before it is nominated (RFC 8421's preference; RFC 8305 gives IPv6 a head start of the same
 * order): the peer's stateful firewall drops the first check until the peer's own check opens it.
 */
export const IPV6_NOMINATION_WAIT = 1000;
export const isPending = (p: Pair): boolean => p.state === 'frozen' || p.state === 'waiting' || p.state === 'in-progress';

export function canonicalAddress(a: TransportAddress): TransportAddress {
  const address = canonicalIp(a.address);
  return address === a.address ? a : { family: a.family, address, port: a.port };
}

/** What the agent reports of a pair. */
export function pairInfo(p: Pair): CandidatePairInfo {
  return {
    id: p.id,
    local: p.local.candidate,
    mappedLocal: (p.mappedLocal ?? p.local).candidate,
    remote: p.remote.candidate,
    base: p.local.base,
    remoteAddress: p.remote.address,
    state: p.state,
    priority: p.priority,
    nominated: p.nominated,
    path: pathOf(p.local.candidate.type, p.remote.candidate.type),
    rttMs: p.rttMs,
  };
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
