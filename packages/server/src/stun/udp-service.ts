import { type DemultiplexOptions, StunMethod, type TransportAddress, demultiplex } from '@nat/protocol';
import type { Logger } from '../logger.js';
import type { UdpSockets } from '../listeners/udp.js';
import type { TurnDriver } from '../relay/driver.js';
import { tryDecodeStun } from '../turn/core.js';
import { type EndpointSet, type SocketRole, roleAddress } from './endpoints.js';
import type { StunReply, StunResponder } from './responder.js';

/**
 * Serves STUN (and TURN, when `turn` is given) on the UDP socket of `role`. Each datagram is
 * told apart by its first byte (RFC 7983, with RFC 5766's wider channel range when the TURN
 * core accepts it): ChannelData goes to the TURN driver, STUN Binding to the responder, other
 * STUN methods to the TURN driver, and anything else is dropped (counted by the responder).
 *
 * Hot path: nothing is allocated per datagram here beyond what the responder or the TURN core
 * need, and nothing is logged.
 */
export function serveStunUdp(
  sockets: UdpSockets,
  set: EndpointSet,
  role: SocketRole,
  responder: StunResponder,
  turn: TurnDriver | undefined,
  log: Logger,
): void {
  const socket = sockets[role]!;
  const server = roleAddress(set, role)!;
  const demux: DemultiplexOptions = { legacyChannelNumbers: turn?.core.legacyChannelNumbers === true };
  const answer = (reply: StunReply | undefined): void => {
    if (reply !== undefined) sockets[reply.via]!.send(reply.bytes, reply.to.port, reply.to.address);
  };
  socket.on('message', (msg, rinfo) => {
    const now = Date.now();
    const from = rinfo as TransportAddress;
    switch (demultiplex(msg.length > 0 ? msg[0]! : -1, demux)) {
      case 'stun':
        break;
      case 'turn-channel':
        if (turn !== undefined) return turn.channelData(msg, turn.udpEndpoint(role, server, from, socket), now);
        return responder.dropped();
      default:
        return responder.dropped();
    }
    if (turn === undefined) return answer(responder.handleDatagram(msg, from, role, now));
    const message = tryDecodeStun(msg);
    if (message === undefined) return answer(responder.handleDatagram(msg, from, role, now));
    if (message.method !== StunMethod.Binding) return turn.stun(message, turn.udpEndpoint(role, server, from, socket), now);
    answer(responder.handleMessage(message, from, role, now, false));
  });
  socket.on('error', (e) => log.warn({ err: e.message, role }, 'udp socket error'));
}
