/**
 * Which offers `nat listen` and `nat expose` answer: `--max-sessions` and
 * `--max-offers-per-peer` over {@link OfferAdmission}'s defaults, an allow check made before any
 * socket or allocation is opened, and one `refused` event per refusal sent (refusals past their
 * rate budget are dropped silently and counted in the next event, so a flood cannot flood the
 * output either).
 */
import { type AcceptPeersOptions, OfferAdmission, refusalReason } from '@nat/client';
import type { Emit } from './session.js';

/** The flags of the inbound caps. */
export interface AdmissionFlags {
  /** `--max-sessions N`: sessions at once, every peer together. */
  readonly maxSessions?: number;
  /** `--max-offers-per-peer N`: sessions at once from one peer id. */
  readonly maxOffersPerPeer?: number;
}

/** The admission options of a command; one {@link OfferAdmission} for the whole run (across rendezvous reconnections). */
export function inboundAdmission(o: AdmissionFlags, emit: Emit, allow?: (peerId: string) => boolean): Pick<AcceptPeersOptions, 'admission' | 'onRefused'> {
  const admission = new OfferAdmission({
    ...(o.maxSessions === undefined ? {} : { maxSessions: o.maxSessions }),
    ...(o.maxOffersPerPeer === undefined ? {} : { maxSessionsPerPeer: o.maxOffersPerPeer }),
    ...(allow === undefined ? {} : { allow }),
  });
  let silent = 0;
  return {
    admission,
    onRefused: ({ from, sessionId, cause, answered }) => {
      if (!answered) {
        silent++;
        return;
      }
      const also = silent === 0 ? '' : ` (and ${silent} more offers dropped without an answer)`;
      const text =
        cause === 'not-allowed'
          ? `refused a connection from ${from} (not in any --allow list)${also}`
          : `refused an offer from ${from}: ${refusalReason(cause)} (--max-sessions ${o.maxSessions ?? 'default'}, --max-offers-per-peer ${o.maxOffersPerPeer ?? 'default'})${also}`;
      emit({ event: 'refused', peer: from, sessionId, reason: cause, ...(silent === 0 ? {} : { silentlyDropped: silent }) }, text);
      silent = 0;
    },
  };
}
