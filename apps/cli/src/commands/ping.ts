import { type ConnectionEndpoint, type ConnectionPath, type IceConnection, type IceConnectionOptions, type LearnedPunchOptions, type LoadedIdentity, RendezvousClient, StunClientError, connectPeer, defaultIdentityPath, learnPunchOptions, loadOrCreateIdentity } from '@nat/client';
import { PeerId, formatTransportAddress, ipFamily } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';

/** Options shared by `nat ping` and `nat listen`. */
export interface PeerCommandOptions {
  readonly rendezvous: string;
  readonly identity?: string;
  readonly json?: boolean;
  /** `--host-address IP` (repeatable): gather host candidates on exactly these addresses, loopback included. */
  readonly hostAddress?: readonly string[];
  /** `--relay-only`: no host or server-reflexive candidates. */
  readonly relayOnly?: boolean;
  /** `--no-punch` (false): no NAT mapping probe and no birthday punching. Default true. */
  readonly punch?: boolean;
}

/** Options of `nat ping`. */
export interface PingCommandOptions extends PeerCommandOptions {
  readonly count?: number;
  readonly interval?: number;
  /** ICE failure timeout, ms. */
  readonly timeout?: number;
}

/** The identity of `--identity FILE`, or the default one (created with mode 0600 on first use). */
export async function loadIdentity(file: string | undefined): Promise<LoadedIdentity> {
  return loadOrCreateIdentity(file ?? defaultIdentityPath());
}

/** The connection options the peer commands' flags ask for. */
export function connectionOptions(o: PeerCommandOptions, signal: AbortSignal, failureTimeout?: number): IceConnectionOptions {
  for (const a of o.hostAddress ?? []) if (ipFamily(a) === undefined) throw new UsageError(`--host-address: ${JSON.stringify(a)} is not an IP address`);
  return {
    signal,
    ...(o.relayOnly ? { hostCandidates: false } : o.hostAddress !== undefined && o.hostAddress.length > 0 ? { hostAddresses: o.hostAddress } : {}),
    ...(failureTimeout === undefined ? {} : { agent: { failureTimeout } }),
  };
}

/**
 * Unless `--no-punch` (or `--relay-only`): learns this side's NAT mapping and port allocation
 * with a quick probe (at most 1 s) of the rendezvous service's STUN server, so birthday punching
 * runs where it helps (one side endpoint-dependent, the other not).
 */
export async function punchOptions(o: PeerCommandOptions, rv: RendezvousClient, signal: AbortSignal): Promise<LearnedPunchOptions | undefined> {
  if (o.punch === false || o.relayOnly === true) return undefined;
  const v4 = o.hostAddress?.find((a) => ipFamily(a) === 'IPv4');
  return learnPunchOptions(rv.iceServers, { signal, ...(v4 === undefined ? {} : { localAddress: v4 }) });
}

/** This side's NAT as the probe saw it, for JSON output. */
export function natJson(p: LearnedPunchOptions | undefined): { mapping: string | null; ports: string | null; probeMs: number | null } | null {
  return p === undefined ? null : { mapping: p.mapping, ports: p.probe?.portAllocation ?? null, probeMs: p.probe?.durationMs ?? null };
}

/**
 * Waits while a relayed connection may still get its direct path, so the path printed is the
 * one the connection settles on: at most `checksMs` (2 s) for ordinary ICE checks still in
 * flight, the punching budget (up to 8 s) while birthday punching runs, and 2 s after a punch
 * hit for the agent to validate and select the punched pair. Not at all when a direct path is
 * hopeless: both NATs are symmetric (punch role `relay`), or UDP to the STUN server got no
 * answer at all.
 */
