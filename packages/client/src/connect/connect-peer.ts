/**
 * The caller's side: {@link connectPeer} offers a session to a peer and resolves with the
 * {@link IceConnection} once a pair is selected.
 */
import { randomBytes } from 'node:crypto';
import { StunClientError } from '../errors.js';
import type { RendezvousClient } from '../rendezvous/client.js';
import { IceConnection } from './connection.js';
import { IceConnectError } from './diagnosis.js';
import type { IceConnectionOptions } from './options.js';

/**
 * Connects to peer `peerId` through the rendezvous client `rv`, as the controlling agent:
 * sends an offer with the host candidates, trickles server-reflexive and relayed ones, and
 * resolves once a pair is selected.
 *
 * Rejects with StunClientError: `BAD_ADDRESS` with `reason` `self` at once when `peerId` is
 * `rv.id` (this peer's own); `ERROR_RESPONSE` with `reason` `peer-offline` or `unknown-peer`
 * (the rendezvous said so) or `bye` (the peer ended the session), `TIMEOUT` with `reason` the
 * ICE failure reason (`no-remote-candidates` when the peer never answered, `timeout`,
 * `all-pairs-failed`, `no-local-candidates` at once after gathering found none) after at most
 * the agent's `failureTimeout`, `ABORTED`, `SOCKET`. Once the connection was made, these are
 * {@link IceConnectError}s carrying what it observed (`diagnosis`).
 */
export async function connectPeer(rv: RendezvousClient, peerId: string, options: IceConnectionOptions = {}): Promise<IceConnection> {
  if (peerId === rv.id)
    throw new StunClientError('BAD_ADDRESS', `peer ${peerId} is this peer's own id: a peer cannot connect to itself (the other end needs another identity)`, {
      reason: 'self',
    });
  const conn = new IceConnection({ rv, peerId, sessionId: randomBytes(16).toString('base64url'), role: 'controlling', options });
  void conn.start();
  try {
    await conn.ready;
  } catch (e) {
    if (!(e instanceof StunClientError) || e.code === 'ABORTED') throw e;
    throw new IceConnectError(e.code, e.message, conn.diagnosis, { cause: e, ...(e.reason === undefined ? {} : { reason: e.reason }) });
  }
  return conn;
}
