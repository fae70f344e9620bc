/**
 * The callee's side: answering offers as the controlled agent, one at a time
 * ({@link acceptOffer}), as they come ({@link acceptPeers}), or as an async iterator
 * ({@link acceptedConnections}).
 */
import type { OfferMessage } from '@nat/protocol';
import { eventIterator } from '../event-iterator.js';
import type { RendezvousClient } from '../rendezvous/client.js';
import type { RendezvousInbound } from '../rendezvous/options.js';
import { OfferAdmission, type OfferAdmissionOptions, type OfferRefusalCause, refusalReason } from './admission.js';
import { IceConnection, type IceConnectionOptions } from './connection.js';

/**
 * Answers an offer received on `rv` (a `message` of type `offer`), as the controlled agent.
 * Call it from the `message` listener itself, so the candidates that follow the offer are not
 * missed. Returns at once; `ready` settles when connected or failed.
 */
export function acceptOffer(rv: RendezvousClient, offer: OfferMessage, options: IceConnectionOptions = {}): IceConnection {
  const conn = new IceConnection({ rv, peerId: offer.from, sessionId: offer.sessionId, role: 'controlled', offer, options });
  void conn.start();
  return conn;
}

/**
 * {@link acceptPeers} as an async iterator: yields each new {@link IceConnection} as soon as its
 * offer arrives (await its `ready`); ends when `options.signal` fires, the rendezvous
 * connection closes, or on `break`. Connections already yielded stay open.
 */
export function acceptedConnections(
  rv: RendezvousClient,
  options: IceConnectionOptions & { readonly bufferSize?: number } = {},
): AsyncIterableIterator<IceConnection> {
  const { bufferSize, ...connOptions } = options;
  return eventIterator<IceConnection>({
    ended: rv.closeInfo !== undefined,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(bufferSize === undefined ? {} : { bufferSize }),
    subscribe: (push, end) => {
      const stop = acceptPeers(rv, push, connOptions);
      rv.on('close', end);
      return () => {
        stop();
        rv.off('close', end);
      };
    },
  });
}

/** What {@link AcceptPeersOptions.perOffer} adds to one accepted connection. */
export interface PerOfferSetup {
  /** Merged over the shared options for this connection only (e.g. its own `mappedAddress`). */
  readonly options?: IceConnectionOptions;
  /** Called once when this connection closes (e.g. to remove what `options` set up). */
  readonly onClose?: () => void;
}

/** An offer {@link acceptPeers} refused, before opening anything for it. */
export interface RefusedOffer {
  readonly from: string;
  readonly sessionId: string;
  readonly cause: OfferRefusalCause;
  /** Whether a `bye` told the offering peer (refusals past their rate budget are silent). */
  readonly answered: boolean;
}

/** Options of {@link acceptPeers}: the connection options every accepted connection gets, and a per-offer hook. */
export interface AcceptPeersOptions extends IceConnectionOptions {
  /** Called for each new offer before its connection is made; see {@link PerOfferSetup}. */
  readonly perOffer?: (offer: { readonly from: string; readonly sessionId: string }) => PerOfferSetup;
  /**
   * Which offers are answered: an {@link OfferAdmission} (shared across rendezvous
   * reconnections, so its counts survive them) or its options. Default: the defaults of
   * {@link OfferAdmissionOptions} (32 sessions, 4 per peer, bounded rates).
   */
  readonly admission?: OfferAdmission | OfferAdmissionOptions;
  /** Called for each refused offer (nothing was opened for it). */
  readonly onRefused?: (refused: RefusedOffer) => void;
}

/**
 * Accepts every offer that arrives on `rv` until the returned function is called (or `signal`
 * fires): calls `onConnection` with each new {@link IceConnection} as soon as the offer arrives
 * (await its `ready`). Offers repeated for a session already accepted are ignored. Offers
 * that `admission` refuses get a `bye` (within a rate budget) and open nothing.
 */
export function acceptPeers(rv: RendezvousClient, onConnection: (conn: IceConnection) => void, options: AcceptPeersOptions = {}): () => void {
  const { perOffer, admission: given, onRefused, ...shared } = options;
  const admission = given instanceof OfferAdmission ? given : new OfferAdmission(given);
  const sessions = new Set<string>();
  const refuse = (m: { from: string; sessionId: string }, cause: OfferRefusalCause): void => {
    const answered = admission.answerRefusal();
    if (answered) {
      try {
        rv.send({ type: 'bye', to: m.from, sessionId: m.sessionId, reason: refusalReason(cause) });
      } catch {
        /* the rendezvous connection closed: nobody to tell */
      }
    }
    onRefused?.({ from: m.from, sessionId: m.sessionId, cause, answered });
  };
  const onMessage = (m: RendezvousInbound): void => {
    if (m.type !== 'offer') return;
    const key = `${m.from} ${m.sessionId}`;
    if (sessions.has(key)) return;
    const admitted = admission.admit(m.from);
    if (admitted !== true) return refuse(m, admitted);
    sessions.add(key);
    const setup = perOffer?.({ from: m.from, sessionId: m.sessionId });
    const conn = acceptOffer(rv, m, setup?.options === undefined ? shared : { ...shared, ...setup.options });
    conn.on('close', () => {
      sessions.delete(key);
      admission.release(m.from);
      setup?.onClose?.();
    });
    onConnection(conn);
  };
  const stop = (): void => {
    rv.off('message', onMessage);
    shared.signal?.removeEventListener('abort', stop);
  };
  rv.on('message', onMessage);
  shared.signal?.addEventListener('abort', stop, { once: true });
  return stop;
}
