import {
  Attr,
  type AttributeEntry,
  type StunMessage,
  StunClass,
  StunMethod,
  type TransportAddress,
  attr,
  attributeName,
  encodeStunMessage,
} from '@nat/protocol';
import type { RequestOptions, StunResponse } from './driver/runner.js';
import { type StreamTransport, StunStreamSocket, type StunStreamSocketInit } from './driver/stream.js';
import { StunUdpSocket } from './driver/udp.js';
import { StunClientError } from './errors.js';
import { DEFAULT_STUNS_PORT, DEFAULT_STUN_PORT, type ServerAddress, isWildcard, resolveServer, routeSourceAddress } from './resolve.js';
import type { RetransmissionOptions } from './transaction/options.js';

/** What to put in a Binding request. */
export interface BindingRequestOptions {
  /** CHANGE-REQUEST "change IP" flag (RFC 5780 section 7.2): answer from the other IP address. */
  readonly changeIp?: boolean;
  /** CHANGE-REQUEST "change port" flag: answer from the other port. */
  readonly changePort?: boolean;
  /**
   * Send CHANGE-REQUEST even with both flags clear. Default false: a request without changes
   * carries no attribute at all, as the classic Test I does.
   */
  readonly alwaysSendChangeRequest?: boolean;
  /** RESPONSE-PORT (RFC 5780 section 7.5): the server sends the response to this port instead. */
  readonly responsePort?: number;
  /** Length in bytes of a PADDING attribute (RFC 5780 section 7.6); none when absent or 0. */
  readonly padding?: number;
  /**
   * A classic RFC 3489 request: a 16-byte transaction id and no magic cookie, for servers that
   * predate RFC 5389. Default false.
   */
  readonly classic?: boolean;
  /** Append FINGERPRINT (RFC 8489 section 14.7); ignored for classic requests. Default false. */
  readonly fingerprint?: boolean;
  /** A SOFTWARE attribute; ignored for classic requests. */
  readonly software?: string;
}

/** Encodes a Binding request with a fresh random transaction id. */
export function encodeBindingRequest(options: BindingRequestOptions = {}): Uint8Array {
  const attributes: AttributeEntry[] = [];
  const classic = options.classic === true;
  if (options.software !== undefined && !classic) attributes.push(attr(Attr.Software, options.software));
  if (options.changeIp || options.changePort || options.alwaysSendChangeRequest) {
    attributes.push(attr(Attr.ChangeRequest, { changeIp: options.changeIp === true, changePort: options.changePort === true }));
  }
  if (options.responsePort !== undefined) attributes.push(attr(Attr.ResponsePort, options.responsePort));
  if (options.padding) attributes.push(attr(Attr.Padding, new Uint8Array(options.padding)));
  return encodeStunMessage(
    { method: StunMethod.Binding, class: StunClass.Request, attributes, classic },
    { fingerprint: options.fingerprint === true && !classic },
  );
}

/** What a Binding response says, and how it arrived. */
export interface StunBindingResult {
  /** The server-reflexive address: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a classic server. */
  readonly mappedAddress: TransportAddress;
  /** XOR-MAPPED-ADDRESS, when present (never for a classic response, where it is not defined). */
  readonly xorMappedAddress: TransportAddress | undefined;
  /** MAPPED-ADDRESS, when present (compare with XOR-MAPPED-ADDRESS to spot an ALG). */
  readonly mappedAddressPlain: TransportAddress | undefined;
  /**
   * Where the server says it sent the response from: RESPONSE-ORIGIN (RFC 5780), or
   * SOURCE-ADDRESS from a classic RFC 3489 server.
   */
  readonly responseOrigin: TransportAddress | undefined;
  /** The server's alternate address: OTHER-ADDRESS (RFC 5780), or CHANGED-ADDRESS (RFC 3489). */
  readonly otherAddress: TransportAddress | undefined;
  /** Where the response actually came from (the datagram's source, or the stream's peer). */
  readonly sourceAddress: TransportAddress;
  /** The local address the request was sent from (with the route's source IP when bound to the wildcard). */
  readonly localAddress: TransportAddress;
  /** Time from the most recent transmission to the response, in milliseconds. */
  readonly rttMs: number;
  /** Requests sent, the first included. */
  readonly transmissions: number;
  /** The server's SOFTWARE attribute, when present. */
  readonly software: string | undefined;
  /** The response itself. */
  readonly response: StunMessage;
}

function badResponse(response: StunMessage, why: string, cause?: unknown): StunClientError {
  return new StunClientError('BAD_RESPONSE', `unusable Binding response: ${why}`, { response, ...(cause === undefined ? {} : { cause }) });
}

/**
 * Reads a Binding success response. Throws {@link StunClientError} `BAD_RESPONSE` when it has
 * no mapped address, an attribute that does not decode, or a comprehension-required attribute
 * this client does not know (RFC 8489 section 7.3.3: the transaction then fails).
 */
