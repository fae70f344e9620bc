import {
  Attr,
  DecodeError,
  MAGIC_COOKIE,
  StunClass,
  StunMethod,
  type AttributeEntry,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  methodOfType,
  sourceKey,
  verifyFingerprint,
} from '@nat/protocol';
import { type ServerEventSink, noEvents } from '../events.js';
import { type EndpointSet, type SocketRole, changeRole, roleAddress } from './endpoints.js';
import { boundedErrorAttributes } from './error-answer.js';
import { DEFAULT_RATE_LIMIT, type RateLimit, RateLimiter } from './rate-limiter.js';

/** What the responder decided to send for one request: bytes, which socket, to whom. */
export interface StunReply {
  readonly bytes: Uint8Array;
  /** The socket to send from (UDP); for streams, always the connection the request came on. */
  readonly via: SocketRole;
  readonly to: TransportAddress;
}

/** Counters a server exposes (and a test reads) to see what happened to hostile input. */
export interface StunResponderStats {
  /** Binding success responses sent. */
  answered: number;
  /** Error responses sent (400, 420). */
  errors: number;
  /** Datagrams dropped as not STUN, bad FINGERPRINT, or not a request. */
  dropped: number;
  /** Requests dropped by the per-source rate limit. */
  rateLimited: number;
  /** Binding indications (keep-alives) received. */
  indications: number;
}

/** Options of the STUN responder core. */
export interface StunResponderInit {
  /** The server's addresses in this family. */
  readonly endpoints: EndpointSet;
  /**
   * The same addresses as clients see them (1:1 NAT: public IPs, same ports), told in
   * RESPONSE-ORIGIN, OTHER-ADDRESS and their RFC 3489 forms. Default `endpoints`.
   */
  readonly advertised?: EndpointSet;
  /** SOFTWARE to include when the amplification budget allows. Default none. */
  readonly software?: string;
  /** Per-source rate limit. Default 500 requests/s with bursts of 1000; `{ perSecond: 0 }` disables. */
  readonly rateLimit?: RateLimit;
  /** Where 'rate-limited' events go (once per source each time it goes over the limit). Default {@link noEvents}. */
  readonly events?: ServerEventSink;
}

// The attributes a plain STUN server understands (RFC 8489 section 7.3.1: anything else that is
// comprehension-required in a request is answered with 420).
const UNDERSTOOD = new Set<number>([
  Attr.MappedAddress.type,
  Attr.ResponseAddress.type,
  Attr.ChangeRequest.type,
  Attr.Username.type,
  Attr.MessageIntegrity.type,
  Attr.MessageIntegritySha256.type,
  Attr.Userhash.type,
  Attr.Realm.type,
  Attr.Nonce.type,
  Attr.PasswordAlgorithm.type,
  Attr.XorMappedAddress.type,
  Attr.Padding.type,
  Attr.ResponsePort.type,
  Attr.Priority.type,
  Attr.UseCandidate.type,
]);
const understood = (t: number): boolean => UNDERSTOOD.has(t);

/**
 * The STUN Binding responder, sans I/O: feed it a request, the address it came from and the
 * socket it arrived on; it returns the reply to send (or nothing). Implements RFC 8489 Binding,
 * RFC 5780 behaviour discovery (CHANGE-REQUEST, RESPONSE-ORIGIN, OTHER-ADDRESS, RESPONSE-PORT,
 * PADDING) and classic RFC 3489 answers (MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS) for
 * requests without the magic cookie.
 *
 * Anti-amplification: over UDP a response is never larger than its request, except for the
 * attributes the RFCs require (XOR-MAPPED-ADDRESS or MAPPED-ADDRESS, and RFC 5780's
 * RESPONSE-ORIGIN and OTHER-ADDRESS). Optional attributes (FINGERPRINT, MAPPED-ADDRESS beside
 * XOR-MAPPED-ADDRESS, SOFTWARE) are added in that order only while the response stays within the
 * request's size; a client that wants them pads its request with PADDING. RESPONSE-ADDRESS (RFC
 * 3489's "send the answer elsewhere") is ignored: RFC 5780 section 7.5 replaced it with
 * RESPONSE-PORT, which only changes the port at the requester's own IP.
 */
