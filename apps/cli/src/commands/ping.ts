import {
  type ConnectionEndpoint,
  type ConnectionPath,
  type IceConnection,
  type IceConnectionOptions,
  NatClientError,
  connectionDiagnosis,
  type LearnedPunchOptions,
  type LoadedIdentity,
  PortMapError,
  PortMapper,
  type PortMapMethod,
  type RendezvousClient,
  type RendezvousIdentity,
  StunClientError,
  connectPeer,
  defaultIdentityPath,
  generateIdentity,
  learnPunchOptions,
  loadOrCreateIdentity,
  mappedAddressSource,
  peerIdOf,
} from '@nat/client';
import { PeerId, type TransportAddress, formatTransportAddress, ipFamily } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';
import { explainFailure, hints } from './ice-failure.js';
import { RendezvousNodes, rendezvousUrls } from './rendezvous-nodes.js';
import { type SessionIdentity, checkNotSelf, rendezvousToken } from './session.js';

/** Options shared by `nat ping` and `nat listen`. */
export interface PeerCommandOptions {
  /** `--rendezvous URL` (repeatable, comma-separated): the rendezvous nodes; one URL as a string works too. */
  readonly rendezvous: string | readonly string[];
  /** `--rendezvous-token TOKEN`: the invite token of a rendezvous that needs one (else NAT_RENDEZVOUS_TOKEN). */
  readonly rendezvousToken?: string;
  readonly identity?: string;
  readonly json?: boolean;
  /** `--host-address IP` (repeatable): gather host candidates on exactly these addresses, loopback included. */
  readonly hostAddress?: readonly string[];
  /** `--relay-only`: no host or server-reflexive candidates. */
  readonly relayOnly?: boolean;
  /** `--no-punch` (false): no NAT mapping probe and no birthday punching. Default true. */
  readonly punch?: boolean;
  /** `--port-map [GATEWAY]`: map the host candidates' ports on the router (true: the default gateway). Off by default. */
  readonly portMap?: boolean | string;
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

/**
 * `nat ping`'s identity: the key of `--identity FILE`, else a new key for this run only. `nat
 * listen` answers any peer, so a ping needs no stable id; and a key of its own keeps it from
 * replacing, at the rendezvous, a `nat listen` or `nat expose` of this machine that uses the
 * default identity.
 */
export async function pingIdentity(file: string | undefined): Promise<SessionIdentity> {
  if (file !== undefined) return loadIdentity(file);
  const key = generateIdentity();
  return { ...key, id: peerIdOf(key), path: undefined };
}

/** The connection options the peer commands' flags ask for. */
export function connectionOptions(o: PeerCommandOptions, signal: AbortSignal, failureTimeout?: number): IceConnectionOptions {
  for (const a of o.hostAddress ?? []) if (ipFamily(a) === undefined) throw new UsageError(`--host-address: ${JSON.stringify(a)} is not an IP address`);
  if (typeof o.portMap === 'string' && ipFamily(o.portMap) !== 'IPv4')
    throw new UsageError(`--port-map: ${JSON.stringify(o.portMap)} is not an IPv4 address (the router's; omit it for the default gateway)`);
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
 * hopeless: UDP to the STUN server got no answer at all. Both NATs symmetric (punch role
 * `relay`) is not hopeless: a port mapping on either side (`--port-map`, which this side cannot
 * see on the other) is a server-reflexive candidate that ordinary checks reach, a little after
 * the relayed pair, so those checks get their `checksMs` too.
 */
export async function settlePath(conn: IceConnection, punch: LearnedPunchOptions | undefined, signal: AbortSignal, checksMs = 2000): Promise<void> {
  if (punch?.probe?.publicAddress === null) return;
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

/**
 * Registers with the rendezvous service (with several nodes: a random one, else the next ones);
 * failures become a message and an exit code. `nodes` (resolved here when not given) then holds
 * the node registered with.
 */
export async function openRendezvous(
  o: PeerCommandOptions,
  identity: RendezvousIdentity,
  io: Io,
  signal: AbortSignal,
  command: string,
  nodes?: RendezvousNodes,
): Promise<RendezvousClient | number> {
  try {
    nodes ??= await RendezvousNodes.resolve(rendezvousUrls(o.rendezvous), signal);
    return await nodes.connect({ identity, signal, token: rendezvousToken(o.rendezvousToken) });
  } catch (e) {
    if (!(e instanceof NatClientError) || e.code === 'ABORTED') throw e;
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

/**
 * What `--port-map` reports for one host candidate: the mapping the router granted (a
 * server-reflexive candidate at `externalAddress`), or why there is none (`error`, a
 * {@link PortMapError} code, and `message`).
 */
export interface PortMapReport {
  readonly gateway: string | null;
  readonly method: PortMapMethod | null;
  /** The host candidate's base, `ip:port`. */
  readonly internalAddress: string | null;
  /** The mapped candidate, `ip:port`. */
  readonly externalAddress: string | null;
  readonly error: string | null;
  readonly message: string | null;
}

/** A failure of `--port-map` as a report. */
function portMapFailure(gateway: string | null, base: TransportAddress | undefined, e: PortMapError): PortMapReport {
  return {
    gateway,
    method: null,
    internalAddress: base === undefined ? null : formatTransportAddress(base),
    externalAddress: null,
    error: e.code,
    message: e.message,
  };
}

/** A report in words: `upnp 203.0.113.7:40000 -> 10.0.0.2:40000 (gateway 10.0.0.1)`. */
export function describePortMap(r: PortMapReport): string {
  if (r.error !== null) return `failed${r.gateway === null ? '' : ` (gateway ${r.gateway})`}: ${r.message ?? r.error}`;
  return `${r.method ?? '?'} ${r.externalAddress} -> ${r.internalAddress} (gateway ${r.gateway})`;
}

/**
 * `--port-map [GATEWAY]`: the router's port mapper, or the report of why there is none (no
 * default gateway); undefined without the flag. Opt-in, because it asks the user's real router
 * to open ports.
 */
export async function openPortMapper(o: PeerCommandOptions): Promise<PortMapper | PortMapReport | undefined> {
  if (o.portMap === undefined || o.portMap === false) return undefined;
  const gateway = typeof o.portMap === 'string' ? o.portMap : undefined; // checked by connectionOptions()
  try {
    // Bounded well below the process's life: ICE gathering gives up on a mapping after 5 s,
    // and closing must not hang on a router that stopped answering.
    const mapper = await PortMapper.create({ ...(gateway === undefined ? {} : { gateway }), probeTimeoutMs: 2000, requestTimeoutMs: 5000 });
    // Probe the router now, beside the rendezvous and NAT probes: the first mapping then waits for
    // one request instead of the slowest method's probe (a router without PCP costs its timeout).
    void mapper.probe().catch(() => {});
    return mapper;
  } catch (e) {
    if (e instanceof PortMapError) return portMapFailure(gateway ?? null, undefined, e);
    throw e;
  }
}

/** Lease asked for the mappings of `--port-map`, seconds. */
const MAPPING_LIFETIME_S = 600;

/**
 * The port mappings of one connection: its `mappedAddress` option (each IPv4 host candidate's
 * port mapped on the router, becoming a server-reflexive candidate), the reports of what was
 * mapped or refused, and {@link release} to remove the connection's mappings when it ends (so
 * a long `nat listen` does not pile up mappings on the router).
 */
export class ConnectionPortMap {
  readonly reports: PortMapReport[] = [];
  readonly mappedAddress: (base: TransportAddress) => Promise<TransportAddress | undefined>;
  readonly #mapper: PortMapper;
  readonly #ports = new Set<number>();
  #released = false;

  constructor(mapper: PortMapper, onReport?: (r: PortMapReport) => void) {
    this.#mapper = mapper;
    const report = (r: PortMapReport): void => {
      this.reports.push(r);
      onReport?.(r);
    };
    // 10-minute leases renewed at half-life: what a killed process leaves open closes soon.
    const source = mappedAddressSource(mapper, { lifetime: MAPPING_LIFETIME_S, onError: (base, e) => report(portMapFailure(mapper.gateway, base, e)) });
    this.mappedAddress = async (base) => {
      this.#ports.add(base.port);
      const external = await source(base);
      if (external === undefined) return undefined;
      if (this.#released) {
        await this.release();
        return undefined;
      }
      const m = this.#mine().find((x) => x.grant.internalPort === base.port && x.grant.internalAddress === base.address);
      report({
        gateway: mapper.gateway,
        method: m?.grant.method ?? null,
        internalAddress: formatTransportAddress(base),
        externalAddress: formatTransportAddress(external),
        error: null,
        message: null,
      });
      return external;
    };
  }

  /** The first mapping made, else the first failure, else undefined (none tried or finished yet). */
  get summary(): PortMapReport | undefined {
    return this.reports.find((r) => r.error === null) ?? this.reports[0];
  }

  #mine(): ReturnType<PortMapper['mappings']> {
    return this.#mapper.mappings().filter((m) => m.request.protocol === 'udp' && this.#ports.has(m.grant.internalPort));
  }

  /** Removes this connection's mappings (and any that completes later). */
  async release(): Promise<void> {
    this.#released = true;
    await Promise.all(this.#mine().map((m) => m.remove().catch(() => {})));
  }
}

/**
 * `portMapping` of a long-running command's first status line: null without `--port-map`,
 * `{ gateway }` when each connection's ports will be mapped on that router, or why none will be.
 */
export function portMapperJson(mapper: PortMapper | PortMapReport | undefined): { gateway: string } | PortMapReport | null {
  return mapper === undefined ? null : mapper instanceof PortMapper ? { gateway: mapper.gateway } : mapper;
}

/** Closes the mapper of `--port-map` (removing every mapping it made); a failure is a warning. */
export async function closePortMapper(mapper: PortMapper | PortMapReport | undefined, io: Io, command: string): Promise<void> {
  if (!(mapper instanceof PortMapper)) return;
  try {
    await mapper.close();
  } catch (e) {
    io.stderr.write(`nat ${command}: could not remove a port mapping on ${mapper.gateway}: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/**
 * `nat ping PEER_ID`: connects to a peer through the rendezvous service, prints the path taken
 * (direct or relay, candidate types), the time to connect and RTT samples of pings the peer's
 * `nat listen` answers.
 */
export async function pingCommand(peerId: string, o: PingCommandOptions, io: Io, signal: AbortSignal): Promise<number> {
  if (!PeerId.safeParse(peerId).success) throw new UsageError(`${JSON.stringify(peerId)} is not a peer id (nat listen prints it)`);
  const options = connectionOptions(o, signal, o.timeout);
  const identity = await pingIdentity(o.identity);
  checkNotSelf(peerId, identity, 'ping');
  const rv = await openRendezvous(o, identity, io, signal, 'ping');
  if (typeof rv === 'number') return rv;
  let mapper: PortMapper | PortMapReport | undefined;
  try {
    mapper = await openPortMapper(o);
    const portMap = mapper instanceof PortMapper ? new ConnectionPortMap(mapper) : undefined;
    /** `portMapping` of the JSON output: null without --port-map. */
    const portMapping = (): PortMapReport | null =>
      mapper === undefined
        ? null
        : !(mapper instanceof PortMapper)
          ? mapper
          : (portMap?.summary ?? {
              gateway: mapper.gateway,
              method: null,
              internalAddress: null,
              externalAddress: null,
              error: 'PENDING',
              message: 'the router had not answered yet',
            });
    const punch = await punchOptions(o, rv, signal);
    // connectMs counts from here: the NAT probe is a once-per-process cost (`nat.probeMs`).
    const started = performance.now();
    let conn;
    try {
      conn = await connectPeer(rv, peerId, {
        ...options,
        ...(punch === undefined ? {} : { punch }),
        ...(portMap === undefined ? {} : { mappedAddress: portMap.mappedAddress }),
      });
    } catch (e) {
      if (!(e instanceof NatClientError) || e.code === 'ABORTED') throw e;
      const offline = e.code === 'peer-offline' || e.code === 'unknown-peer'; // a RendezvousError
      const silent = e.code === 'no-remote-candidates'; // an IceError
      const diagnosis = connectionDiagnosis(e);
      if (o.json)
        io.stdout.write(
          `${JSON.stringify({ peer: peerId, error: e.code, message: e.message, ...(mapper === undefined ? {} : { portMapping: portMapping() }), ...(diagnosis === undefined ? {} : { diagnosis, hints: hints(diagnosis) }) })}\n`,
        );
      io.stderr.write(
        explainFailure(
          `nat ping: ${offline ? `peer ${peerId} is not connected to the rendezvous (${e.code})` : silent ? `peer ${peerId} did not answer` : e.message}`,
          offline ? undefined : diagnosis,
        ),
      );
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
        io.stdout.write(
          `${JSON.stringify({
            peer: peerId,
            path: path.path,
            localCandidate: endpointJson(path.localCandidate),
            remoteCandidate: endpointJson(path.remoteCandidate),
            connectMs,
            directMs,
            rttMs,
            punched: path.punched,
            nat: natJson(punch),
            portMapping: portMapping(),
            ...(conn.punch === undefined
              ? {}
              : {
                  punch: {
                    ...{ role: conn.punch.role ?? null, outcome: conn.punch.outcome ?? null },
                    ...{ probesSent: conn.punch.probesSent, socketsOpened: conn.punch.socketsOpened },
                    ...(conn.punch.learned === undefined ? {} : { learned: conn.punch.learned }),
                  },
                }),
          })}\n`,
        );
      } else {
        io.stdout.write(`${rttMs.length}/${count} pings answered${directMs === null ? '; no direct path' : `; direct path after ${directMs} ms`}\n`);
        const nat = natJson(punch);
        if (nat !== null)
          io.stdout.write(`this side's NAT: mapping ${nat.mapping ?? 'unknown'}, ports ${nat.ports ?? 'unknown'} (probed in ${nat.probeMs ?? '-'} ms)\n`);
        const p = conn.punch;
        if (p?.started === true)
          io.stdout.write(
            `birthday punching as the ${p.role} side: ${p.outcome ?? 'unfinished'} after ${p.probesSent} probes${p.socketsOpened > 0 ? ` from ${p.socketsOpened} sockets` : ''}${p.learned === undefined ? '' : ` (mapping learned from the checks: ${p.learned})`}\n`,
          );
        const pm = portMapping();
        if (pm !== null) io.stdout.write(`port mapping: ${describePortMap(pm)}\n`);
      }
      return rttMs.length > 0 ? ExitCode.Ok : ExitCode.NoAnswer;
    } finally {
      await conn.close();
    }
  } finally {
    // Always: a live mapping's renewal timer would keep the process alive, and the router would keep the port open.
    await closePortMapper(mapper, io, 'ping');
    await rv.close();
  }
}
