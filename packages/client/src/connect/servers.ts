/**
 * The STUN and TURN servers a rendezvous service offers (`stun:`/`turn:` URIs, RFC 7064 and
 * RFC 7065), reduced to what the connection driver uses: UDP STUN servers for server-reflexive
 * candidates and UDP TURN servers with credentials for relayed ones.
 */
import type { SignallingIceServer } from '@nat/protocol';

/** A STUN server to learn a server-reflexive address from. */
export interface StunServerRef {
  /** `host:port` (or `[v6]:port`), ready for `resolveServer`. */
  readonly server: string;
}

/** A TURN server to allocate a relayed address on, over UDP. */
export interface TurnServerRef {
  readonly server: string;
  readonly username: string;
  readonly password: string;
}

/** The servers of an `iceServers` list, split by use. */
export interface IceServerRefs {
  readonly stun: readonly StunServerRef[];
  readonly turn: readonly TurnServerRef[];
}

/**
 * Reads a `stun:` or `turn:` URI: `scheme:host[:port][?transport=udp|tcp]`. Returns undefined
 * for secure schemes (`stuns:`, `turns:`), for `transport=tcp`, and for what does not parse:
 * the driver gathers over UDP only.
 */
export function parseIceServerUrl(url: string): { readonly scheme: 'stun' | 'turn'; readonly server: string } | undefined {
  const m = /^(stun|turn):([^?]+)(?:\?transport=(udp|tcp))?$/i.exec(url.trim());
  if (m === null) return undefined;
  if (m[3] !== undefined && m[3].toLowerCase() !== 'udp') return undefined;
  const hostPort = m[2]!;
  if (hostPort.length === 0 || hostPort.includes('/')) return undefined;
  return { scheme: m[1]!.toLowerCase() as 'stun' | 'turn', server: hostPort };
}

/**
 * Splits `iceServers` into STUN and TURN servers. A TURN server is a STUN server too (RFC 8656
 * section 3), so a list with only `turn:` URIs still yields server-reflexive candidates. TURN URIs
 * without a username and credential are skipped.
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
      if (!seenStun.has(parsed.server)) {
        seenStun.add(parsed.server);
        stun.push({ server: parsed.server });
      }
      if (parsed.scheme === 'turn' && s.username !== undefined && s.credential !== undefined) {
        turn.push({ server: parsed.server, username: s.username, password: s.credential });
      }
    }
  }
  return { stun, turn };
}
