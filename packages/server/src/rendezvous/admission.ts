import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ServerError } from '../errors.js';

/**
 * Who may register with a rendezvous service. Default: anyone with a key (an open rendezvous, as
 * a volunteer runs it). An operator can require a listed key, an invite token, or both.
 */
export interface RendezvousAdmission {
  /** Only these peer ids may register (others get `unauthorized`, close 4002). Default: any key. */
  readonly peerKeys?: readonly string[];
  /**
   * Invite tokens: the WebSocket upgrade must carry `Authorization: Bearer TOKEN` with one of
   * them (else it is answered 401 before any WebSocket exists). Default: none needed.
   */
  readonly tokens?: readonly string[];
}

/** The checks of a {@link RendezvousAdmission}. */
export class Admission {
  readonly #keys: ReadonlySet<string> | undefined;
  readonly #tokens: readonly Buffer[];

  constructor(a: RendezvousAdmission = {}) {
    if (a.peerKeys !== undefined) {
      for (const k of a.peerKeys)
        if (!/^[a-z2-7]{32}$/.test(k))
          throw new ServerError('BAD_CONFIG', `rendezvous: admission.peerKeys: not a peer id (32 lower-case base32 characters): ${JSON.stringify(k)}`);
    }
    for (const t of a.tokens ?? []) if (t.length < 8) throw new ServerError('BAD_CONFIG', 'rendezvous: admission.tokens: a token needs at least 8 characters');
    this.#keys = a.peerKeys === undefined || a.peerKeys.length === 0 ? undefined : new Set(a.peerKeys);
    this.#tokens = (a.tokens ?? []).map(digest);
  }

  /** Whether the upgrade request carries a valid invite token (always true when none is needed). */
  tokenOk(req: IncomingMessage): boolean {
    if (this.#tokens.length === 0) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m === null) return false;
    const given = digest(m[1]!);
    return this.#tokens.some((t) => timingSafeEqual(t, given));
  }

  /** Whether a peer id may register. */
  keyOk(peerId: string): boolean {
    return this.#keys === undefined || this.#keys.has(peerId);
  }

  /** Whether a peer id is on the operator's key list (false for every key of an open rendezvous). */
  listed(peerId: string): boolean {
    return this.#keys?.has(peerId) ?? false;
  }

  /** Whether the upgrades need an invite token. */
  get needsToken(): boolean {
    return this.#tokens.length > 0;
  }
}

/** Fixed-length digests so that comparing tokens takes the same time whatever their lengths. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
