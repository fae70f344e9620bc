/**
 * Opening a peer link: the Noise XX handshake over the path's datagrams, then the link's sockets.
 */
import { LINK_HS1 as HS1, LINK_HS2 as HS2, LINK_HS3 as HS3, LINK_SEALED as SEALED, peerIdFromPublicKey } from '@nat/protocol';
import type { RendezvousIdentity } from '../rendezvous/identity.js';
import { PeerLinkError } from './errors.js';
import { PeerLink } from './link.js';
import { Noise, type NoiseState, type SodiumKeyPair, type UdxSocket, bindUdxSocket, curveEd, shimUdx, udx } from './native.js';
import { PacketOpener } from './seal.js';
import { createRawStream } from './stream-ids.js';
import type { LinkPath, LinkStats, PeerLinkOptions } from './types.js';

const PROLOGUE = Buffer.from('nat-peer-link/2');
const LOOPBACK = '127.0.0.1';
const LOOPBACK6 = '::1';
/** Sealed datagrams that overtook the initiator's last handshake message, kept for the link. */
const MAX_EARLY = 256;

/** The libsodium-layout key pair of a node:crypto Ed25519 identity. */
export function sodiumKeyPair(identity: RendezvousIdentity): SodiumKeyPair {
  const jwk = identity.privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TypeError('not an Ed25519 private key');
  return curveEd.generateKeyPair(Buffer.from(jwk.d, 'base64url'));
}

/**
 * Runs the Noise XX handshake (`Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, the static keys being the
 * peers' Ed25519 identity keys) over `path` and resolves with the open link. The remote static
 * key must hash to `remotePeerId` and pass `allow`, else the link is refused. Handshake messages
 * are resent until answered: the path is lossy.
 *
 *     -> e
 *     <- e, ee, s, es          (payload: the responder's control stream id)
 *     -> s, se                 (payload: the initiator's control stream id)
 *     <- a sealed keepalive    (confirmation: the responder accepted the initiator's key)
 *
 * The initiator resends its last message until the confirmation comes, so it never reports a
 * link the responder refused; a refused initiator fails with `HANDSHAKE_TIMEOUT`, or `CLOSED`
 * when the responder closes the path (as `nat expose` does).
 * Rejects with {@link PeerLinkError}: `REFUSED`, `HANDSHAKE_TIMEOUT`, `CLOSED`, `ABORTED`.
 */
