import { z } from 'zod';
import {
  AppPayload,
  ByeReason,
  ChallengeNonce,
  Ed25519PublicKeyBase64url,
  Ed25519SignatureBase64url,
  ErrorText,
  IceCandidateLine,
  IcePwd,
  IceUfrag,
  MAX_CANDIDATES_PER_DESCRIPTION,
  MAX_ICE_SERVERS,
  MAX_ICE_SERVERS_TTL,
  SignallingIceServer,
  SignallingMessageId,
  SignallingSessionId,
} from './fields.js';
import { PeerId } from './peer-id.js';
import { SIGNALLING_VERSION } from './version.js';

// The rendezvous signalling messages, version 1: JSON objects over a WebSocket.
//
// Every message has `v: 1`, a `type` and an optional sender-chosen `id`. Objects are strict:
// an unknown key is an error, not silently dropped. This is a security boundary, and a message
// the server does not fully understand must not be relayed; new fields come with a new `v`.
//
// Directions: "client -> server" and "server -> client" are hop-by-hop; "relayed" messages are
// sent by one peer to the server, which checks that `from` is the id the sending connection
// registered (answering `unauthorized` otherwise) and forwards the message unchanged to `to`.

/**
 * A strict message object whose keys come in wire order: `v`, `type`, `id`, then `fields`.
 */
function message<const T extends string, const S extends z.ZodRawShape>(type: T, fields: S) {
  return z.strictObject({
    v: z.literal(SIGNALLING_VERSION),
    type: z.literal(type),
    id: SignallingMessageId.optional(),
    ...fields,
  });
}

const relayEnvelope = {
  /** The sending peer; the server checks it against the sending connection's registration. */
  from: PeerId,
  /** The receiving peer. */
  to: PeerId,
  /** The offer/answer exchange this message belongs to. */
  sessionId: SignallingSessionId,
};

/**
 * `challenge`, server -> client: the first message on a new connection. The client proves it
 * holds the private key of its peer id by signing {@link registerSigningPayload} over `nonce`.
 */
export const ChallengeMessage = message('challenge', {
  nonce: ChallengeNonce,
});
/** See {@link ChallengeMessage}. */
export type ChallengeMessage = z.infer<typeof ChallengeMessage>;

/**
 * `register`, client -> server: the answer to `challenge`. `publicKey` is the 32-byte raw
 * Ed25519 key, `signature` the 64-byte Ed25519 signature (RFC 8032) of
 * `registerSigningPayload(nonce, peerIdFromPublicKey(publicKey))`. The server derives the peer
 * id itself; it is not sent.
 */
export const RegisterMessage = message('register', {
  publicKey: Ed25519PublicKeyBase64url,
  signature: Ed25519SignatureBase64url,
});
/** See {@link RegisterMessage}. */
export type RegisterMessage = z.infer<typeof RegisterMessage>;

/**
 * `registered`, server -> client: the signature was good. `peerId` is the id the connection is
 * now known by; `iceServers` are STUN/TURN servers the peer may use, and `ttl` the seconds for
 * which their credentials stay valid (as in the TURN REST API draft). `ref` is the `id` of the
 * `register` it answers.
 */
export const RegisteredMessage = message('registered', {
  ref: SignallingMessageId.optional(),
  peerId: PeerId,
  iceServers: z.array(SignallingIceServer).max(MAX_ICE_SERVERS).optional(),
  ttl: z.number().int().min(1).max(MAX_ICE_SERVERS_TTL).optional(),
});
/** See {@link RegisteredMessage}. */
export type RegisteredMessage = z.infer<typeof RegisteredMessage>;

const description = {
  ...relayEnvelope,
  /** RFC 8445 section 5.3 username fragment of the sender's ICE agent. */
  ufrag: IceUfrag,
  /** RFC 8445 section 5.3 password of the sender's ICE agent. */
  pwd: IcePwd,
  /** Candidates gathered so far; may be empty when they trickle (RFC 8838). */
  candidates: z.array(IceCandidateLine).max(MAX_CANDIDATES_PER_DESCRIPTION),
  /** Opaque to the server: what the link layer above ICE needs (a Noise/TLS fingerprint...). */
  app: AppPayload.optional(),
};

/**
 * `offer`, relayed: the initiating peer's ICE credentials and candidates, opening session
 * `sessionId` with peer `to`. The server answers `peer-offline` when `to` is not connected.
 */
export const OfferMessage = message('offer', description);
/** See {@link OfferMessage}. */
export type OfferMessage = z.infer<typeof OfferMessage>;

/** `answer`, relayed: the responding peer's ICE credentials and candidates for `sessionId`. */
export const AnswerMessage = message('answer', description);
/** See {@link AnswerMessage}. */
export type AnswerMessage = z.infer<typeof AnswerMessage>;

/** `candidate`, relayed: one more trickled candidate (RFC 8838) for `sessionId`. */
export const CandidateMessage = message('candidate', {
  ...relayEnvelope,
  candidate: IceCandidateLine,
});
/** See {@link CandidateMessage}. */
export type CandidateMessage = z.infer<typeof CandidateMessage>;

/**
 * `end-of-candidates`, relayed: the sender has gathered all its candidates for `sessionId`: the
 * end-of-candidates indication of trickle ICE (RFC 8838; `a=end-of-candidates` in SDP, RFC 8840).
 */
export const EndOfCandidatesMessage = message('end-of-candidates', relayEnvelope);
/** See {@link EndOfCandidatesMessage}. */
export type EndOfCandidatesMessage = z.infer<typeof EndOfCandidatesMessage>;