export class StunResponder {
  readonly endpoints: EndpointSet;
  /** What RESPONSE-ORIGIN and OTHER-ADDRESS tell: `advertised`, or `endpoints`. */
  readonly advertised: EndpointSet;
  readonly stats: StunResponderStats = { answered: 0, errors: 0, dropped: 0, rateLimited: 0, indications: 0 };
  readonly #software: string | undefined;
  readonly #limiter: RateLimiter;
  readonly #events: ServerEventSink;

  constructor(init: StunResponderInit) {
    this.endpoints = init.endpoints;
    this.advertised = init.advertised ?? init.endpoints;
    this.#events = init.events ?? noEvents;
    this.#software = init.software;
    this.#limiter = new RateLimiter(init.rateLimit ?? DEFAULT_RATE_LIMIT);
  }

  /** Sources currently tracked by the rate limiter (bounded). */
  get trackedSources(): number {
    return this.#limiter.size;
  }

  /** Handles one UDP datagram that arrived on the socket of `role`. */
  handleDatagram(bytes: Uint8Array, from: TransportAddress, role: SocketRole, now: number): StunReply | undefined {
    return this.#handle(bytes, from, role, now, false);
  }

  /**
   * Handles one STUN message cut from a TCP or TLS stream that arrived on the listener of `role`.
   * CHANGE-REQUEST and RESPONSE-PORT are UDP-only (RFC 5780 sections 7.2 and 7.5) and answered 400.
   */
  handleStreamMessage(bytes: Uint8Array, from: TransportAddress, role: SocketRole, now: number): Uint8Array | undefined {
    return this.#handle(bytes, from, role, now, true)?.bytes;
  }

  #handle(bytes: Uint8Array, from: TransportAddress, role: SocketRole, now: number, stream: boolean): StunReply | undefined {
    let request: StunMessage;
    try {
      request = decodeStunMessage(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return this.#malformed(bytes, e, from, role, now);
    }
    return this.handleMessage(request, from, role, now, stream);
  }

