/**
 * The caller's side: {@link connectPeer} offers a session to a peer and resolves with the
 * {@link IceConnection} once a pair is selected.
 */
import { randomBytes } from 'node:crypto';
import { RendezvousError } from '../errors.js';
import type { RendezvousClient } from '../rendezvous/client.js';
import { IceConnection } from './connection.js';
import { withDiagnosis } from './diagnosis.js';
import type { IceConnectionOptions } from './options.js';

/**
 * Connects to peer `peerId` through the rendezvous client `rv`, as the controlling agent:
 * sends an offer with the host candidates, trickles server-reflexive and relayed ones, and
 * resolves once a pair is selected.
 *
 * Rejects with a {@link RendezvousError}: `self` at once when `peerId` is `rv.id` (this peer's
 * own); `peer-offline` or `unknown-peer` (the rendezvous said so) or `bye` (the peer ended the
 * session). With an `IceError` whose code is the ICE failure reason
 * (`no-remote-candidates` when the peer never answered, `timeout`, `all-pairs-failed`,
 * `no-local-candidates` at once after gathering found none) after at most the agent's
 * `failureTimeout`. With a `StunClientError` `ABORTED`, or an `IceConnectError`
 * (`SOCKET`, ...) when a socket failed. Once the connection was made, every one but `ABORTED`
 * carries what it observed as `diagnosis` (read it with `connectionDiagnosis(e)`).
 */
export async function connectPeer(rv: RendezvousClient, peerId: string, options: IceConnectionOptions = {}): Promise<IceConnection> {
  if (peerId === rv.id)
    throw new RendezvousError('self', `peer ${peerId} is this peer's own id: a peer cannot connect to itself (the other end needs another identity)`);
  const conn = new IceConnection({ rv, peerId, sessionId: randomBytes(16).toString('base64url'), role: 'controlling', options });
  void conn.start();
  try {
    await conn.ready;
  } catch (e) {
    throw withDiagnosis(e, conn.diagnosis);
  }
  return conn;
}
