/**
 * The signalling of an ICE connection through the rendezvous service: what it sends (the offer or
 * answer with the host candidates, trickled candidates (RFC 8838), `end-of-candidates`, `bye`)
 * and what of the peer's messages concerns this session (same peer, same session id), handed to
 * the connection as calls of {@link SignallingHandlers}. An ICE restart may switch to a fresh
 * rendezvous connection ({@link Signalling.renew}).
 */
import { type AnswerMessage, type IceCandidate, type SignallingErrorCode, formatCandidate } from '@nat/protocol';
import type { RendezvousClient } from '../rendezvous/client.js';
import type { OutgoingRelayedMessage, RendezvousInbound } from '../rendezvous/options.js';

/** What the connection does with the peer's messages of this session. */
export interface SignallingHandlers {
  /** The rendezvous refused our offer (peer offline, unknown peer): `code` and `message` are its. */
  offerRefused(code: SignallingErrorCode, message: string): void;
  /** An `answer`: the peer's first description, or an ICE restart's. */
  answer(m: AnswerMessage): void;
  /** A trickled candidate line. */
  candidate(line: string): void;
  endOfCandidates(): void;
  /** The peer ended the session. */
  bye(reason: string | undefined): void;
}

/** A local description: credentials and the host candidates, and punching's `app` keys. */
export interface LocalDescription {
  readonly ufrag: string;
  readonly pwd: string;
  readonly candidates: readonly string[];
  readonly app?: Readonly<Record<string, string>>;
}

/** One session's messages on a rendezvous connection. */
export class Signalling {
  readonly #peerId: string;
  readonly #sessionId: string;
  readonly #handlers: SignallingHandlers;
  #rv: RendezvousClient;
  #offerRef: string | undefined;
  readonly #onMessage = (m: RendezvousInbound): void => this.#receive(m);

  constructor(rv: RendezvousClient, peerId: string, sessionId: string, handlers: SignallingHandlers) {
    this.#rv = rv;
    this.#peerId = peerId;
    this.#sessionId = sessionId;
    this.#handlers = handlers;
    rv.on('message', this.#onMessage);
  }

  /** The rendezvous client in use. */
  get rv(): RendezvousClient {
    return this.#rv;
  }

  /** Sends the offer (the caller) or the answer (the callee). Throws when the rendezvous connection is gone. */
  describe(kind: 'offer' | 'answer', d: LocalDescription): void {
    const m = { to: this.#peerId, sessionId: this.#sessionId, ...d, candidates: [...d.candidates] };
    if (kind === 'offer') this.#offerRef = this.#rv.send({ type: 'offer', ...m });
    else this.#rv.send({ type: 'answer', ...m });
  }

  /** Trickles a local candidate; lost when the rendezvous connection is gone (the peer may still learn it as peer-reflexive). */
  trickle(c: IceCandidate): void {
    this.send({ type: 'candidate', to: this.#peerId, sessionId: this.#sessionId, candidate: formatCandidate(c) });
  }

  /** Sends `end-of-candidates`. Throws when the rendezvous connection is gone. */
  endOfCandidates(): void {
    this.#rv.send({ type: 'end-of-candidates', to: this.#peerId, sessionId: this.#sessionId });
  }

  /** Tells the peer the session ended (with a reason, at most 256 characters). */
  bye(reason: string | undefined): void {
    this.send({ type: 'bye', to: this.#peerId, sessionId: this.#sessionId, ...(reason === undefined ? {} : { reason: reason.slice(0, 256) }) });
  }

  /** Sends a message; dropped when the rendezvous connection is gone. */
  send(m: OutgoingRelayedMessage): void {
    try {
      this.#rv.send(m);
    } catch {
      // the rendezvous connection is gone
    }
  }

  /** Listens on `rv` instead from now on (an ICE restart's fresh rendezvous connection). */
  renew(rv: RendezvousClient): void {
    if (rv === this.#rv) return;
    this.#rv.off('message', this.#onMessage);
    this.#rv = rv;
    rv.on('message', this.#onMessage);
  }

  /** Whether the rendezvous connection it signals through closed. */
  get lost(): boolean {
    return this.#rv.closeInfo !== undefined;
  }

  /** Stops listening. */
  detach(): void {
    this.#rv.off('message', this.#onMessage);
  }

  #receive(m: RendezvousInbound): void {
    const h = this.#handlers;
    if (m.type === 'error') {
      if (m.ref !== undefined && m.ref === this.#offerRef) h.offerRefused(m.code, m.message);
      return;
    }
    if (m.from !== this.#peerId || m.sessionId !== this.#sessionId) return;
    switch (m.type) {
      case 'answer':
        return h.answer(m);
      case 'candidate':
        return h.candidate(m.candidate);
      case 'end-of-candidates':
        return h.endOfCandidates();
      case 'bye':
        return h.bye(m.reason);
      default:
        return;
    }
  }
}
