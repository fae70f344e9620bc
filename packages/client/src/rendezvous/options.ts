/**
 * What a {@link RendezvousClient} is given and gives: its connect options (each with its
 * default), the messages it relays and receives, its events and how a connection ended.
 */
import type { ConnectionOptions } from 'node:tls';
import {
  type AnswerMessage,
  type ByeMessage,
  type CandidateMessage,
  type EndOfCandidatesMessage,
  type ErrorMessage,
  type OfferMessage,
  RENDEZVOUS_CLOSE_CODES,
} from '@nat/protocol';
import type { RendezvousIdentity } from './identity.js';

/** A message one peer sends another through the rendezvous server. */
export type RelayedMessage = OfferMessage | AnswerMessage | CandidateMessage | EndOfCandidatesMessage | ByeMessage;

/** What a {@link RendezvousClient} hands its user: relayed messages, and the server's errors. */
export type RendezvousInbound = RelayedMessage | ErrorMessage;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * A relayed message as given to {@link RendezvousClient.send}: `v` and `from` are filled in,
 * and `id` when it is missing.
 */
export type OutgoingRelayedMessage = DistributiveOmit<RelayedMessage, 'v' | 'from' | 'id'> & { readonly id?: string };

/** Options of {@link RendezvousClient.connect}. */
export interface RendezvousConnectOptions {
  /** The service's WebSocket URL (`ws:` or `wss:`). Required. */
  readonly url: string;
  /**
   * Connect to this IP address instead of resolving the URL's host name (one of the name's
   * several addresses, see `resolveRendezvousTargets`); the name still goes in the Host header
   * and the TLS server name. Default: the URL's host, resolved as usual.
   */
  readonly address?: string;
  /** The Ed25519 key pair to register with. Required. */
  readonly identity: RendezvousIdentity;
  /** Aborts connecting and registering (rejects with code `ABORTED`). */
  readonly signal?: AbortSignal;
  /** Give up connecting and registering after this many ms (code `TIMEOUT`). Default 10,000. */
  readonly timeoutMs?: number;
  /**
   * Every this many ms a WebSocket ping goes to the server; when nothing came back by the next
   * one the connection is dropped (close code 1006), so a dead server is noticed within two
   * intervals. Default 30,000; 0 disables. With {@link pingIntervalMs} that faster ping takes its place.
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Every this many ms a WebSocket ping frame goes to the server (answered by the WebSocket layer
   * itself: no JSON, no token of the message rate limit), and when nothing at all came back
   * within {@link pingTimeoutMs} the connection is dropped (close code 1006, reason `no answer
   * to ping within N ms`): notices a stopped or vanished server within interval + timeout.
   * Default 0 (off; `connectRendezvousTargets` turns it on when there are several targets).
   */
  readonly pingIntervalMs?: number;
  /** How long that ping may go unanswered, ms. Default 1,500 (with {@link pingIntervalMs}). */
  readonly pingTimeoutMs?: number;
  /** Largest message accepted from the server, bytes. Default 65,536. */
  readonly maxMessageBytes?: number;
  /** TLS settings for `wss:` (`ca`, `rejectUnauthorized`, `servername`). Default: system CAs. */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'servername'>;
  /** An invite token, for a rendezvous that needs one (sent as `Authorization: Bearer TOKEN`). Default none. */
  readonly token?: string;
}

/** How a connection ended. */
export interface RendezvousCloseInfo {
  /**
   * The WebSocket close code: 1000 after {@link RendezvousClient.close}, 1006 when the connection
   * was lost (or the heartbeat gave up), and the server's code otherwise (from @nat/server:
   * 4000 replaced by a newer connection of the same id, 4003 rate limited, 1001 shut down,
   * 1009 message too big).
   */
  readonly code: number;
  /** The close reason text, possibly empty. */
  readonly reason: string;
}

/** The events of a {@link RendezvousClient}. */
export interface RendezvousClientEvents {
  /** A relayed message for this peer, or an `error` from the server (e.g. `peer-offline`, with `ref`). */
  message: (message: RendezvousInbound) => void;
  /** The connection ended. */
  close: (info: RendezvousCloseInfo) => void;
}

/** Options of {@link RendezvousClient.messages}. */
export interface RendezvousMessagesOptions {
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /** Messages held for a slow reader; beyond this the newest are dropped. Default 1024. */
  readonly bufferSize?: number;
}

/** The close code of the rendezvous for a connection replaced by a newer one of the same peer id. */
export const RENDEZVOUS_REPLACED = RENDEZVOUS_CLOSE_CODES.replaced;
