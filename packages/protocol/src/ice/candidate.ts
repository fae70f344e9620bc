/**
 * ICE candidates (RFC 8445 section 5.1) and their `candidate` SDP attribute (RFC 8839 section
 * 5.1, with the `tcptype` extension of RFC 6544 section 4.5), as browsers hand them to
 * `RTCPeerConnection.onicecandidate` and as they travel in trickle ICE signalling.
 */
import { canonicalIp, ipFamily, type TransportAddress } from '../address.js';
import { EncodeError, ParseError } from '../errors.js';

/** Host, server-reflexive, peer-reflexive or relayed (RFC 8445 section 5.1.1). */
export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

/** The transport protocol of a candidate; TCP candidates are defined by RFC 6544. */
export type CandidateTransport = 'udp' | 'tcp';

/**
 * The connection direction of a TCP candidate (RFC 6544 section 4.5): `active` opens
 * connections, `passive` accepts them, `so` attempts a simultaneous open.
 */
export type TcpType = 'active' | 'passive' | 'so';

/** The candidate types, in the order RFC 8445 recommends preferring them. */
export const CANDIDATE_TYPES: readonly CandidateType[] = Object.freeze(['host', 'prflx', 'srflx', 'relay']);

/** The TCP candidate directions of RFC 6544. */
export const TCP_TYPES: readonly TcpType[] = Object.freeze(['active', 'passive', 'so']);

/** One ICE candidate, as carried by an RFC 8839 `candidate` attribute. */
export interface IceCandidate {
  /** 1 to 32 ice-chars (ALPHA / DIGIT / "+" / "/"); see {@link candidateFoundation}. */
  readonly foundation: string;
  /** Component ID, 1..256 (1 = RTP or the only component, 2 = RTCP). */
  readonly component: number;
  readonly transport: CandidateTransport;
  /** 32-bit unsigned priority; see {@link candidatePriority}. */
  readonly priority: number;
  /**
   * An IPv4 address, an RFC 5952 canonical IPv6 address, or a host name: browsers hide host
   * addresses behind an mDNS name such as `1f4712db-ea17-4bcf-a596-105139dfd8bf.local`.
   */
  readonly address: string;
  /** 0..65535; TCP active candidates conventionally carry port 9 (RFC 6544 section 4.5). */
  readonly port: number;
  readonly type: CandidateType;
  /** `raddr`: the base of a reflexive candidate, the mapped address of a relayed one. */
  readonly relatedAddress?: string;
  /** `rport`: the port that goes with {@link relatedAddress}. */
  readonly relatedPort?: number;
  /** `tcptype` (RFC 6544): only on TCP candidates. */
  readonly tcpType?: TcpType;
  /**
   * Every other `name value` pair, in order and with its case, kept so the line prints back
   * as it came: `generation`, `ufrag`, `network-id`, `network-cost`, ...
   */
  readonly extensions: ReadonlyArray<readonly [name: string, value: string]>;
}

// RFC 8839 section 5.1 grammar pieces.
const FOUNDATION_RE = /^[A-Za-z0-9+/]{1,32}$/;
/** token, RFC 3261 section 25.1 */
const TOKEN_RE = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
/** 1*VCHAR: an empty value cannot survive space-separated parsing, so one character at least. */
const VCHAR_RE = /^[\x21-\x7e]+$/;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** Extension names the parser gives a meaning to; they cannot appear among `extensions`. */
const RESERVED_NAMES = new Set(['typ', 'raddr', 'rport', 'tcptype']);

/**
 * True for a host name that may stand in a candidate's address: letters, digits and hyphens in
 * dot-separated labels of 1-63 characters, 253 characters at most, and a last label that is not
 * all digits (so a mistyped IPv4 address such as `10.0.0.256` is not taken for a name).
 */
export function isCandidateHostname(text: string): boolean {
  if (text.length > 253 || !HOSTNAME_RE.test(text)) return false;
  const last = text.slice(text.lastIndexOf('.') + 1);
  return !/^\d+$/.test(last);
}

/** True for an mDNS name (`<uuid>.local`) such as browsers use to hide host candidate addresses. */
export function isMdnsHostname(text: string): boolean {
  return isCandidateHostname(text) && text.toLowerCase().endsWith('.local');
}

/** The candidate's address as a {@link TransportAddress}, or undefined when it is a host name. */
export function candidateTransportAddress(c: IceCandidate): TransportAddress | undefined {
  const family = ipFamily(c.address);
  return family === undefined ? undefined : { family, address: canonicalIp(c.address), port: c.port };
}

/** The value of the first extension called `name` (compared case-insensitively), if any. */
export function candidateExtension(c: IceCandidate, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return c.extensions.find(([n]) => n.toLowerCase() === wanted)?.[1];
}

