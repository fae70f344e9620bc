import { DecodeError, EncodeError } from '../errors.js';
import { type TransportAddress, bytesToIp, ipFamily, ipToBytes } from '../address.js';

/**
 * Outbound connections through the expose server (an exposed user's connections that leave from
 * the server's public address, e.g. a fileserver's tracker announces): the client opens a
 * multiplexed stream on its control connection and writes an outbound request first; the server
 * answers with an outbound reply first, then the stream carries the TCP connection's bytes (or,
 * after a refusal, ends).
 *
 * Request (client -> server), the address types of SOCKS5 (RFC 1928 section 5):
 *
 *     version (8) = 1 | kind (8) = 3 outbound TCP | port (16) | type (8): 1 IPv4, 3 name, 4 IPv6
 *     address: 4 bytes | length (8) and 1-255 bytes of a host name | 16 bytes
 *
 * Reply (server -> client):
 *
 *     version (8) = 1 | status (8): 0 connected, else an {@link OutboundRefusal} code
 *     bound address: family (8) 4|6, address (4|16), port (16)  (0.0.0.0:0 after a refusal)
 *     message length (8) and that many bytes of UTF-8: what was observed (empty when connected)
 *
 * On success the bound address is the server-side address of the outgoing socket: the address
 * the far end sees.
 */
export const OUTBOUND_VERSION = 1;
export const OUTBOUND_KIND_TCP = 3;

/** Why the server did not open an outbound connection, with its wire code. */
export const OutboundRefusal = {
  /** The server does not open outbound connections (nat-server --expose-outbound is off). */
  disabled: 1,
  /** The target is denied by the server's peer policy, or is one of the server's own listeners. */
  forbidden: 2,
  /** The session holds no public port (only an exposed user's session may open outbound connections). */
  'not-exposed': 3,
  /** The session's cap of concurrent outbound connections is reached. */
  'session-cap': 4,
  /** The user's rate of new outbound connections is used up. */
  'rate-limited': 5,
  /** The server's cap of concurrent outbound connections is reached. */
  'global-cap': 6,
  /** The target network is unreachable (ENETUNREACH, or no address of the server's public family). */
  'network-unreachable': 7,
  /** The target host is unreachable, or its name does not resolve. */
  'host-unreachable': 8,
  /** The target refused the connection (RST). */
  'connection-refused': 9,
  /** The connection did not complete within the server's connect timeout. */
  timeout: 10,
  /** Any other failure (named in the message). */
  failed: 11,
} as const;
export type OutboundRefusal = keyof typeof OutboundRefusal;

const REFUSAL_BY_CODE = new Map<number, OutboundRefusal>(Object.entries(OutboundRefusal).map(([k, v]) => [v, k as OutboundRefusal]));

/** The target of an outbound request: an IP address or a host name the server resolves. */
export interface OutboundTarget {
  readonly host: string;
  readonly port: number;
}

/** An outbound reply: connected (with the server-side address), or refused with a reason. */
export type OutboundReply =
  { readonly ok: true; readonly bound: TransportAddress } | { readonly ok: false; readonly reason: OutboundRefusal; readonly message: string };

const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?$/;

/** Encodes an outbound request. Throws EncodeError for a bad port or a host that is neither an IP address nor a host name (1-255 bytes). */
export function encodeOutboundRequest(t: OutboundTarget): Uint8Array {
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new EncodeError('BAD_VALUE', `outbound: port ${t.port} out of range`);
  const head = Buffer.alloc(4);
  head[0] = OUTBOUND_VERSION;
  head[1] = OUTBOUND_KIND_TCP;
  head.writeUInt16BE(t.port, 2);
  if (ipFamily(t.host) !== undefined) {
    const ip = ipToBytes(t.host);
    return Buffer.concat([head, Uint8Array.of(ip.length === 4 ? 1 : 4), ip]);
  }
  const name = Buffer.from(t.host, 'utf8');
  if (!HOST_NAME.test(t.host) || name.length > 255)
    throw new EncodeError('BAD_VALUE', `outbound: ${JSON.stringify(t.host.slice(0, 64))} is not an IP address or host name`);
  return Buffer.concat([head, Uint8Array.of(3, name.length), name]);
}

