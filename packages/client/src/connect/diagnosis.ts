/**
 * What an ICE connection observed while it gathered and checked: which candidates each side
 * had, which STUN/TURN servers it was offered, whether it got a relayed candidate (and why
 * not), and which TURN permissions the relay refused. A failed connection carries it
 * ({@link IceError.diagnosis}, {@link RendezvousError.diagnosis}, {@link IceConnectError.diagnosis},
 * {@link IceConnection.diagnosis}) so that the failure can
 * be explained by what was seen rather than guessed.
 */
import type { CandidateType, IceCandidate, SignallingIceServer } from '@nat/protocol';
import { IceError, RendezvousError, StunClientError, type StunClientErrorCode } from '../errors.js';
import { iceServerRefs } from './servers.js';

/** 127.0.0.0/8 (RFC 1122 section 3.2.1.3) or ::1. */
export const isLoopbackIp = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

/** A host name or IP literal (brackets allowed) that names this machine's loopback. */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || isLoopbackIp(h);
}

/**
 * True when the rendezvous service (`rendezvousUrl`) or one of the STUN/TURN servers of
 * `iceServers` is on a loopback address: peers meeting there run on this machine.
 */
export function serversOnLoopback(rendezvousUrl: string, iceServers: readonly SignallingIceServer[]): boolean {
  try {
    if (isLoopbackHost(new URL(rendezvousUrl).hostname)) return true;
  } catch {
    // not a URL: only the ICE servers tell
  }
  const refs = iceServerRefs(iceServers);
  return [...refs.stun, ...refs.turn].some((s) => isLoopbackHost(s.server.replace(/:\d+$/, '')));
}

import type { CandidateCounts, ConnectionDiagnosis, RefusedPermission, RelayOutcome } from './diagnosis-types.js';

export type { CandidateCounts, ConnectionDiagnosis, RefusedPermission, RelayOutcome } from './diagnosis-types.js';

/** Counts candidates by type. */
export function countCandidates(candidates: readonly IceCandidate[]): CandidateCounts {
  const n: Record<CandidateType | 'loopbackHost', number> = { host: 0, loopbackHost: 0, srflx: 0, prflx: 0, relay: 0 };
  for (const c of candidates) {
    n[c.type]++;
    if (c.type === 'host' && isLoopbackIp(c.address)) n.loopbackHost++;
  }
  return n;
}

/** What the connection records as it goes, turned into a {@link ConnectionDiagnosis} by {@link snapshot}. */
export class ConnectionObservations {
  relayObtained = false;
  relayTried = false;
  readonly relayErrors: string[] = [];
  readonly permissionsRefused: RefusedPermission[] = [];
  peerBye: string | undefined;
  peerEnded = false;

  /** A TURN server refused an allocation or did not answer. */
  relayFailed(server: string, e: unknown): void {
    this.relayErrors.push(`${server}: ${e instanceof Error ? e.message : String(e)}`);
  }

  /** The relay refused (or never answered) a permission toward `ip`. */
  permissionFailed(ip: string, e: unknown): void {
    const code = e instanceof StunClientError ? e.stunErrorCode : undefined;
    if (e instanceof StunClientError && e.code === 'ABORTED') return; // closed meanwhile: nothing was refused
    this.permissionsRefused.push({ ip, code, message: e instanceof Error ? e.message : String(e) });
  }

  snapshot(o: {
    readonly iceServers: readonly SignallingIceServer[];
    readonly serversOnLoopback: boolean;
    readonly hostCandidates: boolean;
    readonly relayOption: boolean;
    readonly gathering: boolean;
    readonly local: readonly IceCandidate[];
    readonly remote: readonly IceCandidate[];
  }): ConnectionDiagnosis {
    const refs = iceServerRefs(o.iceServers);
    const relay: RelayOutcome = this.relayObtained
      ? 'obtained'
      : !o.relayOption
        ? 'disabled'
        : refs.turn.length === 0
          ? 'not-offered'
          : o.gathering && this.relayErrors.length < refs.turn.length
            ? 'pending'
            : 'failed';
    return {
      iceServers: { stun: refs.stun.map((s) => s.server), turn: refs.turn.map((t) => `${t.server}/${t.transport}`) },
      serversOnLoopback: o.serversOnLoopback,
      hostCandidates: o.hostCandidates,
      local: countCandidates(o.local),
      remote: countCandidates(o.remote),
      remoteRelaySeenAt: o.remote.filter((c) => c.type === 'relay' && c.relatedAddress !== undefined).map((c) => c.relatedAddress!),
      relay,
      relayErrors: [...this.relayErrors],
      permissionsRefused: [...this.permissionsRefused],
      peerBye: this.peerBye,
      peerEnded: this.peerEnded,
    };
  }
}

/**
 * A connection that failed to connect for a transport reason (a socket failed, the rendezvous
 * connection closed), with what it observed. ICE failures reject with an {@link IceError} and
 * rendezvous refusals with a {@link RendezvousError} instead, each with the same `diagnosis`;
 * {@link connectionDiagnosis} reads it from any of them.
 */
export class IceConnectError extends StunClientError {
  override readonly name = 'IceConnectError';
  /** What the connection observed until it failed. */
  readonly diagnosis: ConnectionDiagnosis;

  constructor(code: StunClientErrorCode, message: string, diagnosis: ConnectionDiagnosis, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.diagnosis = diagnosis;
  }
}

/**
 * The same failure as `e`, carrying what the connection observed: an {@link IceError} or a
 * {@link RendezvousError} of the same code, or an {@link IceConnectError} for a
 * {@link StunClientError}. Anything else (and `ABORTED`) is returned as it is.
 */
export function withDiagnosis(e: unknown, diagnosis: ConnectionDiagnosis): unknown {
  if (e instanceof IceError) return new IceError(e.code, e.message, { cause: e.cause, diagnosis });
  if (e instanceof RendezvousError) return new RendezvousError(e.code, e.message, { cause: e.cause, diagnosis });
  if (e instanceof StunClientError && e.code !== 'ABORTED') return new IceConnectError(e.code, e.message, diagnosis, { cause: e });
  return e;
}

/** What a failed connection observed, when `e` carries it (see {@link withDiagnosis}). */
export function connectionDiagnosis(e: unknown): ConnectionDiagnosis | undefined {
  return e instanceof IceError || e instanceof RendezvousError || e instanceof IceConnectError ? e.diagnosis : undefined;
}