// ---------------------------------------------------------------------------------------------
// Parsing

function fail(message: string): never {
  throw new ParseError('BAD_SYNTAX', `bad candidate: ${message}`);
}

const show = (text: string): string => JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);

function parseUint(field: string, token: string | undefined, maxDigits: number, min: number, max: number): number {
  if (token === undefined) fail(`missing ${field}`);
  if (token.length > maxDigits || !/^\d+$/.test(token)) {
    fail(`${field} must be 1 to ${maxDigits} digits, not ${show(token)}`);
  }
  const value = Number(token);
  if (value < min || value > max) fail(`${field} ${token} is outside ${min}..${max}`);
  return value;
}

/** RFC 8839: connection-address is an IPv4 address, an IPv6 address or an FQDN. */
function parseConnectionAddress(field: string, token: string | undefined): string {
  if (token === undefined) fail(`missing ${field}`);
  if (ipFamily(token) !== undefined) return canonicalIp(token);
  if (token.includes(':')) fail(`${field} ${show(token)} is not an IPv6 address`);
  if (!isCandidateHostname(token)) fail(`${field} ${show(token)} is neither an IP address nor a host name`);
  return token;
}

function parseCandidateType(token: string | undefined): CandidateType {
  if (token === undefined) fail('missing candidate type after "typ"');
  const lower = token.toLowerCase();
  const type = CANDIDATE_TYPES.find((t) => t === lower);
  if (type === undefined) fail(`unknown candidate type ${show(token)} (expected host, srflx, prflx or relay)`);
  return type;
}

function parseTcpType(token: string | undefined): TcpType {
  if (token === undefined) fail('missing value after "tcptype"');
  const lower = token.toLowerCase();
  const tcpType = TCP_TYPES.find((t) => t === lower);
  if (tcpType === undefined) fail(`unknown tcptype ${show(token)} (expected active, passive or so)`);
  return tcpType;
}

/**
 * Parses an RFC 8839 section 5.1 `candidate` attribute: `candidate:...` or `a=candidate:...`,
 * optionally ending in CRLF, as `RTCIceCandidate.candidate` and SDP carry it.
 *
 * Keywords, the transport and the candidate type are case-insensitive (ABNF string literals
 * are, and browsers send both "UDP" and "udp"); fields may be separated by more than one space.
 * IP addresses come back in canonical form, host names (mDNS `.local` names) as they were.
 * `raddr`/`rport` are optional for every type: RFC 8839 makes them mandatory for reflexive and
 * relayed candidates, but browsers hiding addresses send `raddr 0.0.0.0 rport 0` or nothing.
 * `tcptype` may appear anywhere among the extensions, but only on a TCP candidate.
 *
 * @throws ParseError `BAD_SYNTAX` with a message naming the field at fault; nothing else
 */