export async function openLink(path: LinkPath, options: PeerLinkOptions): Promise<PeerLink> {
  const { signal } = options;
  if (signal?.aborted) throw new PeerLinkError('ABORTED', 'peer link aborted');
  const noise: NoiseState = new Noise('XX', options.initiator, sodiumKeyPair(options.identity), { curve: curveEd });
  noise.initialise(PROLOGUE);
  const stats: LinkStats = {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    keepalivesSent: 0,
    dropped: { malformed: 0, tampered: 0, replayed: 0 },
    streamsTampered: 0,
    routeChanges: 0,
    streamsResumed: 0,
    route: 'shim',
  };
  const control = createRawStream();
  const idPayload = Buffer.alloc(4);
  idPayload.writeUInt32BE(control.id);
  const early: Uint8Array[] = [];

  const frame = (type: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.from([type]), body]);
  const checkKey = (rs: Buffer | null): Buffer => {
    if (rs === null) throw new PeerLinkError('REFUSED', 'the peer sent no static key');
    const id = peerIdFromPublicKey(rs);
    if (id !== options.remotePeerId) throw new PeerLinkError('REFUSED', `the peer's key is for ${id}, not the expected peer ${options.remotePeerId}`);
    if (options.allow !== undefined && !options.allow(id)) throw new PeerLinkError('REFUSED', `peer ${id} is not allowed`);
    return Buffer.from(rs);
  };

  let privateSocket: UdxSocket | undefined;
  let shim: UdxSocket | undefined;

  let resend: Buffer | undefined;
  let pending: { remoteStatic: Buffer; remoteControlId: number } | undefined;
  let opener: PacketOpener | undefined;
  let confirmation: Buffer | undefined;
  let finalMessage: Buffer | undefined;
  let retransmit: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let onData: ((d: Uint8Array) => void) | undefined;
  let onClose: (() => void) | undefined;
  let onAbort: (() => void) | undefined;

  try {
    const result = await new Promise<{ remoteStatic: Buffer; remoteControlId: number }>((resolve, reject) => {
      const every = options.handshakeRetransmitMs ?? 250;
      retransmit = setInterval(() => {
        if (resend !== undefined) path.send(resend);
      }, every);
      deadline = setTimeout(
        () =>
          reject(
            new PeerLinkError('HANDSHAKE_TIMEOUT', `no peer link handshake with ${options.remotePeerId} within ${options.handshakeTimeoutMs ?? 10_000} ms`),
          ),
        options.handshakeTimeoutMs ?? 10_000,
      );
      onClose = () => reject(new PeerLinkError('CLOSED', 'the path closed during the peer link handshake'));
      onAbort = () => reject(new PeerLinkError('ABORTED', 'peer link aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const fail = (e: unknown): void =>
        reject(e instanceof PeerLinkError ? e : new PeerLinkError('REFUSED', `peer link handshake failed: ${(e as Error).message}`, { cause: e }));
      onData = (d: Uint8Array): void => {
        if (d.length === 0) return;
        const type = d[0];
        const body = d.subarray(1);
        try {
          if (options.initiator) {
            if (type === HS2 && !noise.complete) {
              const payload = noise.recv(body);
              const remoteStatic = checkKey(noise.rs);
              if (payload.length !== 4) throw new PeerLinkError('REFUSED', 'bad handshake payload');
              finalMessage = frame(HS3, noise.send(idPayload));
              path.send(finalMessage);
              // resent until the responder confirms: it may still refuse our key
              resend = finalMessage;
              pending = { remoteStatic, remoteControlId: payload.readUInt32BE(0) };
              opener = new PacketOpener(noise.rx!);
            } else if (type === SEALED && pending !== undefined && opener !== undefined) {
              const plain = opener.open(body);
              if (typeof plain !== 'string') {
                confirmation = plain;
                resolve(pending);
              }
            }
          } else if (type === HS1 && resend === undefined) {
            noise.recv(body);
            resend = frame(HS2, noise.send(idPayload));
            path.send(resend);
          } else if (type === HS1 && !noise.complete && resend !== undefined) {
            path.send(resend);
          } else if (type === HS3 && resend !== undefined && !noise.complete) {
            const payload = noise.recv(body);
            const remoteStatic = checkKey(noise.rs);
            if (payload.length !== 4) throw new PeerLinkError('REFUSED', 'bad handshake payload');
            resolve({ remoteStatic, remoteControlId: payload.readUInt32BE(0) });
          } else if (type === SEALED && !options.initiator) {
            if (early.length < MAX_EARLY) early.push(d); // data that overtook HS3
          }
        } catch (e) {
          fail(e);
        }
      };
      path.on('data', onData);
      path.on('close', onClose);
      if (options.initiator) {
        resend = frame(HS1, noise.send());
        path.send(resend);
      }
    });
    if (noise.tx === null || noise.rx === null) throw new PeerLinkError('REFUSED', 'the handshake produced no keys');
    // the home socket is chosen now, not before the handshake: the path has selected a pair by
    // now (the handshake crossed it), and its socket is where a direct route will run
    let home = path.udxHome;
    if (home === undefined) {
      privateSocket = bindUdxSocket(udx(), LOOPBACK);
      home = privateSocket;
    }
    // a socket bound to any local address reaches loopback (and is reached from it) on this host
    shim = bindUdxSocket(shimUdx(), home.address().family === 6 ? LOOPBACK6 : LOOPBACK);
    return new PeerLink({
      path,
      options,
      remotePublicKey: result.remoteStatic,
      tx: noise.tx,
      rx: noise.rx,
      opener: opener ?? new PacketOpener(noise.rx),
      confirmation,
      privateSocket,
      home,
      shim,
      control,
      remoteControlId: result.remoteControlId,
      stats,
      retransmitHs: finalMessage,
      earlySealed: early,
    });
  } catch (error) {
    control.destroy();
    void shim?.close().catch(() => {});
    void privateSocket?.close().catch(() => {});
    throw error;
  } finally {
    clearInterval(retransmit);
    clearTimeout(deadline);
    if (onData !== undefined) path.off('data', onData);
    if (onClose !== undefined) path.off('close', onClose);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}
