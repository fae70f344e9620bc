import { z } from 'zod';
import { DecodeError, EncodeError } from '../errors.js';
import { ChallengeNonce, Ed25519PublicKeyBase64url, Ed25519SignatureBase64url } from '../signalling/fields.js';
import { PeerId } from '../signalling/peer-id.js';

/**
 * Control messages of the expose protocol: JSON objects on the first stream the client opens,
 * each framed as a 32-bit big-endian length and that many bytes of UTF-8 (at most 64 KiB).
 *
 *     server: challenge -> client: hello -> server: welcome | error (then the server closes)
 *     client: expose {id} -> server: exposed {ref} | refused {ref}
 *     client: unexpose;  server: revoked (a port taken away, e.g. on shutdown)
 */
export const EXPOSE_PROTOCOL = 'nat-expose';
export const EXPOSE_VERSION = 1;
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024;
/** The most allow or deny prefixes a client may attach to one port. */
export const MAX_EXPOSE_CIDRS = 32;

const v = z.literal(EXPOSE_VERSION);
const Port = z.number().int().min(1).max(65535);
const Cidr = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/);
export const ExposeTransport = z.enum(['tcp', 'udp']);
export type ExposeTransport = z.infer<typeof ExposeTransport>;

/**
 * Why a request was refused; `unauthorized` and `bad-message` also end the connection. `taken`:
 * another user of the server holds the port; `port-in-use`: no user holds it but another program
 * on the server does (EADDRINUSE); `port-denied`: the server may not bind it (EACCES, EPERM);
 * `unavailable`: no free port in the range, or another bind error (named in the message).
 */
export const ExposeRefusal = z.enum([
  'taken',
  'port-in-use',
  'port-denied',
  'out-of-range',
  'over-quota',
  'forbidden',
  'unavailable',
  'bad-message',
  'unauthorized',
]);
export type ExposeRefusal = z.infer<typeof ExposeRefusal>;

export const ExposeChallenge = z.object({ v, type: z.literal('challenge'), nonce: ChallengeNonce, realm: z.string().min(1).max(127) }).strict();

/** Password proof: HMAC-SHA256 over {@link exposeSigningPayload} keyed with the long-term key (RFC 8489 section 9.2.2, SHA-256). */
export const PasswordAuth = z
  .object({ method: z.literal('password'), username: z.string().min(1).max(513), mac: z.string().regex(/^[A-Za-z0-9_-]{43}$/) })
  .strict();
/** Peer-key proof: an Ed25519 signature over {@link exposeSigningPayload} with the peer id as name. */
export const PeerKeyAuth = z.object({ method: z.literal('peer-key'), publicKey: Ed25519PublicKeyBase64url, signature: Ed25519SignatureBase64url }).strict();
export const ExposeHello = z.object({ v, type: z.literal('hello'), auth: z.discriminatedUnion('method', [PasswordAuth, PeerKeyAuth]) }).strict();
export const ExposeWelcome = z.object({ v, type: z.literal('welcome'), user: z.string().max(513), publicIp: z.string().max(64) }).strict();
export const ExposeRequest = z
  .object({
    v,
    type: z.literal('expose'),
    id: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
    transport: ExposeTransport,
    /** A specific public port; absent = any free one in the server's range. */
    port: Port.optional(),
    /** Only these source prefixes may connect (default: any). */
    allow: z.array(Cidr).max(MAX_EXPOSE_CIDRS).optional(),
    /** These source prefixes may not connect. */
    deny: z.array(Cidr).max(MAX_EXPOSE_CIDRS).optional(),
    /**
     * Advertise this peer key as the port's owner ({@link ExposeOwnerAnswer}): the key and an
     * Ed25519 signature over {@link exposeAdvertisePayload}. Default: the owner is not told.
     */
    advertise: z.object({ publicKey: Ed25519PublicKeyBase64url, signature: Ed25519SignatureBase64url }).strict().optional(),
  })
  .strict();
export const ExposeGranted = z
  .object({ v, type: z.literal('exposed'), ref: z.number().int(), transport: ExposeTransport, port: Port, address: z.string().max(80) })
  .strict();
export const ExposeRefused = z.object({ v, type: z.literal('refused'), ref: z.number().int(), code: ExposeRefusal, message: z.string().max(512) }).strict();
export const ExposeRelease = z.object({ v, type: z.literal('unexpose'), transport: ExposeTransport, port: Port }).strict();
export const ExposeRevoked = z.object({ v, type: z.literal('revoked'), transport: ExposeTransport, port: Port, reason: z.string().max(512) }).strict();
export const ExposeErrorMessage = z.object({ v, type: z.literal('error'), code: ExposeRefusal, message: z.string().max(512) }).strict();

export const ExposeControlMessage = z.discriminatedUnion('type', [
  ExposeChallenge,
  ExposeHello,
  ExposeWelcome,
  ExposeRequest,
  ExposeGranted,
  ExposeRefused,
  ExposeRelease,
  ExposeRevoked,
  ExposeErrorMessage,
]);
export type ExposeControlMessage = z.infer<typeof ExposeControlMessage>;
export type ExposeRequest = z.infer<typeof ExposeRequest>;

