/**
 * `nat expose` and `nat connect`: TCP over peer links.
 *
 * `nat expose TARGET --name NAME` registers with a rendezvous service, claims NAME (bound to this
 * peer's key, so no other key can take it), and accepts peer links from the peers allowed; each
 * stream a peer opens becomes a TCP connection to TARGET. `nat connect NAME_OR_PEER_ID --listen
 * 127.0.0.1:PORT` opens a local TCP port; each connection to it becomes a stream over one peer
 * link to the exposing peer. Half-closes travel both ways; a link that drops is reopened.
 *
 * Each stream starts with a header from the connecting side, `[1][name length][name]` (an empty
 * name asks for the only service), and one status byte from the exposing side before the bytes
 * of the TCP connection (@nat/protocol's link/tunnel-header.ts).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { type AddressInfo, type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import {
  type ConnectionPath,
  type IceConnection,
  type LoadedIdentity,
  type PeerLink,
  PeerLinkError,
  PortMapper,
  type RendezvousClient,
  RendezvousError,
  acceptPeers,
  connectionDiagnosis,
  connectPeer,
  linkOverConnection,
} from '@nat/client';
import { PeerId, ServiceName, parseTransportAddress } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';
import { type AdmissionFlags, inboundAdmission } from './admission.js';
import { acceptPeersMapped } from './listen.js';
import { pinnedTarget, refusePinned } from './name-pin.js';
import {
  ConnectionPortMap,
  type PeerCommandOptions,
  type PortMapReport,
  closePortMapper,
  connectionOptions,
  describePath,
  describePortMap,
  endpointJson,
  loadIdentity,
  openPortMapper,
  openRendezvous,
  portMapperJson,
  punchOptions,
} from './ping.js';
import { TunnelStatus, encodeTunnelHeader, tunnelHeaderStart, tunnelStatusText } from '@nat/protocol';
import { explainFailure } from './ice-failure.js';
import { RendezvousNodes, rendezvousUrls } from './rendezvous-nodes.js';
import { checkNotSelf, keepRendezvous, rendezvousToken, replacedMessage } from './session.js';
import { RendezvousRenewal } from './tunnel-renew.js';
import { linkProxyHeader, resetTcp, spliceTunnel } from './tunnel-splice.js';

/** The `bye` reason of an exposing peer that refuses a connecting peer's id (no service allows it). */
const NOT_ALLOWED_BYE = 'not allowed';

/** Options shared by `nat expose` and `nat connect`. */
export interface TunnelCommonOptions extends PeerCommandOptions {
  /** `--keepalive MS`: peer link keepalive interval. */
  readonly keepalive?: number;
  /** `--no-direct-streams`: the link's streams stay on the sealed shim route (slower; streams resume across a move on either route). */
  readonly directStreams?: boolean;
}

/** Options of `nat expose`. */
export interface ExposeOptions extends TunnelCommonOptions, AdmissionFlags {
  readonly name?: string;
  readonly allow?: readonly string[];
  readonly allowAny?: boolean;
  /** `--config FILE`: several services (JSON). */
  readonly config?: string;
  /** `--proxy-protocol`: each connection to a target starts with a PROXY v2 header naming the peer link's remote address. */
  readonly proxyProtocol?: boolean;
}

/** Options of `nat connect`. */
export interface ConnectOptions extends TunnelCommonOptions {
  readonly listen: string;
  /** `--service NAME`: with a peer id, which of its services (default: its only one). */
  readonly service?: string;
}

/** One exposed service. */
export interface ExposedService {
  readonly name: string;
  readonly target: { readonly host: string; readonly port: number };
  /** Peer ids allowed; `undefined` with `allowAny`. */
  readonly allow: ReadonlySet<string> | undefined;
}

type Emit = (event: Record<string, unknown>, text: string) => void;

function emitter(o: { json?: boolean }, io: Io): Emit {
  return (event, text) => {
    if (o.json) io.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    else io.stderr.write(`${text}\n`);
  };
}

function parseTarget(text: string, what: string, portZero = false): { host: string; port: number } {
  try {
    const a = parseTransportAddress(text);
    if (a.port === 0 && !portZero) throw new Error('port 0');
    return { host: a.address, port: a.port };
  } catch {
    throw new UsageError(`${what}: ${JSON.stringify(text)} is not IP:PORT (e.g. 127.0.0.1:15441)`);
  }
}