/**
 * Decodes an outbound request at the start of `bytes`: the target and how many bytes it took, or
 * undefined when more bytes are needed (at most 261). Throws DecodeError for a bad version, kind,
 * address type, port 0 or a name that is not a host name.
 */
export function decodeOutboundRequest(bytes: Uint8Array): { target: OutboundTarget; length: number } | undefined {
  if (bytes.length < 5) return undefined;
  if (bytes[0] !== OUTBOUND_VERSION) throw new DecodeError('BAD_ATTRIBUTE', `outbound request: version ${bytes[0]}`);
  if (bytes[1] !== OUTBOUND_KIND_TCP) throw new DecodeError('BAD_ATTRIBUTE', `outbound request: kind ${bytes[1]}`);
  const port = (bytes[2]! << 8) | bytes[3]!;
  if (port === 0) throw new DecodeError('BAD_VALUE', 'outbound request: port 0');
  const type = bytes[4];
  if (type === 1 || type === 4) {
    const len = type === 1 ? 4 : 16;
    if (bytes.length < 5 + len) return undefined;
    return { target: { host: bytesToIp(bytes.subarray(5, 5 + len)), port }, length: 5 + len };
  }
  if (type !== 3) throw new DecodeError('BAD_ATTRIBUTE', `outbound request: address type ${type}`);
  if (bytes.length < 6) return undefined;
  const len = bytes[5]!;
  if (bytes.length < 6 + len) return undefined;
  const host = Buffer.from(bytes.subarray(6, 6 + len)).toString('utf8');
  if (len === 0 || !HOST_NAME.test(host)) throw new DecodeError('BAD_STRING', 'outbound request: the name is not a host name');
  return { target: { host, port }, length: 6 + len };
}

/** Encodes an outbound reply (a message is cut to 255 bytes). */
export function encodeOutboundReply(r: OutboundReply): Uint8Array {
  const bound = r.ok ? r.bound : { family: 'IPv4' as const, address: '0.0.0.0', port: 0 };
  const ip = ipToBytes(bound.address);
  let message = Buffer.from(r.ok ? '' : r.message, 'utf8');
  if (message.length > 255)
    message = Buffer.from(
      message
        .subarray(0, 255)
        .toString('utf8')
        .replace(/\uFFFD+$/, ''),
      'utf8',
    );
  const out = Buffer.alloc(2 + 1 + ip.length + 2 + 1 + message.length);
  out[0] = OUTBOUND_VERSION;
  out[1] = r.ok ? 0 : OutboundRefusal[r.reason];
  out[2] = ip.length === 4 ? 4 : 6;
  out.set(ip, 3);
  out.writeUInt16BE(bound.port, 3 + ip.length);
  out[5 + ip.length] = message.length;
  message.copy(out, 6 + ip.length);
  return out;
}

/**
 * Decodes an outbound reply at the start of `bytes`: the reply and how many bytes it took, or
 * undefined when more are needed (at most 277). Throws DecodeError for a bad version, status or
 * family.
 */
export function decodeOutboundReply(bytes: Uint8Array): { reply: OutboundReply; length: number } | undefined {
  if (bytes.length < 3) return undefined;
  if (bytes[0] !== OUTBOUND_VERSION) throw new DecodeError('BAD_ATTRIBUTE', `outbound reply: version ${bytes[0]}`);
  const status = bytes[1]!;
  const reason = REFUSAL_BY_CODE.get(status);
  if (status !== 0 && reason === undefined) throw new DecodeError('BAD_ATTRIBUTE', `outbound reply: status ${status}`);
  const fam = bytes[2];
  if (fam !== 4 && fam !== 6) throw new DecodeError('BAD_ATTRIBUTE', `outbound reply: address family ${fam}`);
  const len = fam === 4 ? 4 : 16;
  if (bytes.length < 3 + len + 3) return undefined;
  const address = bytesToIp(bytes.subarray(3, 3 + len));
  const port = (bytes[3 + len]! << 8) | bytes[4 + len]!;
  const mlen = bytes[5 + len]!;
  const end = 6 + len + mlen;
  if (bytes.length < end) return undefined;
  const message = Buffer.from(bytes.subarray(6 + len, end)).toString('utf8');
  const reply: OutboundReply =
    reason === undefined ? { ok: true, bound: { family: fam === 4 ? 'IPv4' : 'IPv6', address, port } } : { ok: false, reason, message };
  return { reply, length: end };
}