/** Frames a control message (validated against the schema). Throws EncodeError when it is not valid. */
export function encodeControlMessage(message: ExposeControlMessage): Uint8Array {
  const r = ExposeControlMessage.safeParse(message);
  if (!r.success) throw new EncodeError('BAD_VALUE', `expose control message: ${r.error.issues[0]?.message ?? 'invalid'}`);
  const json = Buffer.from(JSON.stringify(r.data), 'utf8');
  if (json.length > MAX_CONTROL_MESSAGE_BYTES) throw new EncodeError('BAD_VALUE', 'expose control message too large');
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

/**
 * Sans-I/O reader of framed control messages. `push` returns the complete messages; throws
 * DecodeError for a frame over 64 KiB (checked before buffering it), bad JSON or a message the
 * schema refuses. Chunks are gathered until a whole frame is there and joined once, so a frame
 * trickled one byte per chunk costs linear time, not quadratic.
 */
export class ControlMessageReader {
  #buf: Buffer = Buffer.alloc(0);
  /** Chunks not yet joined to `#buf` (copies: the caller may reuse its buffers). */
  #pending: Buffer[] = [];
  #pendingLength = 0;
  /** Bytes `#buf` must hold before the next frame can be looked at: its header, then the whole frame. */
  #need = 4;

  push(chunk: Uint8Array): ExposeControlMessage[] {
    this.#pending.push(Buffer.from(chunk));
    this.#pendingLength += chunk.length;
    if (this.#buf.length + this.#pendingLength < this.#need) return [];
    this.#buf = Buffer.concat([this.#buf, ...this.#pending]);
    this.#pending = [];
    this.#pendingLength = 0;
    const out: ExposeControlMessage[] = [];
    this.#need = 4;
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_CONTROL_MESSAGE_BYTES) throw new DecodeError('BAD_LENGTH', `expose control message of ${len} bytes (at most ${MAX_CONTROL_MESSAGE_BYTES})`);
      if (this.#buf.length < 4 + len) {
        this.#need = 4 + len;
        break;
      }
      const text = this.#buf.subarray(4, 4 + len).toString('utf8');
      this.#buf = this.#buf.subarray(4 + len);
      out.push(decodeControlText(text));
    }
    return out;
  }
}

function decodeControlText(text: string): ExposeControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DecodeError('BAD_SYNTAX', 'expose control message is not JSON');
  }
  const r = ExposeControlMessage.safeParse(value);
  if (!r.success)
    throw new DecodeError(
      'BAD_ATTRIBUTE',
      `expose control message: ${r.error.issues
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')
        .slice(0, 300)}`,
    );
  return r.data;
}

/**
 * The path, under the expose endpoint, of the owner lookup:
 * `GET /expose/owner?port=P[&transport=tcp|udp][&host=IP]` (`host`: the public address of another
 * node of the server's cluster; default the server's own).
 */
export const EXPOSE_OWNER_PATH = 'owner';

/**
 * The answer of the owner lookup (plain HTTP GET, JSON): which peer id owns public port `port`,
 * when its owner advertised it (200), or `not-advertised` (404: no such port, or an owner that
 * did not opt in; the two are not told apart), or `unavailable` (503: asked about another node's
 * address, the state the nodes share did not answer).
 */
export const ExposeOwnerAnswer = z.union([
  z.object({ v, transport: ExposeTransport, port: Port, address: z.string().max(80), peer: PeerId }).strict(),
  z.object({ v, error: z.enum(['not-advertised', 'bad-request', 'unavailable']), message: z.string().max(512) }).strict(),
]);
export type ExposeOwnerAnswer = z.infer<typeof ExposeOwnerAnswer>;

/** The domain-separation prefix of the proof that an advertised peer key is the requester's. */
export const EXPOSE_ADVERTISE_CONTEXT = 'nat-expose-advertise-v1:';

/**
 * The bytes an advertised key signs: UTF-8("nat-expose-advertise-v1:" + nonce + ":" + peer id),
 * the nonce being the control connection's challenge (so a proof cannot be replayed on another
 * connection, nor as an authentication proof).
 */
export function exposeAdvertisePayload(nonce: string, peerId: string): Uint8Array {
  if (!ChallengeNonce.safeParse(nonce).success) throw new EncodeError('BAD_VALUE', 'exposeAdvertisePayload: nonce is not a challenge nonce');
  return new TextEncoder().encode(`${EXPOSE_ADVERTISE_CONTEXT}${nonce}:${peerId}`);
}

/** The domain-separation prefix of expose authentication proofs. */
export const EXPOSE_SIGNING_CONTEXT = 'nat-expose-v1:';

/**
 * The bytes a client proves knowledge of its secret over: UTF-8("nat-expose-v1:" + nonce + ":" +
 * name), `name` being the username (password) or the peer id (peer key). The prefix keeps a
 * rendezvous `register` signature from being replayed here and the other way round.
 */
export function exposeSigningPayload(nonce: string, name: string): Uint8Array {
  if (!ChallengeNonce.safeParse(nonce).success) throw new EncodeError('BAD_VALUE', 'exposeSigningPayload: nonce is not a challenge nonce');
  return new TextEncoder().encode(`${EXPOSE_SIGNING_CONTEXT}${nonce}:${name}`);
}