  /**
   * Handles an already decoded message (a server that also runs TURN decodes once and hands
   * Binding messages here). `stream` is true for TCP/TLS.
   */
  handleMessage(request: StunMessage, from: TransportAddress, role: SocketRole, now: number, stream: boolean): StunReply | undefined {
    const bytes = request.bytes;
    if (request.class !== StunClass.Request) {
      if (request.class === StunClass.Indication && request.method === StunMethod.Binding) this.stats.indications++;
      else this.stats.dropped++;
      return undefined;
    }
    // RFC 8489 section 7.3: a FINGERPRINT that does not match means the message is not STUN.
    if (request.fingerprintOffset >= 0 && !verifyFingerprint(request)) {
      this.stats.dropped++;
      return undefined;
    }
    if (!this.#limiter.allow(from.address, now)) {
      this.stats.rateLimited++;
      this.#limited(from);
      return undefined;
    }
    if (request.method !== StunMethod.Binding) {
      return this.#error(request, 400, 'Bad Request: this server answers Binding only', [], from, role, stream);
    }
    const unknown = request.unknownComprehensionRequired(understood);
    if (unknown.length > 0) return this.#error(request, 420, undefined, unknown, from, role, stream);

    let changeIp = false;
    let changePort = false;
    let responsePort: number | undefined;
    try {
      const change = request.get(Attr.ChangeRequest);
      if (change) ({ changeIp, changePort } = change);
      responsePort = request.get(Attr.ResponsePort);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return this.#error(request, 400, `Bad Request: ${e.message}`, [], from, role, stream);
    }
    if (stream && (changeIp || changePort || responsePort !== undefined)) {
      return this.#error(request, 400, 'Bad Request: CHANGE-REQUEST and RESPONSE-PORT are UDP-only', [], from, role, stream);
    }
    const via = changeRole(role, changeIp, changePort);
    const origin = roleAddress(this.advertised, via);
    if (origin === undefined) {
      // RFC 5780 section 6.1: a server without the alternate address it would need answers 420,
      // listing CHANGE-REQUEST as not understood.
      return this.#error(request, 420, undefined, [Attr.ChangeRequest.type], from, role, stream);
    }
    if (responsePort === 0) {
      return this.#error(request, 400, 'Bad Request: RESPONSE-PORT 0', [], from, role, stream);
    }
    const to = responsePort === undefined ? from : { family: from.family, address: from.address, port: responsePort };
    const other = roleAddress(this.advertised, changeRole(role, true, true));

    // Attribute sizes: 4-byte header plus 8 (IPv4) or 20 (IPv6) bytes of address.
    const a = from.family === 'IPv6' ? 24 : 12;
    const attributes: AttributeEntry[] = [];
    let size = 20;
    if (request.classic) {
      // RFC 3489 section 11.2: MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS are mandatory.
      attributes.push(attr(Attr.MappedAddress, from), attr(Attr.SourceAddress, origin));
      if (other) attributes.push(attr(Attr.ChangedAddress, other));
    } else {
      attributes.push(attr(Attr.XorMappedAddress, from), attr(Attr.ResponseOrigin, origin));
      if (other) attributes.push(attr(Attr.OtherAddress, other));
    }
    size += attributes.length * a;
    const budget = stream ? Infinity : bytes.length;
    const fingerprint = !request.classic && request.fingerprintOffset >= 0 && size + 8 <= budget;
    if (fingerprint) size += 8;
    // RFC 5780 section 4.1 (ALG detection) compares MAPPED-ADDRESS with XOR-MAPPED-ADDRESS.
    if (!request.classic && size + a <= budget) {
      attributes.push(attr(Attr.MappedAddress, from));
      size += a;
    }
    if (this.#software !== undefined) {
      const s = 4 + ((Buffer.byteLength(this.#software) + 3) & ~3);
      if (size + s <= budget) attributes.push(attr(Attr.Software, this.#software));
    }
    this.stats.answered++;
    return {
      bytes: encodeStunMessage(
        { method: StunMethod.Binding, class: StunClass.SuccessResponse, transactionId: request.transactionId, attributes },
        { fingerprint },
      ),
      via,
      to,
    };
  }

  /** Counts a datagram dropped before it reached the responder (not STUN, by its first byte). */
  dropped(): void {
    this.stats.dropped++;
  }

  /** A source went over the request limit: reported once per episode (not per packet). */
  #limited(from: TransportAddress): void {
    if (this.#events !== noEvents && this.#limiter.firstRefusal) {
      this.#events({ type: 'rate-limited', service: 'stun', source: sourceKey(from.address), what: 'requests' });
    }
  }

  /**
   * A request whose header is sound but whose attributes are not gets 400 (RFC 8489 section
   * 6.3.1); anything else that fails to decode is not STUN and is dropped without an answer.
   */
  #malformed(bytes: Uint8Array, e: DecodeError, from: TransportAddress, role: SocketRole, now: number): StunReply | undefined {
    const n = bytes.length;
    const soundHeader =
      n >= 20 &&
      (bytes[0]! & 0xc0) === 0 &&
      (bytes[0]! & 0x01) === 0 &&
      (bytes[1]! & 0x10) === 0 && // class bits 00: a request
      20 + ((bytes[2]! << 8) | bytes[3]!) === n &&
      (bytes[3]! & 3) === 0 &&
      ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0 === MAGIC_COOKIE;
    if (!soundHeader) {
      this.stats.dropped++;
      return undefined;
    }
    if (!this.#limiter.allow(from.address, now)) {
      this.stats.dropped++;
      this.#limited(from);
      return undefined;
    }
    this.stats.errors++;
    const method = methodOfType(((bytes[0]! << 8) | bytes[1]!) & 0x3fff);
    return {
      bytes: encodeStunMessage({
        method,
        class: StunClass.ErrorResponse,
        transactionId: bytes.slice(8, 20),
        attributes: boundedErrorAttributes(400, `Bad Request: ${e.code.toLowerCase()}`, [], n),
      }),
      via: role,
      to: from,
    };
  }

  #error(
    request: StunMessage,
    code: number,
    reason: string | undefined,
    unknown: number[],
    from: TransportAddress,
    role: SocketRole,
    stream: boolean,
  ): StunReply {
    this.stats.errors++;
    // The RFC requires ERROR-CODE (and UNKNOWN-ATTRIBUTES with 420); over UDP the reason phrase and
    // the list are cut where they would make the answer larger than the request (error-answer.ts).
    const extra = unknown.length > 0 ? [attr(Attr.UnknownAttributes, unknown)] : [];
    const attributes = boundedErrorAttributes(code, reason, extra, stream ? Infinity : request.bytes.length);
    return {
      bytes: encodeStunMessage({ method: request.method, class: StunClass.ErrorResponse, transactionId: request.transactionId, attributes }),
      via: role,
      to: from,
    };
  }
}