/** `bye`, relayed: the sender ended session `sessionId`, with an optional human `reason`. */
export const ByeMessage = message('bye', {
  ...relayEnvelope,
  reason: ByeReason.optional(),
});
/** See {@link ByeMessage}. */
export type ByeMessage = z.infer<typeof ByeMessage>;

/**
 * A service name a peer claims with {@link ClaimNameMessage}: a DNS label (RFC 1035 section
 * 2.3.1, lower case): 1 to 63 letters, digits and inner hyphens.
 */
export const ServiceName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'not a service name (1-63 lower-case letters, digits and inner hyphens)');
/** See {@link ServiceName}. */
export type ServiceName = z.infer<typeof ServiceName>;

/**
 * `claim-name`, client -> server (after `registered`): bind `name` to the sender's peer id, so
 * that others can find the peer by name. The first peer to claim a name owns it for as long as
 * the service keeps its names; a claim by another peer is answered `name-taken`, a repeated
 * claim by the owner is confirmed again. Answered with {@link NameMessage}.
 */
export const ClaimNameMessage = message('claim-name', {
  name: ServiceName,
});
/** See {@link ClaimNameMessage}. */
export type ClaimNameMessage = z.infer<typeof ClaimNameMessage>;

/**
 * `resolve-name`, client -> server (after `registered`): which peer owns `name`? Answered with
 * {@link NameMessage}, or `unknown-name`.
 */
export const ResolveNameMessage = message('resolve-name', {
  name: ServiceName,
});
/** See {@link ResolveNameMessage}. */
export type ResolveNameMessage = z.infer<typeof ResolveNameMessage>;

/**
 * `name`, server -> client: `name` belongs to `peerId` (the answer to `claim-name` and
 * `resolve-name`; `ref` is the request's `id`). `online` says whether that peer is connected now.
 */
export const NameMessage = message('name', {
  ref: SignallingMessageId.optional(),
  name: ServiceName,
  peerId: PeerId,
  online: z.boolean(),
});
/** See {@link NameMessage}. */
export type NameMessage = z.infer<typeof NameMessage>;

/** The stable error codes of an `error` message. */
export const SIGNALLING_ERROR_CODES = [
  /** the message was not JSON, too large, or did not match its schema */
  'bad-message',
  /** `to` names a peer id the server has never seen */
  'unknown-peer',
  /** `to` names a peer that is not connected now */
  'peer-offline',
  /** the sender sent too much, too fast */
  'rate-limited',
  /** not registered yet, a bad signature, or a `from` that is not the sender's */
  'unauthorized',
  /** the server failed; not the client's fault */
  'internal',
  /** `v` is a version the server does not speak */
  'version-unsupported',
  /** `claim-name`: another peer owns the name, or the sender holds too many names */
  'name-taken',
  /** `resolve-name`: nobody claimed the name */
  'unknown-name',
] as const;

/** A stable error code (see {@link SIGNALLING_ERROR_CODES}). */
export const SignallingErrorCode = z.enum(SIGNALLING_ERROR_CODES);
/** One of {@link SIGNALLING_ERROR_CODES}. */
export type SignallingErrorCode = z.infer<typeof SignallingErrorCode>;

/**
 * `error`, server -> client: `code` is for programs, `message` for people, `ref` the `id` of
 * the message it answers when that message had a readable one.
 */
export const ErrorMessage = message('error', {
  code: SignallingErrorCode,
  message: ErrorText,
  ref: SignallingMessageId.optional(),
});
/** See {@link ErrorMessage}. */
export type ErrorMessage = z.infer<typeof ErrorMessage>;

/** `ping`, either direction, hop-by-hop (never relayed): a heartbeat; answer with `pong`. */
export const PingMessage = message('ping', {});
/** See {@link PingMessage}. */
export type PingMessage = z.infer<typeof PingMessage>;

/** `pong`, either direction, hop-by-hop: the answer to `ping`; `ref` is the ping's `id`. */
export const PongMessage = message('pong', {
  ref: SignallingMessageId.optional(),
});
/** See {@link PongMessage}. */
export type PongMessage = z.infer<typeof PongMessage>;

/** Every version 1 signalling message, discriminated by `type`. */
export const SignallingMessage = z.discriminatedUnion('type', [
  ChallengeMessage,
  RegisterMessage,
  RegisteredMessage,
  OfferMessage,
  AnswerMessage,
  CandidateMessage,
  EndOfCandidatesMessage,
  ByeMessage,
  ErrorMessage,
  PingMessage,
  PongMessage,
  ClaimNameMessage,
  ResolveNameMessage,
  NameMessage,
]);
/** A version 1 signalling message. */
export type SignallingMessage = z.infer<typeof SignallingMessage>;

/** The `type` of a signalling message. */
export type SignallingMessageType = SignallingMessage['type'];

/** Who may send a message of a given type. */
export type SignallingDirection = 'client-to-server' | 'server-to-client' | 'relayed' | 'either';

/**
 * Who sends each message type: a server drops (answers `bad-message` to) a client's
 * `server-to-client` message, and forwards only `relayed` ones.
 */
export const SIGNALLING_DIRECTIONS: Readonly<Record<SignallingMessageType, SignallingDirection>> = {
  challenge: 'server-to-client',
  register: 'client-to-server',
  registered: 'server-to-client',
  offer: 'relayed',
  answer: 'relayed',
  candidate: 'relayed',
  'end-of-candidates': 'relayed',
  bye: 'relayed',
  error: 'server-to-client',
  ping: 'either',
  pong: 'either',
  'claim-name': 'client-to-server',
  'resolve-name': 'client-to-server',
  name: 'server-to-client',
};
