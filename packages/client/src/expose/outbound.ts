import {
  type MuxSession,
  type MuxStream,
  type OutboundRefusal,
  type OutboundReply,
  type OutboundTarget,
  type TransportAddress,
  decodeOutboundReply,
  encodeOutboundRequest,
  readStreamPrefix,
} from '@nat/protocol';
import { NatClientError } from '../errors.js';

/**
 * Why an outbound connection through the expose server failed: the server's refusal reason
 * (@nat/protocol's `OutboundRefusal`), `disconnected` when there was no control connection to ask
 * on, `bad-reply` when the server's answer did not decode or never came.
 */
export type ExposeOutboundErrorCode = OutboundRefusal | 'disconnected' | 'bad-reply';

/** An outbound connection the server did not open (see {@link openOutbound}). */
export class ExposeOutboundError extends NatClientError<ExposeOutboundErrorCode> {
  override readonly name = 'ExposeOutboundError';
}

/** An outbound connection the server opened: its stream, and the address the far end sees. */
export interface OutboundConnection {
  readonly stream: MuxStream;
  /** The server-side address of the connection (the server's public address). */
  readonly bound: TransportAddress;
}

/**
 * Asks the server, over an expose control connection's session, to open a TCP connection to
 * `target` (an IP address, or a host name the server resolves) from its public address. Resolves
 * once the server connected; the stream then carries the connection. Rejects with
 * ExposeOutboundError: the server's refusal (its reason as `code`), `disconnected`, or `bad-reply`
 * (also when no reply came within `timeoutMs`, default 30 s).
 */
export async function openOutbound(mux: MuxSession | undefined, target: OutboundTarget, timeoutMs = 30_000): Promise<OutboundConnection> {
  if (mux === undefined || mux.closed) throw new ExposeOutboundError('disconnected', 'not connected to the expose server (it reconnects on its own)');
  let stream: MuxStream;
  try {
    stream = mux.open();
  } catch (e) {
    throw new ExposeOutboundError('disconnected', (e as Error).message, { cause: e });
  }
  stream.on('error', () => {});
  stream.write(encodeOutboundRequest(target));
  const timer = setTimeout(() => stream.destroy(), timeoutMs);
  let reply: OutboundReply;
  try {
    reply = await readStreamPrefix(
      stream,
      (b) => {
        const r = decodeOutboundReply(b);
        return r && { value: r.reply, length: r.length };
      },
      300,
    );
  } catch (e) {
    stream.destroy();
    throw new ExposeOutboundError('bad-reply', `no outbound reply from the server: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
  if (!reply.ok) {
    stream.destroy();
    throw new ExposeOutboundError(reply.reason, reply.message || reply.reason);
  }
  return { stream, bound: reply.bound };
}
