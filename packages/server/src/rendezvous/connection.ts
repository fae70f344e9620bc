import { randomBytes } from 'node:crypto';
import { type ErrorMessage, SIGNALLING_VERSION, type SignallingErrorCode, type SignallingMessage, encodeSignallingMessage } from '@nat/protocol';
import type { RawData, WebSocket } from 'ws';
import type { ResolvedLimits } from './options.js';
import { TokenBucket } from './token-bucket.js';

/** Why a registered peer went offline (the `peer-offline` event's cause). */
export type OfflineCause = 'closed' | 'replaced' | 'timeout' | 'server-close';

/** One rendezvous WebSocket connection, from the upgrade to the close. */
export class Connection {
  /** The challenge nonce; single-use: cleared once a `register` has been checked. */
  nonce: string | undefined = randomBytes(32).toString('base64url');
  peerId: string | undefined;
  alive = true;
  dropped = 0;
  closed = false;
  /** Why the server ended it, when it did (else the client closed it). */
  offlineCause: OfflineCause = 'closed';
  registerTimer: NodeJS.Timeout | undefined;
  /** With a cluster: the sequence number of its registration in the shared store, once known. */
  clusterSeq: number | undefined;
  /** With a cluster: the newest registration of its peer id on another node, heard before its own sequence was known. */
  replacedBy: number | undefined;
  readonly bucket: TokenBucket;
  constructor(
    readonly ws: WebSocket,
    /** The plain IP it comes from (IPv4-mapped IPv6 as IPv4). */
    readonly ip: string,
    /** Its source key (an IPv4 address or an IPv6 /64), for shares and events. */
    readonly source: string,
    readonly remote: string,
    limits: ResolvedLimits,
  ) {
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.burst, performance.now());
  }

  /** Sends a message (validated by the protocol's encoder) while the connection is open. */
  send(message: SignallingMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(encodeSignallingMessage(message));
  }

  /** Answers `error` with `code`, referring to the message `ref` when it had an id. */
  error(code: SignallingErrorCode, text: string, ref: string | undefined): void {
    const message: ErrorMessage = { v: SIGNALLING_VERSION, type: 'error', code, message: text };
    if (ref !== undefined) message.ref = ref;
    this.send(message);
  }
}

/** The text of a WebSocket message, whatever form `ws` delivered it in. */
export function messageText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
}
