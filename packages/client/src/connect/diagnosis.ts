/**
 * What an ICE connection observed while it gathered and checked: which candidates each side
 * had, which STUN/TURN servers it was offered, whether it got a relayed candidate (and why
 * not), and which TURN permissions the relay refused. A failed connection carries it
 * ({@link IceConnectError.diagnosis}, {@link IceConnection.diagnosis}) so that the failure can
 * be explained by what was seen rather than guessed.
 */
import type { CandidateType, IceCandidate, SignallingIceServer } from '@nat/protocol';
import { StunClientError, type StunClientErrorCode } from '../errors.js';
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

/** Candidates of one side, counted by type; loopback host candidates also counted apart. */
export interface CandidateCounts {
  readonly host: number;
  /** Host candidates on 127.0.0.0/8 or ::1 (included in `host`). */
  readonly loopbackHost: number;
  readonly srflx: number;
  readonly prflx: number;
  readonly relay: number;
}

/** Whether this side got a relayed candidate, and why not. */
export type RelayOutcome =
  /** an allocation was granted: a relayed candidate was offered to the peer */
  | 'obtained'
  /** the ICE servers (the rendezvous service's) had no TURN server with credentials */
  | 'not-offered'
  /** the connection was told not to relay (`relay: false`) */
  | 'disabled'
  /** every TURN server refused or did not answer (see `relayErrors`) */
  | 'failed'
  /** gathering had not finished */
  | 'pending';

/** A TURN permission the relay refused (RFC 8656 section 9: e.g. 403 for a peer its policy denies). */
export interface RefusedPermission {
  /** The peer IP the permission was for. */
  readonly ip: string;
  /** The STUN error code (403 Forbidden), when the server answered with one. */
  readonly code: number | undefined;
  readonly message: string;
}

/** What a connection observed; see the module documentation. */
export interface ConnectionDiagnosis {
  /** The STUN (`host:port`) and TURN (`host:port/transport`) servers this side was offered. */
  readonly iceServers: { readonly stun: readonly string[]; readonly turn: readonly string[] };
  /** True when the rendezvous service or a STUN/TURN server is on this machine's loopback. */
  readonly serversOnLoopback: boolean;
  /** False when host candidates were turned off (`hostCandidates: false`, relay only). */
  readonly hostCandidates: boolean;
  readonly local: CandidateCounts;
  readonly remote: CandidateCounts;
  /** Where the TURN server saw the peer: the related addresses of the peer's relayed candidates. */
  readonly remoteRelaySeenAt: readonly string[];
  readonly relay: RelayOutcome;
  /** Why each TURN server refused an allocation, when `relay` is `failed`. */
  readonly relayErrors: readonly string[];
  readonly permissionsRefused: readonly RefusedPermission[];
  /** The reason the peer gave in its `bye`, when it ended the session. */
  readonly peerBye: string | undefined;
  /** True when the peer said `bye` before the connection had a path. */
  readonly peerEnded: boolean;
}

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
 * A connection that failed to connect, with what it observed. A {@link StunClientError} (same
 * `code` and `reason` as before), so existing checks keep working.
 */
export class IceConnectError extends StunClientError {
  /** What the connection observed until it failed. */
  readonly diagnosis: ConnectionDiagnosis;

  constructor(code: StunClientErrorCode, message: string, diagnosis: ConnectionDiagnosis, options: { cause?: unknown; reason?: string } = {}) {
    super(code, message, options);
    this.diagnosis = diagnosis;
  }
}
