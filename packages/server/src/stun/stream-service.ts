import type { Socket } from 'node:net';
import { type DemultiplexOptions, StunMethod, StunStreamFramer, type TransportAddress, demultiplex } from '@nat/protocol';
import type { StreamLease, StreamOutputKind } from '../listeners/stream.js';
import type { TurnDriver } from '../relay/driver.js';
import type { DataConnection } from '../relay/tcp-peers.js';
import type { ClientEndpoint } from '../turn/allocation.js';
import { tryDecodeStun } from '../turn/core.js';
import { quotaUser } from '../turn/quota.js';
import type { SocketRole } from './endpoints.js';
import type { StunResponder } from './responder.js';

/** What the STUN/TURN stream service shares with the rest of the server. */
export interface StunStreamContext {
  readonly responder: StunResponder;
  /** The TURN driver, when TURN is on. */
  readonly turn: TurnDriver | undefined;
  nextId(): number;
}

const STRICT: DemultiplexOptions = { legacyChannelNumbers: false };
const LEGACY: DemultiplexOptions = { legacyChannelNumbers: true };

/**
 * How the governor treats bytes sent to a client: relayed data (ChannelData by its first byte,
 * RFC 7983; a Data indication, type 0x0017) is droppable like UDP; a STUN error response (class
 * bits 11) is rate limited per source; everything else is an answer.
 */
export function outputKind(bytes: Uint8Array, legacyChannelNumbers = false): StreamOutputKind {
  const b0 = bytes[0] ?? -1;
  const b1 = bytes[1] ?? 0;
  if (demultiplex(b0, legacyChannelNumbers ? LEGACY : STRICT) === 'turn-channel' || (b0 === 0x00 && b1 === 0x17)) return 'droppable';
  return (b0 & 0x01) !== 0 && (b1 & 0x10) !== 0 ? 'error' : 'answer';
}

/**
 * Serves STUN (and TURN, when on) over one governed TCP or TLS connection (RFC 8489 section
 * 6.2.2; RFC 8656 section 3.1 for the allocation that lives as long as the connection). Frames
 * are processed only while the lease is not paused for queued output; the rest waits in the
 * framer until the client reads. Once the connection carries an allocation, it counts against
 * its user's share (the governor's `perUser`).
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
  const legacy = turn?.core.legacyChannelNumbers === true;
  const framer = turn ? new StunStreamFramer({ legacyChannelNumbers: legacy }) : new StunStreamFramer({ maxChannelDataLength: 4, maxStunMessageLength: 8192 });
  const family = socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4';
  const from: TransportAddress = { family, address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  const transport = socket.encrypted ? 'tls' : 'tcp';
  const endpoint: ClientEndpoint = { key: `${transport}|${ctx.nextId()}`, client: from, server, transport };
  const conn: DataConnection = { socket, raw: false, takeBuffered: () => framer.takeBuffered(), attribute: (user) => lease.attribute(user) };
  const send = (bytes: Uint8Array): void => lease.send(bytes, outputKind(bytes, legacy));
  if (turn) {
    turn.attachStream(endpoint, conn, send);
    socket.on('close', () => turn.detachStream(endpoint.key));
  }
  /** The connection's user, once it carries an allocation: counted against the user's share. */
  const attribute = (): void => {
    const a = lease.user === undefined ? turn?.core.allocationOf(endpoint.key) : undefined;
    if (a !== undefined) lease.attribute(quotaUser(a.username));
  };
  const pump = (): void => {
    try {
      const next = (): ReturnType<StunStreamFramer['next']> => (conn.raw || lease.paused || socket.destroyed ? undefined : framer.next());
      for (let frame = next(); frame !== undefined; frame = next()) {
        const now = Date.now();
        if (frame.kind === 'channel-data') {
          turn?.channelData(frame.bytes, endpoint, now);
          continue;
        }
        const message = turn ? tryDecodeStun(frame.bytes) : undefined;
        if (turn && message !== undefined && message.method !== StunMethod.Binding) {
          turn.stun(message, endpoint, now);
          attribute();
        } else {
          const reply = responder.handleStreamMessage(frame.bytes, from, role, now);
          if (reply !== undefined) send(reply);
        }
      }
    } catch {
      // The stream is not STUN (RFC 8489 section 6.2.2 framing lost): close it.
      lease.close('protocol-error');
    }
  };
  lease.serve(socket, { carries: () => conn.raw || turn?.core.allocationOf(endpoint.key) !== undefined, resumed: pump });
  socket.on('data', (chunk: Buffer) => {
    try {
      framer.push(chunk);
    } catch {
      lease.close('protocol-error');
      return;
    }
    pump();
  });
}
