import { type ExposeTunnel, type OutboundSocks, type OutboundSocksEvent, startOutboundSocks } from '@nat/client';
import { formatTransportAddress, ipFamily } from '@nat/protocol';
import { UsageError } from '../exit-codes.js';

/** Writes one event: a JSON line with --json, else `text` (when given) on stderr. */
export type EventOut = (event: Record<string, unknown>, text: string | undefined) => void;

/** `IP:PORT` or `[IPv6]:PORT` of `--outbound-socks`, on a loopback address; port 0 picks one. Throws UsageError. */
export function parseSocksListen(text: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2] ?? '';
  const port = Number(m?.[3]);
  if (!m || ipFamily(host) === undefined || port > 65535)
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a loopback IP:PORT, e.g. 127.0.0.1:1080 (port 0 picks a free one)`);
  if (!(host.startsWith('127.') || host === '::1'))
    throw new UsageError(
      `${flag} ${JSON.stringify(text)}: the SOCKS proxy listens on loopback only (127.0.0.1 or [::1]), so that only this machine can use it`,
    );
  return { host, port };
}

/** What each refusal reason tells the user to do, when something can be done. */
const HINTS: Readonly<Record<string, string>> = {
  disabled: 'the server operator turns outbound connections on with nat-server --expose-outbound',
  'not-exposed': 'the public port is not held right now (the connection to the server is being restored)',
  disconnected: 'the connection to the server is being restored; retry in a moment',
};

function describe(e: OutboundSocksEvent): [Record<string, unknown>, string | undefined] {
  switch (e.type) {
    case 'opened':
      return [{ event: 'outbound', state: 'opened', target: e.target, bound: formatTransportAddress(e.bound) }, undefined];
    case 'closed':
      return [{ event: 'outbound', state: 'closed', target: e.target, bytesToPeer: e.bytesToPeer, bytesFromPeer: e.bytesFromPeer }, undefined];
    case 'refused': {
      const hint = HINTS[e.reason];
      return [
        { event: 'outbound', state: 'refused', target: e.target, reason: e.reason, socksReply: e.reply, error: e.message },
        `nat expose: outbound connection to ${e.target} refused: ${e.message} (${e.reason}; SOCKS reply ${e.reply})${hint === undefined ? '' : `\n  ${hint}`}`,
      ];
    }
  }
}

/**
 * Starts the local SOCKS5 proxy of `--outbound-socks`: every CONNECT becomes an outbound
 * connection of `tunnel` (opened by the server from its public address). Reports the proxy's
 * address (JSON `outbound-socks`, or a line on stderr) and every connection (JSON `outbound`
 * events; refusals also as text). When it cannot listen, reports that (JSON `failed`) and returns
 * the error.
 */
export async function startOutboundSocksOf(tunnel: ExposeTunnel, listen: { host: string; port: number }, out: EventOut): Promise<OutboundSocks | Error> {
  let socks: OutboundSocks;
  try {
    socks = await startOutboundSocks({ ...listen, open: (target) => tunnel.openOutbound(target), onEvent: (e) => out(...describe(e)) });
  } catch (e) {
    const message = (e as Error).message;
    out({ event: 'failed', code: 'outbound-socks', error: message }, `nat expose: ${message} (choose another --outbound-socks address)`);
    return e as Error;
  }
  const address = formatTransportAddress(socks.address);
  out({ event: 'outbound-socks', address }, `outbound SOCKS5 proxy on ${address}: its connections leave from the server's public address`);
  return socks;
}
