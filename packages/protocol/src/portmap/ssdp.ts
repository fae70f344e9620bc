/**
 * SSDP (UPnP Device Architecture 1.1/2.0, section 1.3) search messages: the M-SEARCH request a
 * control point multicasts and the unicast HTTP-over-UDP answers of devices. Sans-I/O text
 * codec; a datagram that is not a well-formed answer throws {@link DecodeError}.
 */
import { DecodeError, EncodeError } from '../errors.js';

/** SSDP's IPv4 multicast group and port. */
export const SSDP_MULTICAST_V4 = { family: 'IPv4', address: '239.255.255.250', port: 1900 } as const;
/** SSDP's IPv6 link-local multicast group and port. */
export const SSDP_MULTICAST_V6 = { family: 'IPv6', address: 'ff02::c', port: 1900 } as const;

/** Search targets of an Internet Gateway Device. */
export const IGD_SEARCH_TARGETS = ['urn:schemas-upnp-org:device:InternetGatewayDevice:1', 'urn:schemas-upnp-org:device:InternetGatewayDevice:2'] as const;

/** Largest SSDP answer accepted, in bytes (one UDP datagram; answers are a few hundred bytes). */
export const SSDP_MAX_MESSAGE = 8192;

/** A device's answer to an M-SEARCH. */
export interface SsdpResponse {
  /** LOCATION: the URL of the root device description. */
  readonly location: string;
  /** ST: the search target it matched. */
  readonly st: string;
  /** USN: the unique service name. */
  readonly usn: string;
  /** SERVER, when present. */
  readonly server: string | undefined;
  /** Every header, names lower-cased (the last one wins). */
  readonly headers: ReadonlyMap<string, string>;
}

/**
 * The M-SEARCH request. `mx` is the seconds a device may wait before answering (1-5, section
 * 1.3.2); `host` is the multicast group, or the device's address for a unicast search.
 */
export function encodeMSearch(st: string, options: { mx?: number; host?: string } = {}): Uint8Array {
  const mx = options.mx ?? 1;
  if (!Number.isInteger(mx) || mx < 1 || mx > 5) throw new EncodeError('BAD_VALUE', `MX ${mx} is not 1-5`);
  if (/[\r\n]/.test(st) || st.length === 0 || st.length > 256) throw new EncodeError('BAD_VALUE', 'bad search target');
  const host = options.host ?? `${SSDP_MULTICAST_V4.address}:${SSDP_MULTICAST_V4.port}`;
  if (/[\r\n]/.test(host)) throw new EncodeError('BAD_VALUE', 'bad host');
  const text = `M-SEARCH * HTTP/1.1\r\nHOST: ${host}\r\nMAN: "ssdp:discover"\r\nMX: ${mx}\r\nST: ${st}\r\n\r\n`;
  return new TextEncoder().encode(text);
}

const latin1 = new TextDecoder('latin1');

/**
 * Decodes a search answer (`HTTP/1.1 200 OK` with LOCATION, ST and USN). A NOTIFY or an
 * M-SEARCH seen on the same socket, a non-200 status, a missing header or a LOCATION that is
 * not an http:// URL throws {@link DecodeError}.
 */
export function decodeSsdpResponse(bytes: Uint8Array): SsdpResponse {
  if (bytes.length > SSDP_MAX_MESSAGE) throw new DecodeError('BAD_LENGTH', `SSDP message of ${bytes.length} bytes, at most ${SSDP_MAX_MESSAGE}`);
  const text = latin1.decode(bytes);
  const end = text.indexOf('\r\n\r\n');
  const head = end === -1 ? text : text.slice(0, end);
  const lines = head.split(/\r?\n/);
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!status) throw new DecodeError('BAD_SYNTAX', `not an SSDP search answer: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  if (status[1] !== '200') throw new DecodeError('BAD_SYNTAX', `SSDP answer with status ${status[1]}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new DecodeError('BAD_SYNTAX', `bad SSDP header line ${JSON.stringify(line.slice(0, 60))}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const need = (name: string): string => {
    const value = headers.get(name);
    if (value === undefined || value === '') throw new DecodeError('BAD_SYNTAX', `SSDP answer without ${name.toUpperCase()}`);
    return value;
  };
  const location = need('location');
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new DecodeError('BAD_SYNTAX', `LOCATION is not a URL: ${JSON.stringify(location.slice(0, 100))}`);
  }
  if (url.protocol !== 'http:') throw new DecodeError('BAD_SYNTAX', `LOCATION is not an http URL: ${JSON.stringify(location.slice(0, 100))}`);
  return { location: url.href, st: need('st'), usn: need('usn'), server: headers.get('server'), headers };
}