export async function settlePath(conn: IceConnection, punch: LearnedPunchOptions | undefined, signal: AbortSignal, checksMs = 2000): Promise<void> {
  if (conn.punch?.role === 'relay' || punch?.probe?.publicAddress === null) return;
  const start = performance.now();
  let hitAt: number | undefined;
  while (!signal.aborted && !conn.closed && conn.path?.path !== 'direct' && conn.upgrading) {
    const p = conn.punch;
    const punching = p !== undefined && p.started && p.outcome === undefined;
    if (p?.outcome === 'hit') hitAt ??= performance.now();
    const limit = punching ? 8000 : hitAt !== undefined ? hitAt - start + 2000 : checksMs;
    if (performance.now() - start > limit) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Registers with the rendezvous service; failures become a message and an exit code. */
export async function openRendezvous(o: PeerCommandOptions, identity: LoadedIdentity, io: Io, signal: AbortSignal, command: string): Promise<RendezvousClient | number> {
  try {
    return await RendezvousClient.connect({ url: o.rendezvous, identity, signal });
  } catch (e) {
    if (!(e instanceof StunClientError) || e.code === 'ABORTED') throw e;
    if (e.code === 'BAD_ADDRESS') throw new UsageError(`--rendezvous: ${e.message}`);
    io.stderr.write(`nat ${command}: ${e.message}\n`);
    return e.code === 'SOCKET' || e.code === 'TIMEOUT' ? ExitCode.NoAnswer : ExitCode.Failure;
  }
}

/** An endpoint as JSON: `{ type, address: "ip:port" }`. */
export function endpointJson(e: ConnectionEndpoint): { type: string; address: string } {
  return { type: e.type, address: formatTransportAddress(e.address) };
}

/** A path in words: `direct (host 10.0.0.2:5000 -> srflx 203.0.113.7:6000)`. */
export function describePath(p: ConnectionPath): string {
  const end = (e: ConnectionEndpoint): string => `${e.type} ${formatTransportAddress(e.address)}`;
  return `${p.path} (${end(p.localCandidate)} -> ${end(p.remoteCandidate)})`;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/**
 * `nat ping PEER_ID`: connects to a peer through the rendezvous service, prints the path taken
 * (direct or relay, candidate types), the time to connect and RTT samples of pings the peer's
 * `nat listen` answers.
 */
export async function pingCommand(peerId: string, o: PingCommandOptions, io: Io, signal: AbortSignal): Promise<number> {
  if (!PeerId.safeParse(peerId).success) throw new UsageError(`${JSON.stringify(peerId)} is not a peer id (nat listen prints it)`);
  const options = connectionOptions(o, signal, o.timeout);
  const identity = await loadIdentity(o.identity);
  const rv = await openRendezvous(o, identity, io, signal, 'ping');
  if (typeof rv === 'number') return rv;
  try {
    const punch = await punchOptions(o, rv, signal);
    // connectMs counts from here: the NAT probe is a once-per-process cost (`nat.probeMs`).
    const started = performance.now();
    let conn;
    try {
      conn = await connectPeer(rv, peerId, { ...options, ...(punch === undefined ? {} : { punch }) });
    } catch (e) {
      if (!(e instanceof StunClientError) || e.code === 'ABORTED') throw e;
      const offline = e.code === 'ERROR_RESPONSE' && (e.reason === 'peer-offline' || e.reason === 'unknown-peer');
      const silent = e.code === 'TIMEOUT' && e.reason === 'no-remote-candidates';
      if (o.json) io.stdout.write(`${JSON.stringify({ peer: peerId, error: e.reason ?? e.code, message: e.message })}\n`);
      io.stderr.write(`nat ping: ${offline ? `peer ${peerId} is not connected to the rendezvous (${e.reason})` : silent ? `peer ${peerId} did not answer` : e.message}\n`);
      return offline || silent ? ExitCode.NoAnswer : ExitCode.Failure;
    }
    try {
      const connectMs = round((conn.connectedAt ?? performance.now()) - started);
      const first = conn.path!;
      if (!o.json) io.stdout.write(`connected to ${peerId} in ${connectMs} ms: ${describePath(first)}\n`);
      conn.on('path', (p) => {
        if (!o.json) io.stdout.write(`path changed: ${describePath(p)}\n`);
      });
      const count = o.count ?? 4;
      const interval = o.interval ?? 200;
      const rttMs: number[] = [];
      await settlePath(conn, punch, signal);
      for (let i = 0; i < count && !signal.aborted && !conn.closed; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, interval));
        try {
          const rtt = round(await conn.ping({ signal, timeoutMs: 2000 }));
          rttMs.push(rtt);
          if (!o.json) io.stdout.write(`ping ${i + 1}: ${rtt} ms over ${conn.path?.path ?? first.path}\n`);
        } catch (e) {
          if (e instanceof StunClientError && e.code === 'ABORTED' && signal.aborted) throw e;
          if (!o.json) io.stdout.write(`ping ${i + 1}: no answer\n`);
        }
      }
      const path = conn.path ?? first;
      const directMs = conn.directAt === undefined ? null : round(conn.directAt - started);
      if (o.json) {
        io.stdout.write(`${JSON.stringify({
          peer: peerId,
          path: path.path,
          localCandidate: endpointJson(path.localCandidate),
          remoteCandidate: endpointJson(path.remoteCandidate),
          connectMs,
          directMs,
          rttMs,
          punched: path.punched,
          nat: natJson(punch),
          ...(conn.punch === undefined ? {} : { punch: { role: conn.punch.role ?? null, outcome: conn.punch.outcome ?? null, probesSent: conn.punch.probesSent, socketsOpened: conn.punch.socketsOpened } }),
        })}\n`);
      } else {
        io.stdout.write(`${rttMs.length}/${count} pings answered${directMs === null ? '; no direct path' : `; direct path after ${directMs} ms`}\n`);
        const nat = natJson(punch);
        if (nat !== null) io.stdout.write(`this side's NAT: mapping ${nat.mapping ?? 'unknown'}, ports ${nat.ports ?? 'unknown'} (probed in ${nat.probeMs ?? '-'} ms)\n`);
        const p = conn.punch;
        if (p?.started === true) io.stdout.write(`birthday punching as the ${p.role} side: ${p.outcome ?? 'unfinished'} after ${p.probesSent} probes${p.socketsOpened > 0 ? ` from ${p.socketsOpened} sockets` : ''}\n`);
      }
      return rttMs.length > 0 ? ExitCode.Ok : ExitCode.NoAnswer;
    } finally {
      await conn.close();
    }
  } finally {
    await rv.close();
  }
}
