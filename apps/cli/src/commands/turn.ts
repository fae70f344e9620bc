import { StunClientError, TurnClient } from '@nat/client';
import { formatTransportAddress, parseTransportAddress, restApiCredentials, type TransportAddress } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import { explainTurnFailure } from './turn-errors.js';
import { type Io, roundMs } from '../io.js';
import { parseUser } from '../user.js';

/** Options of `nat turn`. */
export interface TurnCommandOptions {
  readonly server: string;
  readonly user: string;
  readonly peer?: string;
  readonly transport?: 'udp' | 'tcp' | 'tls';
  readonly echo?: boolean;
  readonly count?: number;
  readonly interval?: number;
  readonly channel?: boolean;
  readonly json?: boolean;
  readonly insecure?: boolean;
  readonly hold?: boolean;
}

function parsePeer(text: string): TransportAddress {
  try {
    return parseTransportAddress(text);
  } catch {
    throw new UsageError(`--peer: ${JSON.stringify(text)} is not IP:PORT (or [IPv6]:PORT)`);
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/**
 * `nat turn`: allocates a relayed address and prints it. With `--peer`, relays stdin to the peer
 * and the peer's data to stdout, or with `--echo` sends probes to an echoing peer and prints
 * round-trip times.
 */
export async function turnCommand(o: TurnCommandOptions, io: Io & { stdin?: NodeJS.ReadableStream }, signal: AbortSignal): Promise<number> {
  const { username, password } = parseUser(o.user, '--user');
  const peer = o.peer ? parsePeer(o.peer) : undefined;
  let client: TurnClient;
  try {
    client = await TurnClient.connect({
      server: o.server,
      username,
      password,
      transport: o.transport ?? 'udp',
      // an IPv6 peer needs an IPv6 relayed address (RFC 8656 REQUESTED-ADDRESS-FAMILY); the default is IPv4
      ...(peer?.family === 'IPv6' ? { requestedAddressFamily: 'IPv6' as const } : {}),
      ...(o.insecure ? { tls: { rejectUnauthorized: false } } : {}),
      signal,
    });
  } catch (e) {
    if (e instanceof StunClientError) {
      const { message, code } = explainTurnFailure(e, { server: o.server, transport: o.transport ?? 'udp' });
      if (o.json) io.stdout.write(`${JSON.stringify({ server: o.server, error: e.code, stunErrorCode: e.stunErrorCode ?? null, message })}\n`);
      io.stderr.write(`nat turn: ${message}\n`);
      return code;
    }
    throw e;
  }
  try {
    const info = {
      server: o.server,
      transport: o.transport ?? 'udp',
      relayedAddress: formatTransportAddress(client.relayedAddress),
      mappedAddress: client.mappedAddress ? formatTransportAddress(client.mappedAddress) : null,
      localAddress: formatTransportAddress(client.localAddress),
    };
    if (!peer) {
      if (o.json) io.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else {
        io.stdout.write(`${info.relayedAddress}\n`);
        io.stderr.write(`relayed address allocated on ${o.server} over ${info.transport}; public address ${info.mappedAddress ?? 'unknown'}\n`);
      }
      if (o.hold) {
        io.stderr.write('holding the allocation (refreshed automatically); Ctrl-C releases it\n');
        // The allocation can also end on its own (the server closed the connection, a refresh was
        // refused): say why instead of leaving Node with nothing to wait for (it exited with 13).
        const lost = await new Promise<StunClientError | undefined>((resolve) => {
          signal.addEventListener('abort', () => resolve(undefined), { once: true });
          client.on('close', (error) => resolve(error ?? new StunClientError('ABORTED', 'the allocation ended')));
        });
        if (lost !== undefined && !signal.aborted) {
          const { message, code } = explainTurnFailure(lost, { server: o.server, transport: info.transport });
          io.stderr.write(`nat turn: the allocation held on ${o.server} ended: ${message}\n`);
          return code;
        }
      }
      return ExitCode.Ok;
    }
    if (o.channel) await client.bindChannel(peer, { signal });
    else await client.createPermission(peer, { signal });
    if (o.echo) return await echoTest(client, peer, o, io, info, signal);
    return await pipe(client, peer, io, signal, o);
  } catch (e) {
    if (e instanceof StunClientError && e.code !== 'ABORTED') {
      const { message, code } = explainTurnFailure(e, { server: o.server, transport: o.transport ?? 'udp', ...(peer === undefined ? {} : { peer }) });
      io.stderr.write(`nat turn: ${message}\n`);
      return code;
    }
    throw e;
  } finally {
    await client.close().catch(() => {});
  }
}

async function echoTest(
  client: TurnClient,
  peer: TransportAddress,
  o: TurnCommandOptions,
  io: Io,
  info: { relayedAddress: string } & Record<string, unknown>,
  signal: AbortSignal,
): Promise<number> {
  const count = o.count ?? 5;
  const interval = o.interval ?? 200;
  const sent = new Map<number, number>();
  const rtts: number[] = [];
  const onData = ({ data }: { data: Uint8Array }): void => {
    const text = Buffer.from(data).toString();
    const m = /^nat-echo (\d+)$/.exec(text);
    const t = m ? sent.get(Number(m[1])) : undefined;
    if (t !== undefined) {
      sent.delete(Number(m![1]));
      rtts.push(performance.now() - t);
      if (!o.json) io.stderr.write(`reply ${m![1]} from ${formatTransportAddress(peer)}: ${(performance.now() - t).toFixed(2)} ms\n`);
    }
  };
  client.on('data', onData);
  for (let i = 0; i < count && !signal.aborted; i++) {
    sent.set(i, performance.now());
    client.send(peer, Buffer.from(`nat-echo ${i}`));
    await new Promise((r) => setTimeout(r, interval));
  }
  const deadline = Date.now() + 2000;
  while (sent.size > 0 && Date.now() < deadline && !signal.aborted) await new Promise((r) => setTimeout(r, 20));
  client.off('data', onData);
  const sorted = [...rtts].sort((a, b) => a - b);
  const result = {
    ...info,
    peer: formatTransportAddress(peer),
    sent: count,
    received: rtts.length,
    lossPercent: Math.round(((count - rtts.length) / count) * 1000) / 10,
    rttMs: sorted.length ? { min: roundMs(sorted[0]!), median: roundMs(percentile(sorted, 50)), max: roundMs(sorted[sorted.length - 1]!) } : null,
  };
  if (o.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else
    io.stdout.write(
      `${result.received}/${count} echoed through ${result.relayedAddress}${sorted.length ? `, round trip min ${sorted[0]!.toFixed(2)} / median ${percentile(sorted, 50).toFixed(2)} / max ${sorted[sorted.length - 1]!.toFixed(2)} ms` : ''}\n`,
    );
  return rtts.length > 0 ? ExitCode.Ok : ExitCode.NoAnswer;
}

async function pipe(
  client: TurnClient,
  peer: TransportAddress,
  io: Io & { stdin?: NodeJS.ReadableStream },
  signal: AbortSignal,
  o: TurnCommandOptions,
): Promise<number> {
  const stdin = io.stdin ?? process.stdin;
  if (!o.json)
    io.stderr.write(`relaying stdin to ${formatTransportAddress(peer)} through ${formatTransportAddress(client.relayedAddress)}; peer data goes to stdout\n`);
  client.on('data', ({ data }) => io.stdout.write(data));
  for await (const chunk of stdin) {
    if (signal.aborted) break;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    // One datagram per chunk, at most 1200 bytes each (safe below common MTUs).
    for (let i = 0; i < bytes.length; i += 1200) client.send(peer, bytes.subarray(i, i + 1200));
  }
  // Give replies a moment after stdin ends.
  await new Promise((r) => setTimeout(r, 500));
  return ExitCode.Ok;
}

/** `nat turn credentials`: TURN REST API time-limited credentials (coturn's use-auth-secret). */
export function turnCredentialsCommand(o: { secret: string; user: string; ttl: number; json?: boolean }, io: Io): number {
  const c = restApiCredentials(o.secret, o.user, o.ttl, Date.now());
  if (o.json)
    io.stdout.write(
      `${JSON.stringify({ username: c.username, password: c.password, ttl: o.ttl, expiresAt: new Date(c.expiresAt * 1000).toISOString() }, null, 2)}\n`,
    );
  else {
    io.stdout.write(`username: ${c.username}\npassword: ${c.password}\n`);
    io.stderr.write(`valid until ${new Date(c.expiresAt * 1000).toISOString()} on servers sharing this secret\n`);
  }
  return ExitCode.Ok;
}