export function parseCandidate(line: string): IceCandidate {
  if (typeof line !== 'string') fail(`expected a string, not ${typeof line}`);
  let text = line;
  if (text.endsWith('\n')) text = text.slice(0, text.endsWith('\r\n') ? -2 : -1);
  if (text.startsWith('a=')) text = text.slice(2);
  const colon = text.indexOf(':');
  if (colon < 0 || text.slice(0, colon).toLowerCase() !== 'candidate') {
    fail(`expected "candidate:" at the start of ${show(line)}`);
  }
  // Runs of spaces between fields and trailing spaces are tolerated; a space right after the
  // colon is not, since it leaves the foundation empty.
  const body = text.slice(colon + 1).replace(/ +$/, '');
  const tokens = body === '' ? [] : body.split(/ +/);
  if (tokens.length < 6) {
    fail('expected "<foundation> <component-id> <transport> <priority> <address> <port> typ <type>"');
  }
  const [foundationText, componentText, transportText, priorityText, addressText, portText] = tokens;

  if (!FOUNDATION_RE.test(foundationText!)) {
    fail(`foundation must be 1 to 32 characters of ALPHA / DIGIT / "+" / "/", not ${show(foundationText!)}`);
  }
  const foundation = foundationText!;
  const component = parseUint('component-id', componentText, 5, 1, 256);
  const transportLower = transportText!.toLowerCase();
  if (transportLower !== 'udp' && transportLower !== 'tcp') {
    fail(
      TOKEN_RE.test(transportText!)
        ? `unsupported transport ${show(transportText!)} (expected udp or tcp)`
        : `transport ${show(transportText!)} is not a token`,
    );
  }
  const transport: CandidateTransport = transportLower;
  const priority = parseUint('priority', priorityText, 10, 0, 0xffff_ffff);
  const address = parseConnectionAddress('connection-address', addressText);
  const port = parseUint('port', portText, 5, 0, 65535);

  if (tokens[6] === undefined) fail('missing "typ <candidate-type>" after the port');
  if (tokens[6].toLowerCase() !== 'typ') fail(`expected "typ" after the port, not ${show(tokens[6])}`);
  const type = parseCandidateType(tokens[7]);

  let i = 8;
  let relatedAddress: string | undefined;
  let relatedPort: number | undefined;
  if (tokens[i]?.toLowerCase() === 'raddr') {
    relatedAddress = parseConnectionAddress('raddr', tokens[i + 1]);
    i += 2;
  }
  if (tokens[i]?.toLowerCase() === 'rport') {
    relatedPort = parseUint('rport', tokens[i + 1], 5, 0, 65535);
    i += 2;
  }

  let tcpType: TcpType | undefined;
  const extensions: [string, string][] = [];
  for (; i < tokens.length; i += 2) {
    const name = tokens[i]!;
    const value = tokens[i + 1];
    const lower = name.toLowerCase();
    if (lower === 'tcptype') {
      if (tcpType !== undefined) fail('"tcptype" appears twice');
      if (transport !== 'tcp') fail('"tcptype" on a udp candidate (RFC 6544 defines it for tcp only)');
      tcpType = parseTcpType(value);
      continue;
    }
    if (RESERVED_NAMES.has(lower)) {
      fail(`${show(name)} out of place (raddr and rport follow the type, in that order, once)`);
    }
    if (!TOKEN_RE.test(name)) fail(`extension name ${show(name)} is not a token`);
    if (value === undefined) fail(`extension ${show(name)} has no value`);
    if (!VCHAR_RE.test(value)) fail(`extension ${show(name)} has a value with characters outside VCHAR`);
    extensions.push([name, value]);
  }

  return {
    foundation,
    component,
    transport,
    priority,
    address,
    port,
    type,
    ...(relatedAddress === undefined ? {} : { relatedAddress }),
    ...(relatedPort === undefined ? {} : { relatedPort }),
    ...(tcpType === undefined ? {} : { tcpType }),
    extensions,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

function bad(message: string): never {
  throw new EncodeError('BAD_VALUE', `cannot format candidate: ${message}`);
}

function checkInt(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) bad(`${field} must be an integer from ${min} to ${max}`);
  return value;
}

function formatAddress(field: string, text: string): string {
  if (ipFamily(text) !== undefined) return canonicalIp(text);
  if (isCandidateHostname(text)) return text;
  return bad(`${field} ${show(text)} is neither an IP address nor a host name`);
}

/**
 * Prints the canonical RFC 8839 `candidate:` attribute value (without `a=` and without CRLF):
 * keywords, transport and type in lower case, IP addresses in canonical form, then `raddr`,
 * `rport`, `tcptype` and the extensions in their order. `parseCandidate(formatCandidate(c))`
 * equals `c` for any valid candidate whose IP addresses are canonical.
 *
 * @throws EncodeError `BAD_VALUE` when a field could not be parsed back
 */
export function formatCandidate(c: IceCandidate): string {
  if (!FOUNDATION_RE.test(c.foundation)) bad(`foundation ${show(c.foundation)} is not 1 to 32 ice-chars`);
  checkInt('component', c.component, 1, 256);
  if (c.transport !== 'udp' && c.transport !== 'tcp') bad(`transport ${show(String(c.transport))}`);
  checkInt('priority', c.priority, 0, 0xffff_ffff);
  const address = formatAddress('address', c.address);
  checkInt('port', c.port, 0, 65535);
  if (!CANDIDATE_TYPES.includes(c.type)) bad(`candidate type ${show(String(c.type))}`);
  let line = `candidate:${c.foundation} ${c.component} ${c.transport} ${c.priority} ${address} ${c.port} typ ${c.type}`;
  if (c.relatedAddress !== undefined) line += ` raddr ${formatAddress('relatedAddress', c.relatedAddress)}`;
  if (c.relatedPort !== undefined) line += ` rport ${checkInt('relatedPort', c.relatedPort, 0, 65535)}`;
  if (c.tcpType !== undefined) {
    if (c.transport !== 'tcp') bad('tcpType on a udp candidate');
    if (!TCP_TYPES.includes(c.tcpType)) bad(`tcpType ${show(String(c.tcpType))}`);
    line += ` tcptype ${c.tcpType}`;
  }
  for (const [name, value] of c.extensions) {
    if (!TOKEN_RE.test(name)) bad(`extension name ${show(name)} is not a token`);
    if (RESERVED_NAMES.has(name.toLowerCase())) bad(`extension name ${show(name)} is reserved`);
    if (!VCHAR_RE.test(value)) bad(`extension ${show(name)} needs a value of 1 or more VCHAR`);
    line += ` ${name} ${value}`;
  }
  return line;
}
