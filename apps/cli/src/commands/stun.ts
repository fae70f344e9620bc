import { RFC8489_RETRANSMISSION, StunClientError, stunBinding, type StunBindingResult } from '@nat/client';
import { formatTransportAddress } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import { type Io, roundMs } from '../io.js';

/** Options of `nat stun`. */
export interface StunCommandOptions {
  readonly transport?: 'udp' | 'tcp' | 'tls';
  readonly local?: string;
  readonly json?: boolean;
  readonly insecure?: boolean;
  readonly rto?: number;
  readonly rc?: number;
}

const fmt = (a: { family: 'IPv4' | 'IPv6'; address: string; port: number } | undefined): string | null => (a ? formatTransportAddress(a) : null);

function toJson(server: string, transport: string, r: StunBindingResult): Record<string, unknown> {
  return {
    server,
    transport,
    mappedAddress: fmt(r.mappedAddress),
    xorMappedAddress: fmt(r.xorMappedAddress),
    mappedAddressPlain: fmt(r.mappedAddressPlain),
    responseOrigin: fmt(r.responseOrigin),
    otherAddress: fmt(r.otherAddress),
    localAddress: fmt(r.localAddress),
    rttMs: roundMs(r.rttMs),
    transmissions: r.transmissions,
    software: r.software ?? null,
  };
}

/** `nat stun HOST[:PORT]`: one binding request, prints the mapped address. */
export async function stunCommand(server: string, o: StunCommandOptions, io: Io, signal: AbortSignal): Promise<number> {
  const transport = o.transport ?? 'udp';
  const started = performance.now();
  const seconds = (): string => ((performance.now() - started) / 1000).toFixed(1);
  let sent = 0;
  // Progress on stderr (stdout stays one JSON object with --json): each retransmission, counted.
  const onTransmit = (n: number): void => {
    sent = n;
    if (n > 1)
      io.stderr.write(
        `… no answer from ${server} yet after ${seconds()} s: request ${n}${transport === 'udp' ? ` of ${o.rc ?? RFC8489_RETRANSMISSION.rc}` : ''} sent\n`,
      );
  };
  let r: StunBindingResult;
  try {
    r = await stunBinding(server, {
      transport,
      onTransmit,
      ...(o.local ? { localAddress: o.local } : {}),
      ...(o.rto !== undefined ? { rto: o.rto } : {}),
      ...(o.rc !== undefined ? { rc: o.rc } : {}),
      ...(o.insecure ? { tls: { rejectUnauthorized: false } } : {}),
      signal,
    });
  } catch (e) {
    if (e instanceof StunClientError) {
      if (e.code === 'BAD_ADDRESS') throw new UsageError(`${server}: ${e.message}`);
      if (e.code === 'TIMEOUT' || e.code === 'SOCKET' || e.code === 'ERROR_RESPONSE' || e.code === 'BAD_RESPONSE') {
        const hint = e.code === 'TIMEOUT' && transport === 'udp' ? ' (is the server up, and is UDP allowed on the way? try --transport tcp)' : '';
        const what =
          e.code === 'TIMEOUT'
            ? `no answer came after ${sent} request${sent === 1 ? '' : 's'} over ${seconds()} s from ${server} over ${transport}`
            : `no usable answer from ${server} over ${transport}: ${e.message}`;
        if (o.json) io.stdout.write(`${JSON.stringify({ server, transport, error: e.code, message: e.message, requests: sent })}\n`);
        io.stderr.write(`nat stun: ${what}${hint}\n`);
        return ExitCode.NoAnswer;
      }
    }
    throw e;
  }
  if (o.json) io.stdout.write(`${JSON.stringify(toJson(server, transport, r), null, 2)}\n`);
  else {
    io.stdout.write(`${formatTransportAddress(r.mappedAddress)}\n`);
    // The server's address and port as answered (a bare HOST means port 3478, or 5349 for TLS).
    const from = formatTransportAddress(r.sourceAddress);
    const to = server === r.sourceAddress.address || server === `[${r.sourceAddress.address}]` || server === from ? from : `${server} (${from})`;
    io.stderr.write(
      `from ${formatTransportAddress(r.localAddress)} via ${transport} to ${to}, ${r.rttMs.toFixed(1)} ms round trip${r.software ? `, server ${r.software}` : ''}\n`,
    );
  }
  return ExitCode.Ok;
}
