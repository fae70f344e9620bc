/**
 * The header of a tunnel stream (`nat expose` / `nat connect`): each stream of a peer link that
 * carries a TCP connection starts with `[version 1][name length][name]` from the connecting
 * side (an empty name asks for the exposing side's only service), answered by one status byte
 * ({@link TunnelStatus}) from the exposing side before the connection's bytes.
 */
import { EncodeError } from '../errors.js';

/** The header's version byte. */
export const TUNNEL_HEADER_VERSION = 1;

/** The status byte the exposing side answers a header with. */
export const TunnelStatus = { Ok: 0, UnknownService: 1, NotAllowed: 2, TargetUnreachable: 3, BadHeader: 4 } as const;
export type TunnelStatus = (typeof TunnelStatus)[keyof typeof TunnelStatus];

const STATUS_TEXT: Readonly<Record<number, string>> = {
  [TunnelStatus.UnknownService]: 'the peer exposes no such service',
  [TunnelStatus.NotAllowed]: 'the peer does not allow this peer id to use the service',
  [TunnelStatus.TargetUnreachable]: 'the peer could not reach its target',
  [TunnelStatus.BadHeader]: 'the peer did not understand the stream header',
};

/** A refusal status in words (`status N` for one this version does not know). */
export function tunnelStatusText(status: number): string {
  return STATUS_TEXT[status] ?? `status ${status}`;
}

/** The header asking for service `name` (UTF-8, at most 255 bytes; '' for the only service). */
export function encodeTunnelHeader(name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length > 255) throw new EncodeError('BAD_VALUE', `tunnel service name of ${bytes.length} bytes (at most 255)`);
  return Buffer.concat([Buffer.from([TUNNEL_HEADER_VERSION, bytes.length]), bytes]);
}

/**
 * The header's first two bytes read: how many name bytes follow, or the status to answer when
 * the version is not one this side speaks.
 */
export function tunnelHeaderStart(head: Uint8Array): { readonly nameLength: number } | { readonly refuse: TunnelStatus } {
  if (head.length < 2 || head[0] !== TUNNEL_HEADER_VERSION) return { refuse: TunnelStatus.BadHeader };
  return { nameLength: head[1]! };
}
