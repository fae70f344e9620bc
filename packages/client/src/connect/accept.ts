/**
 * The callee's side: answering offers as the controlled agent, one at a time
 * ({@link acceptOffer}), as they come ({@link acceptPeers}), or as an async iterator
 * ({@link acceptedConnections}).
 */
import type { OfferMessage } from '@nat/protocol';
import { eventIterator } from '../event-iterator.js';
import type { RendezvousClient, RendezvousInbound } from '../rendezvous/client.js';
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
export function acceptedConnections(rv: RendezvousClient, options: IceConnectionOptions & { readonly bufferSize?: number } = {}): AsyncIterableIterator<IceConnection> {
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

/** Options of {@link acceptPeers}: the connection options every accepted connection gets, and a per-offer hook. */
export interface AcceptPeersOptions extends IceConnectionOptions {
  /** Called for each new offer before its connection is made; see {@link PerOfferSetup}. */
  readonly perOffer?: (offer: { readonly from: string; readonly sessionId: string }) => PerOfferSetup;
}

/**
 * Accepts every offer that arrives on `rv` until the returned function is called (or `signal`
 * fires): calls `onConnection` with each new {@link IceConnection} as soon as the offer arrives
 * (await its `ready`). Offers repeated for a session already accepted are ignored.
 */
export function acceptPeers(
  rv: RendezvousClient,
  onConnection: (conn: IceConnection) => void,
  options: AcceptPeersOptions = {},
): () => void {
  const { perOffer, ...shared } = options;
  const sessions = new Set<string>();
  const onMessage = (m: RendezvousInbound): void => {
    if (m.type !== 'offer') return;
    const key = `${m.from} ${m.sessionId}`;
    if (sessions.has(key)) return;
    sessions.add(key);
    const setup = perOffer?.({ from: m.from, sessionId: m.sessionId });
    const conn = acceptOffer(rv, m, setup?.options === undefined ? shared : { ...shared, ...setup.options });
    conn.on('close', () => {
      sessions.delete(key);
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
