/**
 * How `nat expose` and `nat connect` join a local TCP connection to a peer-link stream, and how
 * they end it: a TCP connection ends cleanly (FIN) only when the far end's service ended its
 * side (the stream's authenticated end); in every other case (the link lost, its path dead, the
 * peer gone, a local error, the command stopping) the local connection is reset (RST), so that
 * an application never takes a cut-short transfer for a complete one, and a `stream-reset`
 * event says why.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionPath, PeerLink } from '@nat/client';
import { encodeProxyV2Header, spliceTcp } from '@nat/protocol';

/** What the commands print: a JSON event with `--json`, else a line for people. */
export type TunnelEmit = (event: Record<string, unknown>, text: string) => void;

/** Resets a local TCP connection (the application sees ECONNRESET, never a clean end). */
export function resetTcp(tcp: Socket): void {
  if (!tcp.destroyed) tcp.resetAndDestroy();
}

/**
 * Splices `tcp` and `stream` (bytes both ways, half-closes passed on), resetting `tcp` when the
 * stream fails or closes before both directions ended; then emits `stream-reset` with the
 * reason: the link's close reason when the link closed under the stream, else the stream's or
 * the socket's error.
 */
export function spliceTunnel(tcp: Socket, stream: Duplex, link: PeerLink, emit: TunnelEmit, peer: string): void {
  let linkWhy: string | undefined;
  const onLinkClose = (e: Error | undefined): void => {
    linkWhy = e === undefined ? 'the peer link was closed locally' : `peer link closed: ${e.message}`;
  };
  link.once('close', onLinkClose);
  spliceTcp(tcp, stream, {
    onClose: ({ up, down, error }) => {
      link.off('close', onLinkClose);
      if (error === undefined) return;
      const reason = linkWhy ?? error.message;
      emit(
        { event: 'stream-reset', peer, reason, bytesUp: up, bytesDown: down },
        `${peer}: a connection was reset after ${up} bytes up and ${down} down: ${reason}`,
      );
    },
  });
}

/**
 * `nat expose --proxy-protocol`: the PROXY v2 header of a connection carried by a link on `path`:
 * source the peer's end of the path (its address as this host sees it: its NAT's public address
 * on a direct path, the relay's on a relayed one), destination this host's end. LOCAL when the
 * path is unknown or the two ends are of different families.
 */
export function linkProxyHeader(path: ConnectionPath | undefined): Uint8Array {
  try {
    return encodeProxyV2Header('tcp', path?.remoteCandidate.address, path?.localCandidate.address);
  } catch {
    return encodeProxyV2Header('tcp');
  }
}