function checkName(name: string, what: string): string {
  if (!ServiceName.safeParse(name).success)
    throw new UsageError(`${what}: ${JSON.stringify(name)} is not a service name (1-63 lower-case letters, digits and inner hyphens)`);
  return name;
}

function checkPeerIds(ids: readonly string[], what: string): Set<string> {
  for (const id of ids)
    if (!PeerId.safeParse(id).success)
      throw new UsageError(`${what}: ${JSON.stringify(id)} is not a peer id (32 lower-case base32 characters, as nat listen/expose print it)`);
  return new Set(ids);
}

/**
 * The services of `nat expose`: from the command line (TARGET, --name, --allow, --allow-any)
 * and/or a JSON config file:
 *
 *     { "rendezvous": "ws://...", "identity": "FILE",
 *       "services": [ { "name": "zeronet", "target": "127.0.0.1:15441", "allow": ["PEER_ID"] },
 *                     { "name": "web", "target": "127.0.0.1:8080", "allowAny": true } ] }
 */
export async function exposeServices(
  target: string | undefined,
  o: ExposeOptions,
): Promise<{ services: ExposedService[]; rendezvous: string | readonly string[] | undefined; identity: string | undefined }> {
  const services: ExposedService[] = [];
  let rendezvous: string | readonly string[] | undefined;
  let identity: string | undefined;
  if (o.config !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(o.config, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${o.config}: ${(e as Error).message}`);
    }
    const bad = (why: string): never => {
      throw new UsageError(`--config ${o.config}: ${why}`);
    };
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('expected a JSON object with "services"');
    const c = raw as Record<string, unknown>;
    for (const k of Object.keys(c)) if (!['rendezvous', 'identity', 'services'].includes(k)) bad(`unknown key ${JSON.stringify(k)}`);
    const rv = c['rendezvous'];
    if (rv !== undefined && typeof rv !== 'string' && !(Array.isArray(rv) && rv.length > 0 && rv.every((u) => typeof u === 'string')))
      bad('"rendezvous" must be a URL string, or an array of them (several nodes)');
    if (c['identity'] !== undefined && typeof c['identity'] !== 'string') bad('"identity" must be a file name');
    rendezvous = rv as string | string[] | undefined;
    identity = c['identity'] as string | undefined;
    if (!Array.isArray(c['services']) || c['services'].length === 0) bad('"services" must be a non-empty array');
    for (const [i, s] of (c['services'] as unknown[]).entries()) {
      if (typeof s !== 'object' || s === null) bad(`services[${i}] must be an object`);
      const e = s as Record<string, unknown>;
      for (const k of Object.keys(e)) if (!['name', 'target', 'allow', 'allowAny'].includes(k)) bad(`services[${i}]: unknown key ${JSON.stringify(k)}`);
      if (typeof e['name'] !== 'string' || typeof e['target'] !== 'string') bad(`services[${i}] needs "name" and "target" strings`);
      const allow = e['allow'] ?? [];
      if (!Array.isArray(allow) || allow.some((a) => typeof a !== 'string')) bad(`services[${i}].allow must be an array of peer ids`);
      if (e['allowAny'] !== undefined && typeof e['allowAny'] !== 'boolean') bad(`services[${i}].allowAny must be true or false`);
      const allowAny = e['allowAny'] === true;
      if (!allowAny && (allow as string[]).length === 0) bad(`services[${i}] allows nobody: give "allow": [PEER_ID, ...] or "allowAny": true`);
      services.push({
        name: checkName(e['name'] as string, `services[${i}].name`),
        target: parseTarget(e['target'] as string, `services[${i}].target`),
        allow: allowAny ? undefined : checkPeerIds(allow as string[], `services[${i}].allow`),
      });
    }
  }
  if (target !== undefined) {
    if (o.name === undefined) throw new UsageError('--name NAME is required with TARGET (the name peers connect to)');
    const allow = o.allow ?? [];
    if (!o.allowAny && allow.length === 0)
      throw new UsageError('say who may connect: --allow PEER_ID (repeatable) or --allow-any (every peer of the rendezvous service)');
    services.push({ name: checkName(o.name, '--name'), target: parseTarget(target, 'TARGET'), allow: o.allowAny ? undefined : checkPeerIds(allow, '--allow') });
  } else if (o.config === undefined) {
    throw new UsageError('give TARGET (IP:PORT) with --name, or --config FILE');
  }
  const names = new Set<string>();
  for (const s of services) {
    if (names.has(s.name)) throw new UsageError(`the name ${s.name} is given twice`);
    names.add(s.name);
  }
  return { services, rendezvous, identity };
}

/** Reads exactly `n` bytes from a readable stream (or undefined when it ends first). */
function readExactly(s: Readable, n: number, signal?: AbortSignal): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const done = (v: Buffer | undefined): void => {
      s.off('readable', tryRead);
      s.off('end', onEnd);
      s.off('close', onEnd);
      signal?.removeEventListener('abort', onEnd);
      resolve(v);
    };
    const onEnd = (): void => done(undefined);
    const tryRead = (): void => {
      const b = s.read(n) as Buffer | null;
      if (b !== null) done(b);
    };
    s.on('readable', tryRead);
    s.once('end', onEnd);
    s.once('close', onEnd);
    signal?.addEventListener('abort', onEnd, { once: true });
    tryRead();
  });
}

function linkOptions(identity: LoadedIdentity, o: TunnelCommonOptions) {
  return { identity, ...(o.keepalive === undefined ? {} : { keepaliveMs: o.keepalive }), ...(o.directStreams === false ? { directRoute: false } : {}) };
}

/** Waits `ms`, or less when `signal` fires. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> => delay(ms, undefined, { signal }).catch(() => {});

/** `--port-map` in words, for the first lines of human output; undefined without it. */
function describePortMapper(mapper: PortMapper | PortMapReport | undefined): string | undefined {
  if (mapper === undefined) return undefined;
  if (mapper instanceof PortMapper) return `port mapping: each peer link's ports are mapped on ${mapper.gateway} and unmapped when the link ends`;
  return `port mapping: ${describePortMap(mapper)}`;
}

const portMapEvent = (peer: string, r: PortMapReport, sessionId?: string): Record<string, unknown> => ({
  event: 'port-mapping',
  peer,
  ...(sessionId === undefined ? {} : { sessionId }),
  portMapping: r,
});

/** The link's route, for people. */
const describeRoute = (route: 'direct' | 'shim'): string =>
  route === 'direct'
    ? 'streams run directly on the path (udx on the ICE socket)'
    : 'streams go through the link shim (each packet sealed and carried by the path)';

const pathEvent = (peer: string, p: ConnectionPath): Record<string, unknown> => ({
  event: 'path',
  peer,
  path: p.path,
  ...(p.punched ? { punched: true } : {}),
  ...(p.restarting === true ? { restarting: true } : {}),
  localCandidate: endpointJson(p.localCandidate),
  remoteCandidate: endpointJson(p.remoteCandidate),
});

/** A path event for people: a new path, or an ICE restart starting (the host's address or its NAT mapping changed). */
const pathText = (p: ConnectionPath, changed = 'path'): string =>
  p.restarting === true ? `ICE restart: looking for a new path (the one in use: ${describePath(p)})` : `${changed} ${describePath(p)}`;

// ---------------------------------------------------------------------------------------------
// nat expose

/**
 * `nat expose`: claims the names, accepts links from allowed peers, and connects each stream to
 * its service's target. Runs until `signal` (Ctrl-C); reconnects to the rendezvous service when
 * it drops.
 */
export async function exposeCommand(target: string | undefined, o: ExposeOptions, io: Io, signal: AbortSignal): Promise<number> {
  const { services, rendezvous, identity: identityFile } = await exposeServices(target, o);
  const urls = rendezvousUrls(o.rendezvous ?? rendezvous);
  if (urls.length === 0) throw new UsageError('--rendezvous URL is required (or "rendezvous" in --config)');
  const options = connectionOptions(o, signal);
  const identity = await loadIdentity(o.identity ?? identityFile);
  const emit = emitter(o, io);
  const byName = new Map(services.map((s) => [s.name, s]));
  const allowedSomewhere = (peer: string): boolean => services.some((s) => s.allow === undefined || s.allow.has(peer));
  const admit = inboundAdmission(o, emit, allowedSomewhere);
  const links = new Set<PeerLink>();
  const conns = new Set<IceConnection>();
  /** `--port-map`: opened once, after the first rendezvous connection; each accepted connection maps (and, when it ends, unmaps) its own ports. */
  let mapper: PortMapper | PortMapReport | undefined;

  const handleStream = async (link: PeerLink, stream: Duplex, conn: IceConnection): Promise<void> => {
    stream.on('error', () => {});
    const head = await readExactly(stream, 2, signal);
    const answer = (status: number): void => {
      stream.end(Buffer.from([status]));
    };
    if (head === undefined) return void stream.destroy();
    const start = tunnelHeaderStart(head);
    if ('refuse' in start) return answer(start.refuse);
    const nameBytes = start.nameLength === 0 ? Buffer.alloc(0) : await readExactly(stream, start.nameLength, signal);
    if (nameBytes === undefined) return void stream.destroy();
    const name = nameBytes.toString('utf8');
    const service = name === '' ? (services.length === 1 ? services[0] : undefined) : byName.get(name);
    if (service === undefined) {
      emit(
        { event: 'refused', peer: link.remotePeerId, service: name, reason: 'unknown-service' },
        `${link.remotePeerId} asked for an unknown service ${JSON.stringify(name)}`,
      );
      return answer(TunnelStatus.UnknownService);
    }
    if (service.allow !== undefined && !service.allow.has(link.remotePeerId)) {
      emit(
        { event: 'refused', peer: link.remotePeerId, service: service.name, reason: 'not-allowed' },
        `${link.remotePeerId} is not allowed to use ${service.name}`,
      );
      return answer(TunnelStatus.NotAllowed);
    }
    const tcp = tcpConnect({ host: service.target.host, port: service.target.port, allowHalfOpen: true });
    tcp.setNoDelay(true);
    let connected = false;
    tcp.once('error', (e) => {
      if (connected) return;
      emit(
        { event: 'target-error', service: service.name, error: e.message },
        `${service.name}: cannot reach ${service.target.host}:${service.target.port}: ${e.message}`,
      );
      answer(TunnelStatus.TargetUnreachable);
    });
    tcp.once('connect', () => {
      connected = true;
      if (o.proxyProtocol === true) tcp.write(linkProxyHeader(conn.path));
      stream.write(Buffer.from([TunnelStatus.Ok]));
      spliceTunnel(tcp, stream, link, emit, link.remotePeerId);
    });
  };

  const onConnection = (conn: IceConnection): void => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    const peer = conn.peerId; // allowed: admission refused the others before opening anything
    conn.on('path', (p) => emit(pathEvent(peer, p), `${peer}: ${pathText(p)}`));
    void (async () => {
      try {
        // listen for the initiator's first handshake message at once, not after our own pair selection
        const link = await linkOverConnection(conn, { ...linkOptions(identity, o), allow: allowedSomewhere, signal });
        links.add(link);
        emit({ event: 'link', peer, route: link.stats.route }, `${peer}: peer link up (Noise XX, key verified)`);
        link.on('route', (route) => emit({ event: 'route', peer, route }, `${peer}: ${describeRoute(route)}`));
        link.on('stream', (s) => void handleStream(link, s, conn));
        link.on('close', (e) => {
          links.delete(link);
          emit({ event: 'link-closed', peer, reason: e?.message ?? 'closed' }, `${peer}: peer link closed${e === undefined ? '' : `: ${e.message}`}`);
          void conn.close('link closed');
        });
      } catch (e) {
        if (signal.aborted) return;
        // the connection never got a path: what ICE observed says why
        const d = conn.closed && conn.path === undefined ? conn.diagnosis : undefined;
        emit(
          { event: 'link-failed', peer, error: (e as Error).message, ...(d === undefined ? {} : { diagnosis: d }) },
          explainFailure(`${peer}: ${(e as Error).message}`, d).trimEnd(),
        );
        void conn.close('link failed');
      }
    })();
  };

  const renewal = new RendezvousRenewal();
  const accept = (rv: RendezvousClient, punch: Awaited<ReturnType<typeof punchOptions>>): (() => void) => {
    const acceptOptions = { ...options, ...admit, renewRendezvous: renewal.renew, ...(punch === undefined ? {} : { punch }) };
    if (!(mapper instanceof PortMapper)) return acceptPeers(rv, onConnection, acceptOptions);
    const onReport = (peer: string, sessionId: string, r: PortMapReport): void =>
      emit(portMapEvent(peer, r, sessionId), `${peer}: port mapping ${describePortMap(r)}`);
    return acceptPeersMapped(rv, mapper, onConnection, onReport, acceptOptions);
  };

  const onRegistered = async (rv: RendezvousClient, first: boolean): Promise<(() => void) | number> => {
    try {
      for (const s of services) await rv.claimName(s.name);
    } catch (e) {
      if (!(e instanceof RendezvousError && e.code === 'name-taken')) throw e;
      io.stderr.write(`nat expose: ${e.message}\n(the name is bound to another peer's key; choose another --name)\n`);
      return ExitCode.Failure;
    }
    renewal.registered(rv);
    if (first) mapper = await openPortMapper(o);
    const stop = accept(rv, await punchOptions(o, rv, signal).catch(() => undefined));
    if (!first) return stop;
    const portMapping = portMapperJson(mapper);
    if (o.json)
      emit(
        {
          event: 'ready',
          id: rv.id,
          rendezvous: RendezvousNodes.describe(rv),
          services: services.map((s) => ({ name: s.name, target: `${s.target.host}:${s.target.port}`, allow: s.allow === undefined ? 'any' : [...s.allow] })),
          ...(portMapping === null ? {} : { portMapping }),
        },
        '',
      );
    else {
      io.stdout.write(`${rv.id}\n`);
      const summary = services.map((s) => `${s.name} -> ${s.target.host}:${s.target.port}`).join(', ');
      io.stderr.write(
        `exposing ${summary} as peer ${rv.id} on ${RendezvousNodes.describe(rv)}${identity.created ? ` (new identity ${identity.path})` : ''}; Ctrl-C stops\n`,
      );
      const pm = describePortMapper(mapper);
      if (pm !== undefined) io.stderr.write(`${pm}\n`);
    }
    return stop;
  };

  try {
    return await keepRendezvous({
      urls,
      token: rendezvousToken(o.rendezvousToken),
      identity,
      command: 'expose',
      io,
      signal,
      emit,
      keeps: 'open links',
      reconnected: 'rendezvous reconnected; names claimed again',
      onRegistered,
      renewal: renewal.wanted,
    });
  } finally {
    for (const l of links) l.close();
    await Promise.all([...conns].map((c) => c.close('expose stopped')));
    // Always: a live mapping's renewal timer would keep the process alive, and the router would keep the port open.
    await closePortMapper(mapper, io, 'expose');
  }
}

// ---------------------------------------------------------------------------------------------
// nat connect

/**
 * `nat connect`: resolves the name (NAME@PEER_ID: refused unless PEER_ID owns it) or takes the peer id, listens on `--listen`, carries
 * each TCP connection as a stream over one peer link, and reopens the link when it drops.
 */
export async function connectCommand(arg: string, o: ConnectOptions, io: Io, signal: AbortSignal): Promise<number> {
  const { nameOrPeer, pin } = pinnedTarget(arg);
  const isPeerId = PeerId.safeParse(nameOrPeer).success;
  if (!isPeerId) checkName(nameOrPeer, 'NAME_OR_PEER_ID');
  const service = o.service !== undefined ? checkName(o.service, '--service') : isPeerId ? '' : nameOrPeer;
  const listen = parseTarget(o.listen, '--listen', true);
  const options = connectionOptions(o, signal);
  const identity = await loadIdentity(o.identity);
  if (isPeerId) checkNotSelf(nameOrPeer, identity, 'connect');
  const emit = emitter(o, io);
  const header = encodeTunnelHeader(service);

  const nodes = await RendezvousNodes.resolve(rendezvousUrls(o.rendezvous), signal);
  const opened = await openRendezvous(o, identity, io, signal, 'connect', nodes);
  if (typeof opened === 'number') return opened;
  let rv = opened;
  let peerId = nameOrPeer;
  if (!isPeerId) {
    try {
      peerId = (await rv.resolveName(nameOrPeer)).peerId;
    } catch (e) {
      await rv.close();
      if (e instanceof RendezvousError && e.code === 'unknown-name') {
        io.stderr.write(`nat connect: nobody exposes the name ${nameOrPeer} on ${RendezvousNodes.describe(rv)} (check the name, or run nat expose first)\n`);
        return ExitCode.NoAnswer;
      }
      throw e;
    }
    if (pin !== undefined && peerId !== pin) return refusePinned(rv, io, { name: nameOrPeer, resolved: peerId, pin, rendezvous: RendezvousNodes.describe(rv) });
    if (peerId === rv.id) await rv.close(); // a nat expose with this same identity: registering replaced it
    checkNotSelf(peerId, identity, 'connect', `the name ${nameOrPeer} is exposed by peer ${peerId}, which`);
  }

  let link: PeerLink | undefined;
  let conn: IceConnection | undefined;
  /** `--port-map`: one mapper for the process; each connection (one per link attempt) maps its own ports and unmaps them when it closes. */
  let mapper: PortMapper | PortMapReport | undefined;
  let linkWaiters: Array<(l: PeerLink | undefined) => void> = [];
  const sockets = new Set<Socket>();
  let server: Server | undefined;

  /** An ICE restart (the host's address changed) signals through a new rendezvous connection: the old one may have died with the address. */
  const retired = new WeakSet<RendezvousClient>();
  const renewRendezvous = async (): Promise<RendezvousClient> => {
    retired.add(rv); // the new registration replaces it: that is no reason to stop
    void rv.close(); // without waiting: a dead connection takes 2 s to give up
    rv = await nodes.connect({ identity, signal, token: rendezvousToken(o.rendezvousToken) });
    return rv;
  };
  const openOnce = async (): Promise<PeerLink> => {
    if (rv.replaced) throw new RendezvousError('replaced', replacedMessage('connect', identity));
    if (rv.closeInfo !== undefined) {
      // its node went away (or dropped it): with several nodes, the next one first
      if (!retired.has(rv)) nodes.dropped(rv);
      rv = await nodes.connect({ identity, signal, token: rendezvousToken(o.rendezvousToken) });
    }
    const punch = await punchOptions(o, rv, signal).catch(() => undefined);
    const peer = peerId;
    const pm =
      mapper instanceof PortMapper ? new ConnectionPortMap(mapper, (r) => emit(portMapEvent(peer, r), `port mapping: ${describePortMap(r)}`)) : undefined;
    let c: IceConnection;
    try {
      c = await connectPeer(rv, peerId, {
        ...options,
        renewRendezvous: renewRendezvous,
        ...(punch === undefined ? {} : { punch }),
        ...(pm === undefined ? {} : { mappedAddress: pm.mappedAddress }),
      });
    } catch (e) {
      await pm?.release();
      throw e;
    }
    // The link lives on this connection: when it closes (link lost, link failed, stopped), so do its mappings.
    if (pm !== undefined) c.on('close', () => void pm.release());
    conn = c;
    emit({ ...pathEvent(peer, c.path!), event: 'path' }, `path: ${describePath(c.path!)}`);
    c.on('path', (p) => emit(pathEvent(peer, p), pathText(p, 'path changed:')));
    try {
      return await linkOverConnection(c, { ...linkOptions(identity, o), signal });
    } catch (e) {
      await c.close('link failed');
      throw e;
    }
  };

  const handle = async (tcp: Socket): Promise<void> => {
    sockets.add(tcp);
    tcp.on('close', () => sockets.delete(tcp));
    tcp.on('error', () => {});
    tcp.setNoDelay(true);
    tcp.pause();
    const l = link ?? (await new Promise<PeerLink | undefined>((resolve) => linkWaiters.push(resolve)));
    if (l === undefined || tcp.destroyed) return resetTcp(tcp);
    let stream: Duplex;
    try {
      stream = await l.openStream();
    } catch {
      return resetTcp(tcp);
    }
    stream.on('error', () => {});
    stream.write(header);
    const status = await readExactly(stream, 1, signal);
    if (status === undefined || status[0] !== TunnelStatus.Ok) {
      const why = status === undefined ? 'the stream closed before the peer answered' : tunnelStatusText(status[0]!);
      emit({ event: 'stream-refused', reason: why }, `a connection was refused: ${why}`);
      stream.destroy();
      return resetTcp(tcp);
    }
    spliceTunnel(tcp, stream, l, emit, peerId);
    tcp.resume();
  };

  try {
    mapper = await openPortMapper(o);
    // the local port opens at once; connections wait for the link
    server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => void handle(s));
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(listen.port, listen.host, () => resolve());
    }).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`--listen ${o.listen}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`);
    });
    const bound = server.address() as AddressInfo;
    const where = `${bound.address}:${bound.port}`;
    const what = isPeerId ? peerId : `${nameOrPeer} (peer ${peerId})`;
    const portMapping = portMapperJson(mapper);
    if (o.json)
      emit({ event: 'listening', listen: where, peer: peerId, service: service || null, id: rv.id, ...(portMapping === null ? {} : { portMapping }) }, '');
    else {
      io.stdout.write(`${where}\n`);
      io.stderr.write(`listening on ${where} -> ${what}; this peer is ${rv.id}; Ctrl-C stops\n`);
      const pm = describePortMapper(mapper);
      if (pm !== undefined) io.stderr.write(`${pm}\n`);
    }

    let attempt = 0;
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        link = await openOnce();
      } catch (e) {
        if (signal.aborted) break;
        const message = e instanceof Error ? e.message : String(e);
        if (e instanceof RendezvousError && e.code === 'replaced') {
          io.stderr.write(message);
          return ExitCode.Failure;
        }
        if (attempt === 0) {
          const diagnosis = connectionDiagnosis(e);
          // the --allow list is named only when the other side said it refused this peer
          const refused = diagnosis?.peerBye === NOT_ALLOWED_BYE;
          io.stderr.write(
            `${explainFailure(`nat connect: could not open a peer link to ${what}: ${message}`, diagnosis)}${refused ? `(the other side refused this peer, ${rv.id}: is it in the other side's --allow list?)\n` : ''}`,
          );
          return refused || (e instanceof PeerLinkError && e.code === 'REFUSED') ? ExitCode.Failure : ExitCode.NoAnswer;
        }
        emit({ event: 'reconnect-failed', error: message, retryMs: backoff }, `reconnecting failed (${message}); next try in ${backoff / 1000} s`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
        continue;
      }
      backoff = 1000;
      emit(
        { event: attempt === 0 ? 'link' : 'reconnected', peer: peerId, route: link.stats.route },
        attempt === 0 ? `peer link up to ${what} (Noise XX, key verified)` : `peer link reopened to ${what}`,
      );
      link.on('route', (route) => emit({ event: 'route', peer: peerId, route }, describeRoute(route)));
      attempt++;
      const waiters = linkWaiters;
      linkWaiters = [];
      for (const w of waiters) w(link);
      const current = link;
      const registration = rv;
      const why = await new Promise<PeerLinkError | 'replaced' | undefined>((resolve) => {
        if (signal.aborted) return resolve(undefined);
        signal.addEventListener('abort', () => resolve(undefined), { once: true });
        current.once('close', resolve);
        void registration.closed.then(() => registration.replaced && !retired.has(registration) && resolve('replaced'));
      });
      if (why === 'replaced') {
        io.stderr.write(replacedMessage('connect', identity));
        return ExitCode.Failure;
      }
      link = undefined;
      current.close();
      await conn?.close('link closed');
      if (signal.aborted) break;
      emit({ event: 'link-lost', reason: why?.message ?? 'closed' }, `peer link lost (${why?.message ?? 'closed'}); reconnecting`);
    }
    return ExitCode.Ok;
  } finally {
    for (const w of linkWaiters) w(undefined);
    link?.close();
    await conn?.close('connect stopped');
    for (const s of sockets) resetTcp(s);
    server?.close();
    // Always: a live mapping's renewal timer would keep the process alive, and the router would keep the port open.
    await closePortMapper(mapper, io, 'connect');
    await rv.close();
  }
}
