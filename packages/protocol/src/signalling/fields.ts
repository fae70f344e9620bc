import { z } from 'zod';

// Field schemas shared by the signalling messages. Every string and array has an upper bound,
// so a valid message is small whatever a hostile peer sends.

/** Longest client-chosen message `id` (and `ref`), in characters. */
export const MAX_MESSAGE_ID_LENGTH = 64;

/**
 * A correlation id chosen by the sender of a message: 1 to 64 visible ASCII characters
 * (0x21-0x7E). A reply (`registered`, `pong`, `error`) names it in its `ref`.
 */
export const SignallingMessageId = z
  .string()
  .min(1)
  .max(MAX_MESSAGE_ID_LENGTH)
  .regex(/^[\x21-\x7e]+$/, 'not visible ASCII');

/**
 * A signalling session id: 8 to 64 characters of the base64url alphabet, chosen by the peer
 * that sends the `offer` (128 random bits, 22 characters, is the recommended choice). It names
 * one offer/answer exchange and the candidates that trickle after it.
 */
export const SignallingSessionId = z
  .string()
  .min(8)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, 'not base64url characters');

/**
 * The server's challenge nonce: base64url without padding of 16 to 96 random bytes
 * (22 to 128 characters). A server sends 32 bytes (43 characters). The alphabet has no `:`,
 * which keeps the signed payload of `register` unambiguous.
 */
export const ChallengeNonce = z
  .string()
  .min(22)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'not base64url characters');

/**
 * A 32-byte raw Ed25519 public key, base64url without padding: 43 characters, canonical (the
 * 2 spare bits of the last character are zero, so one key has exactly one spelling).
 */
export const Ed25519PublicKeyBase64url = z
  .string()
  .length(43)
  .regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'not 32 bytes of canonical base64url');

/**
 * A 64-byte Ed25519 signature, base64url without padding: 86 characters, canonical (the 4
 * spare bits of the last character are zero).
 */
export const Ed25519SignatureBase64url = z
  .string()
  .length(86)
  .regex(/^[A-Za-z0-9_-]{85}[AQgw]$/, 'not 64 bytes of canonical base64url');

/**
 * An ICE username fragment: 4 to 256 ice-chars (ALPHA / DIGIT / "+" / "/"). RFC 8445 section
 * 5.3 asks for at least 24 random bits, which is where the minimum of 4 characters comes from;
 * the grammar is RFC 8839 section 5.4.
 */
export const IceUfrag = z
  .string()
  .min(4)
  .max(256)
  .regex(/^[A-Za-z0-9+/]+$/, 'not ice-chars (ALPHA / DIGIT / "+" / "/")');

/**
 * An ICE password: 22 to 256 ice-chars. RFC 8445 section 5.3 asks for at least 128 random
 * bits, hence 22 characters of 6 bits; the grammar is RFC 8839 section 5.4.
 */
export const IcePwd = z
  .string()
  .min(22)
  .max(256)
  .regex(/^[A-Za-z0-9+/]+$/, 'not ice-chars (ALPHA / DIGIT / "+" / "/")');

/** Longest candidate line, in characters. Real ones are under 200. */
export const MAX_CANDIDATE_LINE_LENGTH = 512;

/** Most candidate lines one `offer` or `answer` may carry. */
export const MAX_CANDIDATES_PER_DESCRIPTION = 64;

/**
 * One ICE candidate as the value of the SDP `candidate` attribute (RFC 8839 section 5.1), the
 * form WebRTC's `RTCIceCandidate.candidate` uses: it starts with `candidate:`. Only that prefix,
 * the length and the characters are checked here (printable ASCII without `"` and `\`: no
 * CR/LF to smuggle other SDP lines, and nothing JSON must escape); the ICE module parses the rest.
 */
export const IceCandidateLine = z
  .string()
  .max(MAX_CANDIDATE_LINE_LENGTH)
  .regex(/^candidate:[\x20\x21\x23-\x5b\x5d-\x7e]+$/, 'not a candidate line ("candidate:" then printable ASCII)');

/**
 * A STUN or TURN server URI (RFC 7064 `stun:`/`stuns:`, RFC 7065 `turn:`/`turns:`), at most
 * 256 visible ASCII characters without `"` and `\`. The scheme is checked, the rest is left to
 * the client.
 */
export const IceServerUrl = z
  .string()
  .max(256)
  .regex(/^(stun|stuns|turn|turns):[\x21\x23-\x5b\x5d-\x7e]+$/, 'not a stun:, stuns:, turn: or turns: URI');

/**
 * One STUN/TURN server, shaped like WebRTC's `RTCIceServer`: `urls` is one URI or a list of 1
 * to 8; `username` and `credential` are the TURN long-term credential (at most 512 characters:
 * a STUN USERNAME is below 513 bytes, RFC 8489 section 14.3).
 */
export const SignallingIceServer = z.strictObject({
  urls: z.union([IceServerUrl, z.array(IceServerUrl).min(1).max(8)]),
  username: z.string().max(512).optional(),
  credential: z.string().max(512).optional(),
});

/** One STUN/TURN server offered by the rendezvous server. */
export type SignallingIceServer = z.infer<typeof SignallingIceServer>;

/** Most ICE servers one `registered` message may list. */
export const MAX_ICE_SERVERS = 4;

/** Longest credential lifetime a `registered` message may announce: 7 days, in seconds. */
export const MAX_ICE_SERVERS_TTL = 7 * 24 * 3600;

/** Most entries an `app` payload may hold. */
export const MAX_APP_ENTRIES = 16;

const AppKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'not an app key ([A-Za-z0-9._-], 1-64)');

const AppValue = z
  .string()
  .max(1024)
  .regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/, 'not printable ASCII without " and \\');

const AppRecord = z.record(AppKey, AppValue).refine((record) => Object.keys(record).length <= MAX_APP_ENTRIES, {
  message: `more than ${MAX_APP_ENTRIES} entries`,
});

/**
 * The opaque payload for the link layer that rides on `offer` and `answer` (for example
 * `{ "noise": "<static key fingerprint>" }`): a flat map of at most 16 entries, keys of 1 to 64
 * characters `[A-Za-z0-9._-]` starting with a letter or digit, values of at most 1024
 * printable ASCII characters without `"` and `\`. Binary goes base64url-encoded. The server
 * relays it untouched. A `__proto__` key (which `JSON.parse` makes an own key, and which a zod
 * record would silently drop) is refused before the record is read.
 */
export const AppPayload = z
  .custom<unknown>((raw) => !(typeof raw === 'object' && raw !== null && Object.hasOwn(raw, '__proto__')), 'not an app key: "__proto__"')
  .pipe(AppRecord);

/** The link layer's payload on `offer` and `answer`. */
export type AppPayload = z.infer<typeof AppPayload>;

/** Why a session ended, for people: at most 256 characters. */
export const ByeReason = z.string().max(256);

/** The human-readable text of an `error`: 1 to 512 characters. */
export const ErrorText = z.string().min(1).max(512);
