/**
 * The data path (RFC 8656 sections 10 and 12): Send indications and ChannelData from the client,
 * datagrams from peers (to the client as ChannelData or Data indications). The hot path: no
 * event, closure or allocation per packet; traffic is summed in the allocation's plain counters
 * and reported from `sweep` (lifecycle.ts).
 */
import { Attr, StunClass, StunMethod, type StunMessage, type TransportAddress, attr, encodeChannelData, encodeStunMessage } from '@nat/protocol';
import { type Allocation, type ClientEndpoint, peerKey } from '../allocation.js';
import { canonicalIpSafe } from '../peer-check.js';
import type { TurnState } from '../state.js';

function drop(s: TurnState, a: Allocation): void {
  a.dropped++;
  s.stats.dropped++;
}

/** A packet over a bandwidth cap (the tier's, then the server's per-allocation one): dropped. */
function overBandwidth(s: TurnState, a: Allocation): false {
  a.overBandwidth++;
  drop(s, a);
  return false;
}

/** Takes `bytes` from the allocation's bandwidth budgets; false (dropped, counted) when over one. */
function spend(s: TurnState, a: Allocation, bytes: number, now: number): boolean {
  const lease = s.leases.size === 0 ? undefined : s.leases.get(a.id);
  if (lease !== undefined && !lease.spend(bytes, now)) return overBandwidth(s, a);
  if (s.bandwidth <= 0) return true;
  a.tokens = Math.min(s.bandwidth, a.tokens + ((now - a.tokensAt) * s.bandwidth) / 1000);
  a.tokensAt = now;
  if (a.tokens < bytes) return overBandwidth(s, a);
  a.tokens -= bytes;
  return true;
}

/**
 * Send indication (RFC 8656 section 10.2): never answered; dropped when there is no allocation
 * on the 5-tuple, XOR-PEER-ADDRESS or DATA is missing, the peer has no permission, is one of the
 * server's own service addresses, or of a family the allocation does not relay, or the
 * allocation is over its bandwidth. Otherwise DATA goes to the peer from the relayed address.
 */
export function handleSend(s: TurnState, m: StunMessage, endpoint: ClientEndpoint, now: number): void {
  const a = s.byEndpoint.get(endpoint.key);
  if (a === undefined) return void s.stats.dropped++;
  let peer: TransportAddress | undefined;
  let data: Uint8Array | undefined;
  try {
    peer = m.get(Attr.XorPeerAddress);
    data = m.get(Attr.Data);
  } catch {
    return void drop(s, a);
  }
  if (peer === undefined || data === undefined || !a.hasPermission(canonicalIpSafe(peer.address), now) || s.policy.isService(peer)) return void drop(s, a);
  if (a.relayed[peer.family] === undefined) return void drop(s, a);
  if (!spend(s, a, data.length, now)) return;
  a.toPeerPackets++;
  a.toPeerBytes += data.length;
  s.stats.relayedToPeer++;
  s.out.push({ kind: 'to-peer', allocation: a.id, peer, bytes: data });
}

/**
 * ChannelData from the client (RFC 8656 section 12.4): dropped without an allocation on the
 * 5-tuple, when the channel is not bound (or expired), when the length field overruns the
 * message, or over the bandwidth. Otherwise its data goes to the channel's peer.
 */
export function handleChannelData(s: TurnState, bytes: Uint8Array, endpoint: ClientEndpoint, now: number): void {
  const a = s.byEndpoint.get(endpoint.key);
  if (a === undefined || bytes.length < 4) return void s.stats.dropped++;
  const number = (bytes[0]! << 8) | bytes[1]!;
  const length = (bytes[2]! << 8) | bytes[3]!;
  const channel = a.channels.get(number);
  if (channel === undefined || channel.expiresAt <= now || 4 + length > bytes.length) return void drop(s, a);
  if (!spend(s, a, length, now)) return;
  a.toPeerPackets++;
  a.toPeerBytes += length;
  s.stats.relayedToPeer++;
  s.out.push({ kind: 'to-peer', allocation: a.id, peer: channel.peer, bytes: bytes.subarray(4, 4 + length) });
}

/**
 * A datagram on an allocation's relay socket from a peer (RFC 8656 sections 10.3 and 12.5):
 * dropped unless the peer's IP has a permission (section 9) and the allocation is within its
 * bandwidth; then ChannelData on the peer's bound channel (padded on streams), or a Data
 * indication with XOR-PEER-ADDRESS and DATA.
 */
export function handlePeerData(s: TurnState, a: Allocation, data: Uint8Array, from: TransportAddress, now: number): void {
  if (!a.hasPermission(from.address, now) && !a.hasPermission(canonicalIpSafe(from.address), now)) return void drop(s, a);
  if (!spend(s, a, data.length, now)) return;
  const number = a.channelByPeer.get(peerKey(from));
  let bytes: Uint8Array;
  if (number !== undefined && a.channels.get(number)!.expiresAt > now) {
    bytes = encodeChannelData(number, data, { padded: a.endpoint.transport !== 'udp', legacyChannelNumbers: s.legacyChannels });
  } else {
    bytes = encodeStunMessage({ method: StunMethod.Data, class: StunClass.Indication, attributes: [attr(Attr.XorPeerAddress, from), attr(Attr.Data, data)] });
  }
  a.toClientPackets++;
  a.toClientBytes += data.length;
  s.stats.relayedToClient++;
  s.out.push({ kind: 'to-client', endpoint: a.endpoint, bytes });
}
