import { ParseError } from './errors.js';

/** An IP address family, spelled as node:dgram and node:net spell it. */
export type AddressFamily = 'IPv4' | 'IPv6';

/**
 * The one transport address type of the project: an IP address and a port. It has the same
 * shape as node's `AddressInfo` / dgram `RemoteInfo`, so a received datagram's `rinfo` can be
 * used where a `TransportAddress` is expected.
 */
export interface TransportAddress {
  readonly family: AddressFamily;
  /** IPv4 dotted quad or RFC 5952 canonical IPv6 text (no zone, no brackets). */
  readonly address: string;
  readonly port: number;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The family of an IP address text, or undefined when it is neither IPv4 nor IPv6. */
export function ipFamily(text: string): AddressFamily | undefined {
  if (IPV4_RE.test(text)) return 'IPv4';
  if (text.includes(':')) {
    try {
      parseIPv6(text);
      return 'IPv6';
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function parseIPv4Into(text: string, out: Uint8Array, offset: number): void {
  if (!IPV4_RE.test(text)) throw new ParseError('BAD_SYNTAX', `not an IPv4 address: ${JSON.stringify(text)}`);
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
}

function parseIPv6(text: string): Uint8Array {
  const bad = (): never => {
    throw new ParseError('BAD_SYNTAX', `not an IPv6 address: ${JSON.stringify(text)}`);
  };
  const out = new Uint8Array(16);
  if (text.length === 0 || text.length > 45) bad();
  const halves = text.split('::');
  if (halves.length > 2) bad();
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  // A trailing dotted quad (RFC 4291 section 2.2, form 3) counts as two groups.
  const words: number[] = [];
  const pushGroups = (list: string[], into: number[]): void => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (i === list.length - 1 && g.includes('.')) {
        const v4 = new Uint8Array(4);
        parseIPv4Into(g, v4, 0);
        into.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) bad();
        into.push(parseInt(g, 16));
      }
    }
  };
  const headWords: number[] = [];
  const tailWords: number[] = [];
  pushGroups(head, headWords);
  if (halves.length === 2) {
    // a dotted quad may only end the whole address
    if (head.some((g) => g.includes('.'))) bad();
    pushGroups(tail, tailWords);
    if (headWords.length + tailWords.length > 7) bad();
    words.push(...headWords, ...new Array<number>(8 - headWords.length - tailWords.length).fill(0), ...tailWords);
  } else {
    if (headWords.length !== 8) bad();
    words.push(...headWords);
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i]! >> 8;
    out[i * 2 + 1] = words[i]! & 0xff;
  }
  return out;
}

/**
 * The bytes of an IP address in network order: 4 bytes for IPv4, 16 for IPv6. An IPv6 zone
 * (`fe80::1%eth0`) is dropped: zones never travel on the wire.
 */
export function ipToBytes(text: string): Uint8Array {
  const unzoned = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  if (IPV4_RE.test(unzoned)) {
    const out = new Uint8Array(4);
    parseIPv4Into(unzoned, out, 0);
    return out;
  }
  if (unzoned.includes(':')) return parseIPv6(unzoned);
  throw new ParseError('BAD_SYNTAX', `not an IP address: ${JSON.stringify(text)}`);
}

/** IPv4 text of 4 bytes at `offset`. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 canonical text of 16 bytes at `offset`: lower case, longest zero run compressed. */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const w: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) w[i] = (bytes[offset + i * 2]! << 8) | bytes[offset + i * 2 + 1]!;
  // RFC 5952 section 4.2.2: a single 16-bit zero field is not compressed; the first of equal
  // longest runs is.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // RFC 5952 section 5: IPv4-mapped addresses are written with a dotted quad.
  if (bestStart === 0 && bestLen === 5 && w[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes, offset + 12)}`;
  }
  const hex = (from: number, to: number): string =>
    w
      .slice(from, to)
      .map((x) => x!.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Text of an IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatIPv4(bytes);
  if (bytes.length === 16) return formatIPv6(bytes);
  throw new ParseError('BAD_VALUE', `an IP address has 4 or 16 bytes, not ${bytes.length}`);
}

/** Canonical text of an IP address: `::FFFF:1.2.3.4` and `0:0::1` come back as `::ffff:1.2.3.4`, `::1`. */
export function canonicalIp(text: string): string {
  return bytesToIp(ipToBytes(text));
}

function checkPort(port: number, text: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ParseError('BAD_SYNTAX', `bad port in ${JSON.stringify(text)}`);
  }
  return port;
}

/**
 * Parses `1.2.3.4:3478`, `[2001:db8::1]:3478`, or a bare address when `defaultPort` is given
 * (`1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`).
 */
export function parseTransportAddress(text: string, defaultPort?: number): TransportAddress {
  const fail = (): never => {
    throw new ParseError(
      'BAD_SYNTAX',
      `not an address: ${JSON.stringify(text)} (expected IP:PORT or [IPv6]:PORT${defaultPort === undefined ? '' : ' or a bare IP'})`,
    );
  };
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) fail();
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) fail();
      portText = rest.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      host = text.slice(0, text.indexOf(':'));
      portText = text.slice(text.indexOf(':') + 1);
    } else {
      host = text; // bare IPv4, or bare IPv6 (two or more colons)
    }
  }
  const family = ipFamily(host);
  if (!family) fail();
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) fail();
    port = defaultPort!;
  } else {
    if (!/^\d{1,5}$/.test(portText)) fail();
    port = checkPort(Number(portText), text);
  }
  return { family: family!, address: canonicalIp(host), port };
}

/** `1.2.3.4:3478` or `[2001:db8::1]:3478`. */
export function formatTransportAddress(addr: TransportAddress): string {
  return addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
}

/** True when both name the same IP (compared canonically) and port. */
export function sameTransportAddress(a: TransportAddress, b: TransportAddress): boolean {
  if (a.port !== b.port) return false;
  if (a.address === b.address) return true;
  try {
    return canonicalIp(a.address) === canonicalIp(b.address);
  } catch {
    return false;
  }
}