export function parseBindingResponse(r: StunResponse, localAddress: TransportAddress): StunBindingResult {
  const m = r.response;
  const unknown = m.unknownComprehensionRequired();
  if (unknown.length > 0) {
    throw badResponse(m, `unknown comprehension-required attribute(s) ${unknown.map(attributeName).join(', ')}`);
  }
  try {
    // XOR-MAPPED-ADDRESS is XORed with the magic cookie (RFC 8489 section 14.2); a classic
    // response has none, and what pre-RFC 5389 servers send under that type in reply to a
    // classic request is XORed with other bytes (Vovida stund uses the first transaction id
    // bytes for the port), so it is ignored there and MAPPED-ADDRESS is the answer.
    const xorMappedAddress = m.classic ? undefined : m.get(Attr.XorMappedAddress);
    const mappedAddressPlain = m.get(Attr.MappedAddress);
    const mappedAddress = xorMappedAddress ?? mappedAddressPlain;
    if (!mappedAddress) throw badResponse(m, 'neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS');
    return {
      mappedAddress,
      xorMappedAddress,
      mappedAddressPlain,
      responseOrigin: m.get(Attr.ResponseOrigin) ?? m.get(Attr.SourceAddress),
      otherAddress: m.get(Attr.OtherAddress) ?? m.get(Attr.ChangedAddress),
      sourceAddress: r.from,
      localAddress,
      rttMs: r.rttMs,
      transmissions: r.transmissions,
      // Classic servers (coturn, stund) pad SOFTWARE with NULs inside its length.
      software: m.get(Attr.Software)?.replace(/\0+$/, ''),
      response: m,
    };
  } catch (e) {
    if (e instanceof StunClientError) throw e;
    throw badResponse(m, (e as Error).message, e);
  }
}

/** Options of {@link stunBinding}. */
export interface StunBindingOptions extends BindingRequestOptions, RetransmissionOptions {
  /** `'udp'` (default), `'tcp'` or `'tls'`. */
  readonly transport?: 'udp' | StreamTransport;
  /**
   * Run the request on this UDP socket instead of a fresh one (it is not closed afterwards).
   * Discovery uses this to send several tests from one local port.
   */
  readonly socket?: StunUdpSocket;
  /** Local IP address to send from (fresh sockets only). */
  readonly localAddress?: string;
  /** Local port to send from (fresh UDP sockets only). Default 0: any. */
  readonly localPort?: number;
  /** TLS settings (CA, `servername`, `rejectUnauthorized`) for `transport: 'tls'`. */
  readonly tls?: StunStreamSocketInit['tls'];
  /** TCP/TLS connect timeout. Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /** Aborts the request: rejects with code `ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called each time a copy of the request is sent: 1 for the first, 2 for the first retransmission, ... */
  readonly onTransmit?: (transmission: number) => void;
}

function pickTiming(o: RetransmissionOptions): RetransmissionOptions {
  const out: { rto?: number; rc?: number; rm?: number; ti?: number } = {};
  if (o.rto !== undefined) out.rto = o.rto;
  if (o.rc !== undefined) out.rc = o.rc;
  if (o.rm !== undefined) out.rm = o.rm;
  if (o.ti !== undefined) out.ti = o.ti;
  return out;
}

/**
 * The local address to report for a socket: its bound address, or, when bound to the wildcard,
 * the IP the kernel routes from towards `server` (no packet is sent to find it).
 */
export async function effectiveLocalAddress(bound: TransportAddress, server: TransportAddress): Promise<TransportAddress> {
  if (!isWildcard(bound.address)) return bound;
  const ip = await routeSourceAddress(server);
  return ip ? { family: bound.family, address: ip, port: bound.port } : bound;
}

/**
 * Sends one Binding request to a STUN server and returns what it says: the mapped
 * (server-reflexive) address and the rest of {@link StunBindingResult}.
 *
 * Over UDP the request is retransmitted per RFC 8489 section 6.2.1 (RTO 500 ms doubling,
 * Rc 7, Rm 16: up to 39.5 s without an answer; set `rto`, `rc`, `rm` to shorten it); over
 * TCP and TLS it is sent once and fails after Ti (39.5 s, `ti`).
 *
 * Rejects with {@link StunClientError}: `TIMEOUT`, `ABORTED`, `ERROR_RESPONSE`, `BAD_RESPONSE`,
 * `SOCKET`, `BAD_ADDRESS`.
 */
export async function stunBinding(server: ServerAddress, options: StunBindingOptions = {}): Promise<StunBindingResult> {
  const transport = options.transport ?? 'udp';
  const family = options.socket?.localAddress.family;
  const { address: dest, hostname } = await resolveServer(server, {
    defaultPort: transport === 'tls' ? DEFAULT_STUNS_PORT : DEFAULT_STUN_PORT,
    ...(family ? { family } : {}),
  });
  const request = encodeBindingRequest(options);
  const requestOptions: RequestOptions = {
    ...pickTiming(options),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onTransmit ? { onTransmit: options.onTransmit } : {}),
  };

  if (transport !== 'udp') {
    const conn = await StunStreamSocket.connect(dest, {
      transport,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      tls: { ...(hostname ? { servername: hostname } : {}), ...options.tls },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    try {
      const r = await conn.request(request, requestOptions);
      return parseBindingResponse(r, conn.localAddress);
    } finally {
      await conn.close();
    }
  }

  const own = options.socket === undefined;
  const socket =
    options.socket ??
    (await StunUdpSocket.open({
      family: dest.family,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(options.localPort !== undefined ? { localPort: options.localPort } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    }));
  try {
    const [r, local] = await Promise.all([socket.request(request, dest, requestOptions), effectiveLocalAddress(socket.localAddress, dest)]);
    return parseBindingResponse(r, local);
  } finally {
    if (own) await socket.close();
  }
}
