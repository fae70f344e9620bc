import { ExposeOwnerError, lookupExposeOwner } from '@nat/client';
import { ParseError, canonicalIp, parseTransportAddress } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';
import { singleRendezvous } from './rendezvous-nodes.js';

/** Flags of `nat owner PORT`. */
export interface OwnerOptions {
  /** `--rendezvous URL`: one server (a list of one works too). */
  readonly rendezvous?: string | readonly string[];
  readonly udp?: boolean;
  readonly insecure?: boolean;
  readonly json?: boolean;
}

/** `PORT` (the server's own address), or `HOST:PORT` / `[IPv6]:PORT` (another node's public address). Throws UsageError. */
function parseTarget(text: string): { port: number; host?: string } {
  if (/^\d{1,5}$/.test(text)) {
    const port = Number(text);
    if (port >= 1 && port <= 65535) return { port };
  } else {
    try {
      const a = parseTransportAddress(text);
      if (a.port >= 1) return { port: a.port, host: canonicalIp(a.address) };
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
    }
  }
  throw new UsageError(`PORT ${JSON.stringify(text)}: expected a port number 1-65535, or IP:PORT ([IPv6]:PORT)`);
}

/**
 * `nat owner [HOST:]PORT --rendezvous URL`: asks the nat-server behind URL which peer owns its
 * public port PORT (when the owner ran `nat expose --public --advertise-peer`); with HOST, the
 * port at HOST, the public address of another node sharing the server's Redis. Prints the peer
 * id on stdout (`nat connect PEER_ID` then reaches it over a peer link), or a JSON line with
 * --json. Exit codes: 0 told, 1 not advertised (or not an expose server), 2 bad usage, 3 no answer.
 */
export async function ownerCommand(portText: string, o: OwnerOptions, io: Io): Promise<number> {
  const { port, host } = parseTarget(portText);
  const url = singleRendezvous(o.rendezvous, 'nat owner');
  if (url === undefined) throw new UsageError('nat owner needs --rendezvous URL: the ws:// or wss:// address of the server whose public port it is');
  const transport = o.udp ? 'udp' : 'tcp';
  const out = (event: Record<string, unknown>, text: string, stream: 'stdout' | 'stderr'): void => {
    if (o.json) io.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    else io[stream].write(`${text}\n`);
  };
  try {
    const owner = await lookupExposeOwner(url, port, { transport, ...(host ? { host } : {}), ...(o.insecure ? { tls: { insecure: true } } : {}) });
    if (owner === undefined) {
      out(
        { event: 'not-advertised', transport, port, ...(host ? { host } : {}) },
        `nat owner: no owner of ${transport} port ${port}${host ? ` at ${host}` : ''} is advertised there (the port is not held, or its owner did not run nat expose --public --advertise-peer)`,
        'stderr',
      );
      return ExitCode.Failure;
    }
    out({ event: 'owner', transport, port, address: owner.address, peer: owner.peer }, owner.peer, 'stdout');
    return ExitCode.Ok;
  } catch (e) {
    if (!(e instanceof ExposeOwnerError)) throw e;
    out({ event: 'failed', code: e.code, error: e.message }, `nat owner: ${e.message}`, 'stderr');
    return e.code === 'BAD_ANSWER' ? ExitCode.Failure : ExitCode.NoAnswer;
  }
}
