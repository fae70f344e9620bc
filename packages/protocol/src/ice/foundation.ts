/**
 * Candidate foundations (RFC 8445 section 5.1.1.3): a short string that is the same for two
 * candidates when, and only when, they would succeed or fail their checks together.
 */
import { canonicalIp, ipFamily } from '../address.js';
import { EncodeError } from '../errors.js';
import type { CandidateTransport, CandidateType } from './candidate.js';

/** What RFC 8445 section 5.1.1.3 says decides a candidate's foundation. */
export interface FoundationInput {
  /** The candidate type. */
  readonly type: CandidateType;
  /** IP address of the candidate's base (its port does not count). */
  readonly baseAddress: string;
  /**
   * IP address of the STUN or TURN server the candidate was obtained from, as the agent
   * contacted it. Counts only for reflexive and relayed candidates; ignored for host ones.
   */
  readonly serverAddress?: string;
  /** The transport protocol the candidate was obtained with. */
  readonly transport: CandidateTransport;
}

const FNV64_OFFSET_BASIS = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffff_ffff_ffff_ffffn;

/** 64-bit FNV-1a of `bytes` (draft-eastlake-fnv): a deterministic, dependency-free hash. */
export function fnv1a64(bytes: Uint8Array): bigint {
  let hash = FNV64_OFFSET_BASIS;
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * FNV64_PRIME) & MASK64;
  }
  return hash;
}

function ipOf(what: string, text: string): string {
  if (ipFamily(text) === undefined) {
    throw new EncodeError('BAD_VALUE', `${what} must be an IP address, not ${JSON.stringify(text)}`);
  }
  return canonicalIp(text);
}

/**
 * The foundation of a local candidate (RFC 8445 section 5.1.1.3). Two candidates get the same
 * foundation when they have the same type, their bases have the same IP address, they were
 * obtained from STUN/TURN servers with the same IP address (reflexive and relayed candidates
 * only), and with the same transport protocol; the ports play no part.
 *
 * The value is the 64-bit FNV-1a hash of those four facts printed in base 36: 1 to 13 characters
 * of [0-9a-z], all of them ice-chars (RFC 8839 section 5.1). It is stable across runs and
 * machines. Different inputs collide with probability about 2^-64 per pair.
 *
 * @throws EncodeError `BAD_VALUE` when an address is not an IP address
 */
export function candidateFoundation(input: FoundationInput): string {
  const base = ipOf('base address', input.baseAddress);
  const server = input.type === 'host' || input.serverAddress === undefined ? '' : ipOf('server address', input.serverAddress);
  // None of the four parts can contain a space, so the joined text is unambiguous.
  const key = `${input.type} ${input.transport} ${base} ${server}`;
  return fnv1a64(new TextEncoder().encode(key)).toString(36);
}
