/**
 * TCP relaying (RFC 6062): Connect, ConnectionBind, ConnectionAttempt, and the driver's reports
 * on the relay's TCP connections to peers. Each connection counts in its allocation's share
 * (tcp-limits.ts, injected limits).
 */
import { Attr, StunClass, StunMethod, type TransportAddress, attr, encodeStunMessage } from '@nat/protocol';
import type { Allocation } from '../allocation.js';
import { answerError, ok, signed } from '../answers.js';
import { forgetTcp } from '../lifecycle.js';
import { canonicalIpSafe, checkPeer } from '../peer-check.js';
import { Reject, type TurnRequest, type TurnState } from '../state.js';
import type { TcpOrigin } from '../tcp-limits.js';
import { PERMISSION_LIFETIME } from './permission.js';

/** RFC 6062 section 5.3: a peer connection not bound by the client within 30 s is closed. */
const CONNECTION_BIND_TIMEOUT = 30_000;

function newConnectionId(s: TurnState): number {
  for (;;) {
    const id = crypto.getRandomValues(new Uint32Array(1))[0]!;
    if (id !== 0 && !s.tcp.has(id)) return id;
  }
}

function tcpRefused(s: TurnState, a: Allocation, origin: TcpOrigin, peer: TransportAddress): void {
  s.stats.tcpRefused++;
  s.log.info({ allocation: a.id, user: a.username, peer: peer.address, origin }, 'peer connection refused: the allocation holds its share');
}

/**
 * Connect, in the order of RFC 6062 section 5.2 (authentication is done):
 * 1. No allocation on the 5-tuple: 437; made by another user: 441; not a TCP allocation: 400.
 * 2. No XOR-PEER-ADDRESS: 400; the peer not allowed (peer policy, service ports, tier scope): 403.
 * 3. A connection to that peer exists or is being made: 446.
 * 4. The allocation's share of Connects (injected, default 64): 508.
 * 5. The permission for the peer is installed or refreshed; the driver connects (`tcp-connect`),
 *    and the answer (CONNECTION-ID, or 447) waits for `tcpConnected`/`tcpConnectFailed`.
 */
export function handleConnect(s: TurnState, req: TurnRequest): void {
  const a = s.allocationFor(req);
  if (a.transport !== 'tcp') throw new Reject(400, 'Bad Request: Connect needs a TCP allocation');
  const peer = req.m.get(Attr.XorPeerAddress);
  if (peer === undefined) throw new Reject(400, 'Bad Request: XOR-PEER-ADDRESS is required');
  const ip = checkPeer(s, a, peer, 'tcp-connections');
  for (const c of s.tcp.values()) {
    if (c.allocation === a.id && c.peer.port === peer.port && canonicalIpSafe(c.peer.address) === ip) throw new Reject(446);
  }
  if (!s.tcpLimits.tryOpen(a.id, 'connect')) {
    tcpRefused(s, a, 'connect', peer);
    throw new Reject(508, 'Insufficient Capacity: too many peer connections', [], { cause: 'user-quota', pool: 'tcp-connections' });
  }
  a.permissions.set(ip, req.now + PERMISSION_LIFETIME);
  const id = newConnectionId(s);
  const to = { family: peer.family, address: ip, port: peer.port };
  s.tcp.set(id, { id, allocation: a.id, peer: to, origin: 'connect', state: 'connecting', connect: req.m, expiresAt: req.now + CONNECTION_BIND_TIMEOUT });
  s.out.push({ kind: 'tcp-connect', allocation: a.id, connectionId: id, peer: to });
}

/**
 * ConnectionBind, in the order of RFC 6062 section 5.4, on a new TCP/TLS connection from the
 * client (authentication is done):
 * 1. Over UDP, or on a connection that carries an allocation: 400.
 * 2. CONNECTION-ID unknown, or of a connection not waiting for its bind: 400.
 * 3. The connection's allocation made by another user: 441.
 * 4. The answer goes out, then the client's connection becomes a raw pipe to the peer's (`tcp-bind`).
 */
export function handleConnectionBind(s: TurnState, req: TurnRequest): void {
  const { endpoint } = req;
  if (endpoint.transport === 'udp') throw new Reject(400, 'Bad Request: ConnectionBind needs a TCP or TLS connection');
  if (s.byEndpoint.has(endpoint.key)) throw new Reject(400, 'Bad Request: this connection carries an allocation');
  const id = req.m.get(Attr.ConnectionId);
  const c = id === undefined ? undefined : s.tcp.get(id);
  if (c === undefined || c.state !== 'pending-bind') throw new Reject(400, 'Bad Request: unknown CONNECTION-ID');
  const a = s.byId.get(c.allocation);
  if (a === undefined) throw new Reject(400, 'Bad Request: unknown CONNECTION-ID');
  if (a.username !== req.auth.username) throw new Reject(441);
  c.state = 'bound';
  ok(s, req, []);
  s.out.push({ kind: 'tcp-bind', connectionId: c.id, endpoint });
}

/** The relay's connection to the peer is up (RFC 6062 section 5.2): the Connect's answer with CONNECTION-ID; the bind must follow within 30 s. */
export function tcpConnected(s: TurnState, connectionId: number, now: number): void {
  const c = s.tcp.get(connectionId);
  const a = c && s.byId.get(c.allocation);
  if (!c || !a || !c.connect) return;
  const request = c.connect;
  c.connect = undefined;
  c.state = 'pending-bind';
  c.expiresAt = now + CONNECTION_BIND_TIMEOUT;
  s.out.push({ kind: 'to-client', endpoint: a.endpoint, bytes: signed(s, request, a.key, a.mac, [attr(Attr.ConnectionId, c.id)]) });
}

/** The relay could not reach the peer: 447 Connection Timeout or Failure. */
export function tcpConnectFailed(s: TurnState, connectionId: number): void {
  const c = s.tcp.get(connectionId);
  if (c) forgetTcp(s, c);
  const a = c && s.byId.get(c.allocation);
  if (!c || !a || !c.connect) return;
  answerError(s, c.connect, a.endpoint, { key: a.key, mac: a.mac }, new Reject(447));
}

/**
 * A peer connected to a TCP allocation's relayed address (RFC 6062 section 5.3): accepted when
 * the peer's IP has a permission and the allocation's share of incoming connections (injected,
 * default 64) has room; then a ConnectionAttempt indication (CONNECTION-ID, XOR-PEER-ADDRESS)
 * goes to the client, which has 30 s to bind it. Returns the connection id, or undefined (the
 * driver closes the peer's connection; over the share, a `refused` event).
 */
export function tcpIncoming(s: TurnState, a: Allocation, peer: TransportAddress, now: number): number | undefined {
  if (a.transport !== 'tcp' || !a.hasPermission(canonicalIpSafe(peer.address), now)) return undefined;
  if (!s.tcpLimits.tryOpen(a.id, 'incoming')) {
    tcpRefused(s, a, 'incoming', peer);
    s.refused('user-quota', 'tcp-connections', a.endpoint, a.username);
    return undefined;
  }
  const id = newConnectionId(s);
  s.tcp.set(id, { id, allocation: a.id, peer, origin: 'incoming', state: 'pending-bind', expiresAt: now + CONNECTION_BIND_TIMEOUT });
  s.out.push({
    kind: 'to-client',
    endpoint: a.endpoint,
    bytes: encodeStunMessage({
      method: StunMethod.ConnectionAttempt,
      class: StunClass.Indication,
      attributes: [attr(Attr.ConnectionId, id), attr(Attr.XorPeerAddress, peer)],
    }),
  });
  return id;
}
