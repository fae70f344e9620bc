/**
 * The owner lookup of public ports: `GET {path}/owner?port=P[&transport=tcp|udp][&host=IP]` on
 * the expose service's HTTP server answers which peer id owns public port P, when its owner
 * advertised it (`nat expose --public --advertise-peer`), so that a peer running nat can reach
 * the owner directly (`nat connect PEER_ID`) instead of through the public port. A port that is
 * not held and a port whose owner did not opt in get the same 404. `host`: the public address of
 * another node of the same cluster (`--redis`), whose advertisements every node reads; without
 * it, this node's own.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  EXPOSE_OWNER_PATH,
  EXPOSE_VERSION,
  type ExposeOwnerAnswer,
  type ExposeRequest,
  canonicalIp,
  exposeAdvertisePayload,
  ipFamily,
  peerIdFromPublicKey,
} from '@nat/protocol';
import { claimResponse } from '../http-claims.js';
import type { ExposeOwnerRecord } from './cluster.js';

/** The peer id of an advertise proof when its signature over the session's challenge verifies, else undefined. */
export function verifyAdvertise(advertise: NonNullable<ExposeRequest['advertise']>, nonce: string): string | undefined {
  try {
    const peerId = peerIdFromPublicKey(Buffer.from(advertise.publicKey, 'base64url'));
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: advertise.publicKey }, format: 'jwk' });
    return verify(null, exposeAdvertisePayload(nonce, peerId), key, Buffer.from(advertise.signature, 'base64url')) ? peerId : undefined;
  } catch {
    return undefined; // a key OpenSSL refuses is as bad as a bad signature
  }
}

/**
 * Finds the advertised owner of a public port at `host` (canonical IP text; undefined: this
 * node's address): at once when this node knows, or later when the cluster is asked.
 */
export type OwnerLookup = (
  transport: 'tcp' | 'udp',
  port: number,
  host: string | undefined,
) => ExposeOwnerRecord | undefined | Promise<ExposeOwnerRecord | 'unavailable' | undefined>;

/** The `host` parameter as canonical IP text (brackets allowed around IPv6), undefined when absent, null when not an IP address. */
function hostParam(text: string | null): string | undefined | null {
  if (text === null) return undefined;
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return ipFamily(bare) === undefined ? null : canonicalIp(bare);
}

/**
 * A `request` listener answering `GET {path}/owner` (JSON, {@link ExposeOwnerAnswer}); other
 * requests are left to the server's other listeners. Prepend it, so it answers before them; a
 * later listener must leave a response that has ended alone.
 */
export function ownerRequestListener(path: string, lookup: OwnerLookup): (req: IncomingMessage, res: ServerResponse) => void {
  const ownerPath = `${path.replace(/\/$/, '')}/${EXPOSE_OWNER_PATH}`;
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== ownerPath) return;
    const answer = (status: number, body: ExposeOwnerAnswer): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', connection: 'close' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const port = Number(url.searchParams.get('port'));
    const transport = url.searchParams.get('transport') ?? 'tcp';
    const host = hostParam(url.searchParams.get('host'));
    if (req.method !== 'GET' || !Number.isInteger(port) || port < 1 || port > 65535 || (transport !== 'tcp' && transport !== 'udp') || host === null)
      return answer(400, { v: EXPOSE_VERSION, error: 'bad-request', message: `expected GET ${ownerPath}?port=PORT[&transport=tcp|udp][&host=IP]` });
    const tell = (owner: ExposeOwnerRecord | 'unavailable' | undefined): void => {
      const where = host === undefined ? 'this server' : host;
      if (owner === 'unavailable')
        return answer(503, { v: EXPOSE_VERSION, error: 'unavailable', message: 'the state this server shares with its other nodes did not answer' });
      if (owner === undefined)
        return answer(404, { v: EXPOSE_VERSION, error: 'not-advertised', message: `no owner of ${transport} port ${port} is advertised on ${where}` });
      answer(200, { v: EXPOSE_VERSION, transport, port, address: owner.address, peer: owner.peer });
    };
    const found = lookup(transport, port, host);
    if (!(found instanceof Promise)) return tell(found);
    claimResponse(res); // answered after the await: the rendezvous service's own answer leaves it alone
    found.then(tell, () => tell('unavailable'));
  };
}
