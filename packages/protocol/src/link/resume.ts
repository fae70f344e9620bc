/**
 * The peer link's stream resumption messages ({@link LinkInner.Resume}, in sealed datagrams).
 *
 * A link stream's bytes can move to a new udx stream pair when its udx stream cannot go on (its
 * packets in flight went to an address the peer no longer has). Each side counts the bytes it
 * received on the stream; the sender keeps what it wrote until the receiver confirms it, and
 * after a resumption writes again from the receiver's count on the new pair.
 *
 * Payload after the inner type byte, 21 bytes:
 * - kind (1 byte, {@link LinkResumeKind});
 * - the receiver's stream id (32 bits: the id the stream had on the receiver's side when it opened);
 * - the sender's new udx stream id (32 bits; 0 in a confirmation or a refusal);
 * - in a request, the requester's own stream id (where a refusal goes); in an acceptance or a
 *   refusal, the requester's new udx stream id it answers; else 0 (32 bits);
 * - the bytes the sender received on the stream so far (64 bits).
 */
import { LinkInner } from './frames.js';

/** What a resume message is. */
export const LinkResumeKind = {
  /** Move the stream to a new udx stream pair: here is mine and what I received. */
  Request: 1,
  /** Accepted: here is my new udx stream and what I received. */
  Accept: 2,
  /** The receiver has no such stream (it was closed): the requester's stream ends with an error. */
  Refuse: 3,
  /** The sender received this many bytes: the receiver may forget what it kept up to there. */
  Confirm: 4,
} as const;

/** A decoded resume message. */
export interface LinkResumeMessage {
  readonly kind: number;
  readonly target: number;
  readonly raw: number;
  readonly echo: number;
  readonly received: number;
}

/** Bytes of a resume plaintext, inner type byte included. */
export const LINK_RESUME_BYTES = 22;

/** A resume plaintext, inner type byte included. */
export function encodeLinkResume(m: LinkResumeMessage): Buffer {
  const out = Buffer.alloc(LINK_RESUME_BYTES);
  out[0] = LinkInner.Resume;
  out[1] = m.kind;
  out.writeUInt32BE(m.target >>> 0, 2);
  out.writeUInt32BE(m.raw >>> 0, 6);
  out.writeUInt32BE(m.echo >>> 0, 10);
  out.writeBigUInt64BE(BigInt(m.received), 14);
  return out;
}

/** A resume message from its plaintext (inner type at index 0); undefined when cut short or of an unknown kind. */
export function decodeLinkResume(plain: Buffer): LinkResumeMessage | undefined {
  if (plain.length < LINK_RESUME_BYTES) return undefined;
  const kind = plain[1]!;
  if (kind < LinkResumeKind.Request || kind > LinkResumeKind.Confirm) return undefined;
  const received = plain.readBigUInt64BE(14);
  if (received > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { kind, target: plain.readUInt32BE(2), raw: plain.readUInt32BE(6), echo: plain.readUInt32BE(10), received: Number(received) };
}
