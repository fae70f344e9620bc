import { type StunClientError, isTurnNotOffered } from '@nat/client';
import { type TransportAddress, formatTransportAddress } from '@nat/protocol';
import { deniedRange } from './peer-ranges.js';
import { ExitCode } from '../exit-codes.js';

/** Socket errors that mean nothing answered at the server's address (exit 3), not a local failure. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ECONNRESET']);

/** The errno behind a SOCKET error (`cause.code`), if any. */
export function errnoOf(e: StunClientError): string | undefined {
  const cause = e.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

/** What `nat turn` was doing when it failed. */
export interface TurnFailureContext {
  readonly server: string;
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** Set once the allocation exists and the peer's permission or channel was asked for. */
  readonly peer?: TransportAddress;
}

function refusal(e: StunClientError, o: TurnFailureContext): string {
  const c = e.stunErrorCode;
  const observed = `the server refused: ${c} ${e.reason ?? ''}`.trimEnd();
  if (c === 400 && isTurnNotOffered(e)) {
    return `${o.server} answered the Allocate request with 400${e.reason ? ` ${e.reason}` : ''} before asking for credentials (a TURN server asks with 401): this server does not offer TURN; its operator turns TURN on with nat-server --realm REALM and --user NAME:PASSWORD, --users-file FILE or --auth-secret SECRET`;
  }
  if (c === 403 && o.peer !== undefined) {
    const rule = deniedRange(o.peer.address)?.cidr;
    const peer = formatTransportAddress(o.peer);
    return rule === undefined
      ? `${observed}: the server's peer policy refuses relaying to ${peer}`
      : `${observed}: relaying to ${peer} is refused; ${o.peer.address} is in ${rule} (loopback, private or reserved), which relays refuse unless their operator allows it (nat-server --allow-peer ${rule})`;
  }
  const hint =
    c === 401
      ? 'check --user NAME:PASSWORD (and the server realm)'
      : c === 403
        ? 'the server refuses this request (its policy)'
        : c === 486
          ? 'this user has too many allocations on the server'
          : c === 508
            ? 'the server is out of capacity (allocations or relay ports)'
            : c === 442
              ? 'the server does not relay this transport'
              : 'see the error code in RFC 8656 section 18';
  return `${observed}: ${hint}`;
}

/** Explains a `nat turn` failure in words that say what to do, and picks the exit code. */
export function explainTurnFailure(e: StunClientError, o: TurnFailureContext): { message: string; code: number } {
  if (e.code === 'TIMEOUT') {
    const hint = o.transport === 'udp' ? ' (is it a TURN server, and is UDP allowed on the way? try --transport tcp)' : '';
    return { message: `no answer from ${o.server} over ${o.transport}${hint}`, code: ExitCode.NoAnswer };
  }
  if (e.code === 'ERROR_RESPONSE') return { message: refusal(e, o), code: ExitCode.Failure };
  if (e.code === 'BAD_ADDRESS') return { message: `${o.server}: ${e.message}`, code: ExitCode.Usage };
  const errno = e.code === 'SOCKET' ? errnoOf(e) : undefined;
  if (errno !== undefined && UNREACHABLE.has(errno)) {
    const what =
      errno === 'ECONNREFUSED'
        ? o.transport === 'udp'
          ? 'the request was refused (ICMP port unreachable: nothing listens on that UDP port)'
          : `the ${o.transport.toUpperCase()} connection was refused (nothing listens on that port)`
        : e.message;
    return {
      message: `no TURN server answered at ${o.server} over ${o.transport}: ${what}; check --server HOST:PORT and that the server runs (${errno})`,
      code: ExitCode.NoAnswer,
    };
  }
  return { message: e.message, code: ExitCode.Failure };
}
