import type { Socket } from 'node:net';
import { StunMethod, StunStreamFramer, type TransportAddress } from '@nat/protocol';
import type { StreamLease } from '../listeners/stream.js';
import type { ClientEndpoint } from '../turn/allocation.js';
import { type TurnCore, tryDecodeStun } from '../turn/core.js';
import type { SocketRole } from './endpoints.js';
import type { StunResponder } from './responder.js';

/** A client's TCP/TLS connection to the STUN/TURN server; `raw` once it is a bound RFC 6062 data connection. */
export interface StunStreamConnection {
  readonly socket: Socket;
  readonly framer: StunStreamFramer;
  raw: boolean;
}

/** What the STUN/TURN stream service shares with the rest of the server. */
export interface StunStreamContext {
  readonly turn: TurnCore | undefined;
  readonly responder: StunResponder;
  /** How to answer each TURN client endpoint, by endpoint key. */
  readonly senders: Map<string, (bytes: Uint8Array) => void>;
  readonly streamConnections: Map<string, StunStreamConnection>;
  flushTurn(): void;
  nextId(): number;
}

/**
 * How the governor treats bytes sent to a client: relayed data (ChannelData, first byte 0x40
 * and up; a Data indication, type 0x0017) is droppable like UDP; a STUN error response (class
 * bits 11) is rate limited per source; everything else is an answer.
 */
export function outputKind(bytes: Uint8Array): 'answer' | 'error' | 'droppable' {
  const b0 = bytes[0] ?? 0;
  const b1 = bytes[1] ?? 0;
  if (b0 >= 0x40 || (b0 === 0x00 && b1 === 0x17)) return 'droppable';
  return (b0 & 0x01) !== 0 && (b1 & 0x10) !== 0 ? 'error' : 'answer';
}

/**
 * Serves STUN (and TURN, when on) over one governed TCP or TLS connection (RFC 8489 section
 * 6.2.2; RFC 8656 section 3.1 for the allocation that lives as long as the connection). Frames
 * are processed only while the lease is not paused for queued output; the rest waits in the
 * framer until the client reads.
 */
export function serveStunStream(
  ctx: StunStreamContext,
  socket: Socket & { encrypted?: boolean },
  lease: StreamLease,
  role: SocketRole,
  server: TransportAddress,
): void {
  const { turn, responder } = ctx;
  socket.on('error', () => socket.destroy());
  // A STUN-only server has no use for ChannelData (a stream starting with 0x40-0x4F, such as
  // "GET ..." is one) and no STUN request of more than a few kilobytes: fail such streams
  // at once instead of waiting for the bytes their length fields promise.
  const framer = turn
    ? new StunStreamFramer({ legacyChannelNumbers: turn.legacyChannelNumbers })
    : new StunStreamFramer({ maxChannelDataLength: 4, maxStunMessageLength: 8192 });
  const family = socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4';
  const from: TransportAddress = { family, address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  const transport = socket.encrypted ? 'tls' : 'tcp';
  const endpoint: ClientEndpoint = { key: `${transport}|${ctx.nextId()}`, client: from, server, transport };
  const conn: StunStreamConnection = { socket, framer, raw: false };
  if (turn) {
    ctx.senders.set(endpoint.key, (bytes) => lease.send(bytes, outputKind(bytes)));
    ctx.streamConnections.set(endpoint.key, conn);
    socket.on('close', () => {
      ctx.senders.delete(endpoint.key);
      ctx.streamConnections.delete(endpoint.key);
      turn.handleEndpointClosed(endpoint.key);
      ctx.flushTurn();
    });
  }
  const pump = (): void => {
    try {
      const next = (): ReturnType<StunStreamFramer['next']> => (conn.raw || lease.paused ? undefined : framer.next());
      for (let frame = next(); frame !== undefined; frame = next()) {
        const now = Date.now();
        if (frame.kind === 'channel-data') {
          turn?.handleChannelData(frame.bytes, endpoint, now);
        } else {
          const message = turn ? tryDecodeStun(frame.bytes) : undefined;
          if (turn && message !== undefined && message.method !== StunMethod.Binding) {
            turn.handleStun(message, endpoint, now);
          } else {
            const reply = responder.handleStreamMessage(frame.bytes, from, role, now);
            if (reply !== undefined) lease.send(reply, outputKind(reply));
          }
        }
        ctx.flushTurn();
      }
    } catch {
      // The stream is not STUN (RFC 8489 section 6.2.2 framing lost): close it.
      socket.destroy();
    }
  };
  lease.serve(socket, { carries: () => conn.raw || turn?.allocationOf(endpoint.key) !== undefined, resumed: pump });
  socket.on('data', (chunk: Buffer) => {
    try {
      framer.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    pump();
  });
}
