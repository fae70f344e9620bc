/**
 * The STUN and TURN servers a rendezvous service offers (`stun:`/`stuns:` and `turn:`/`turns:`
 * URIs, RFC 7064 and RFC 7065), reduced to what the connection driver uses: UDP STUN servers
 * for server-reflexive candidates, and TURN servers with credentials for relayed ones, over UDP,
 * TCP (`?transport=tcp`) or TLS (`turns:`). Over TCP and TLS the client speaks plain TURN on
 * the connection (RFC 8656 section 3.1); the relayed address is still UDP.
 */
import type { SignallingIceServer } from '@nat/protocol';
import type { TurnTransport } from '../turn/options.js';

/** A STUN server to learn a server-reflexive address from (over UDP). */
export interface StunServerRef {
  /** `host:port` (or `[v6]:port`), ready for `resolveServer`. */
  readonly server: string;
}

/** A TURN server to allocate a relayed address on. */
export interface TurnServerRef {
  readonly server: string;
  readonly username: string;
  readonly password: string;
  /** How the client reaches the server: `udp` (default), `tcp` (`?transport=tcp`) or `tls` (`turns:`). */
  readonly transport: TurnTransport;
}

/** The servers of an `iceServers` list, split by use. */
export interface IceServerRefs {
  readonly stun: readonly StunServerRef[];
  /** In list order; the driver tries the UDP ones first and the TCP/TLS ones shortly after. */
  readonly turn: readonly TurnServerRef[];
}

/** A parsed `stun:`/`stuns:`/`turn:`/`turns:` URI. */
export interface ParsedIceServerUrl {
  readonly scheme: 'stun' | 'turn';
  /** `stuns:` or `turns:`: TLS to the server. */
  readonly secure: boolean;
  /** `udp`, `tcp` (`?transport=tcp`) or `tls` (secure schemes: RFC 7065 allows them over TCP only). */
  readonly transport: TurnTransport;
  /** `host[:port]` (or `[v6][:port]`); without a port the default of the transport applies (3478, 5349 for TLS). */
  readonly server: string;
}

/**
 * Reads a `stun:`, `stuns:`, `turn:` or `turns:` URI: `scheme:host[:port][?transport=udp|tcp]`.
 * Returns undefined for what does not parse, and for a secure scheme with `transport=udp`
 * (DTLS is not supported).
 */
export function parseIceServerUrl(url: string): ParsedIceServerUrl | undefined {
  const m = /^(stun|turn)(s?):([^?]+)(?:\?transport=(udp|tcp))?$/i.exec(url.trim());
  if (m === null) return undefined;
  const hostPort = m[3]!;
  if (hostPort.length === 0 || hostPort.includes('/')) return undefined;
  const secure = m[2]!.length > 0;
  const asked = m[4]?.toLowerCase() as 'udp' | 'tcp' | undefined;
  if (secure && asked === 'udp') return undefined;
  const transport: TurnTransport = secure ? 'tls' : (asked ?? 'udp');
  return { scheme: m[1]!.toLowerCase() as 'stun' | 'turn', secure, transport, server: hostPort };
}

/**
 * Splits `iceServers` into STUN and TURN servers. A TURN server is a STUN server too (RFC 8656
 * section 3), so a list with only `turn:` URIs still yields server-reflexive candidates; only
 * UDP URIs give STUN servers. TURN URIs without a username and credential are skipped.
 */
export function iceServerRefs(servers: readonly SignallingIceServer[]): IceServerRefs {
  const stun: StunServerRef[] = [];
  const turn: TurnServerRef[] = [];
  const seenStun = new Set<string>();
  for (const s of servers) {
    const urls = typeof s.urls === 'string' ? [s.urls] : s.urls;
    for (const url of urls) {
      const parsed = parseIceServerUrl(url);
      if (parsed === undefined) continue;
      if (parsed.transport === 'udp' && !seenStun.has(parsed.server)) {
        seenStun.add(parsed.server);
        stun.push({ server: parsed.server });
      }
      if (parsed.scheme === 'turn' && s.username !== undefined && s.credential !== undefined) {
        turn.push({ server: parsed.server, username: s.username, password: s.credential, transport: parsed.transport });
      }
    }
  }
  return { stun, turn };
}
