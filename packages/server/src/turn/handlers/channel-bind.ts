/** ChannelBind (RFC 8656 section 11.2). */
import { Attr, isLegacyChannelNumber, isValidChannelNumber } from '@nat/protocol';
import { peerKey } from '../allocation.js';
import { ok } from '../answers.js';
import { checkPeer } from '../peer-check.js';
import { Reject, type TurnRequest, type TurnState } from '../state.js';
import { PERMISSION_LIFETIME } from './permission.js';

/** RFC 8656 section 12: a channel binding lasts 10 minutes unless refreshed. */
const CHANNEL_LIFETIME = 600_000;

/**
 * ChannelBind, in the order of RFC 8656 section 11.2 (authentication is done):
 * 1. No allocation on the 5-tuple: 437; made by another user: 441.
 * 2. CHANNEL-NUMBER or XOR-PEER-ADDRESS missing: 400; a number outside 0x4000-0x4FFF (0x7FFF
 *    with RFC 5766 numbers, the default): 400.
 * 3. The peer: a family the allocation relays (443), allowed by the peer policy (including the
 *    server's own service ports) and the tier's scope (403).
 * 4. The number bound to another peer, or the peer to another number: 400.
 * 5. A new binding over the allocation's channel cap (injected, default 100): 508.
 * 6. The binding is made or refreshed for 10 minutes, and so is the peer's permission (5 min).
 */
export function handleChannelBind(s: TurnState, req: TurnRequest): void {
  const a = s.allocationFor(req);
  const number = req.m.get(Attr.ChannelNumber);
  const peer = req.m.get(Attr.XorPeerAddress);
  if (number === undefined || peer === undefined) throw new Reject(400, 'Bad Request: CHANNEL-NUMBER and XOR-PEER-ADDRESS are required');
  if (!(s.legacyChannels ? isLegacyChannelNumber(number) : isValidChannelNumber(number))) {
    throw new Reject(400, `Bad Request: channel number outside 0x4000-${s.legacyChannels ? '0x7FFF' : '0x4FFF'}`);
  }
  const ip = checkPeer(s, a, peer, 'channels');
  const canonicalPeer = { family: peer.family, address: ip, port: peer.port };
  const key = peerKey(canonicalPeer);
  const bound = a.channels.get(number);
  if (bound && bound.peerKey !== key) throw new Reject(400, 'Bad Request: channel bound to another peer');
  const other = a.channelByPeer.get(key);
  if (other !== undefined && other !== number) throw new Reject(400, 'Bad Request: peer bound to another channel');
  if (!bound && a.channels.size >= s.maxChannels)
    throw new Reject(508, 'Insufficient Capacity: too many channels', [], { cause: 'user-quota', pool: 'channels' });
  if (bound) bound.expiresAt = req.now + CHANNEL_LIFETIME;
  else {
    a.channels.set(number, { number, peer: canonicalPeer, peerKey: key, expiresAt: req.now + CHANNEL_LIFETIME });
    a.channelByPeer.set(key, number);
  }
  a.permissions.set(ip, req.now + PERMISSION_LIFETIME);
  ok(s, req, []);
}
