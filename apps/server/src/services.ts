/**
 * The services of a nat-server configuration, each started from its config keys: the
 * rendezvous (with TURN credentials for peers when it can make them), the expose service on
 * its HTTP server, and the admin listener.
 */
import {
  type AdminServer,
  DEFAULT_EXPOSE_LIMITS,
  DEFAULT_RENDEZVOUS_LIMITS,
  type ExposeCluster,
  type ExposeHandle,
  type ServerEventSink,
  type RelayScope,
  type ServerMetrics,
  type StatusView,
  type StunServer,
  type TurnAuthenticator,
  attachExpose,
  parsePortRange,
  startAdminServer,
  startRendezvous,
} from '@nat/server';
import { networkInterfaces } from 'node:os';
import type { TransportAddress } from '@nat/protocol';
import type { Logger } from 'pino';
import { type RedisRendezvousCluster, redactRedisUrl } from '@nat/redis';
import { readAdminToken } from './check-config.js';
import { closingWith, startExposeClusterOf } from './cluster/expose.js';
import { type ServerConfig, authenticatorOf } from './config.js';
import { advertisedIp, externalOf } from './external-ip.js';
import type { SwappableAuthenticator } from './reload.js';

/** Where the server writes what it tells people (stderr) and scripts (stdout). */
export type Out = { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream };

/**
 * The warning printed when the rendezvous service can hand peers no TURN relay (no time-limited
 * credentials can be made), or undefined when it can. Names the flags that fix it; never the secret.
 */
export function noRelayWarning(config: ServerConfig): string | undefined {
  if (config.realm !== undefined && config.authSecrets.length > 0) return undefined;
  const why =
    config.realm === undefined
      ? 'TURN is off (no --realm)'
      : 'it hands out time-limited TURN credentials only, made with a REST API secret, and no --auth-secret was given (--user and --users-file users are not handed out)';
  return (
    `warning: the rendezvous service will offer peers no TURN relay: ${why}. ` +
    'Peers that cannot reach each other directly then have no relay to fall back on. ' +
    `To offer one, start with ${config.realm === undefined ? '--realm REALM ' : ''}--auth-secret SECRET.`
  );
}

export type Rendezvous = Awaited<ReturnType<typeof startRendezvous>>;

/** The rendezvous service of a configuration, with TURN credentials for peers when it can make them. */
/** What every service of a nat-server shares: its log, where it tells people what it serves, its event hub. */
export interface ServiceContext {
  readonly logger: Logger;
  readonly out: Out;
  readonly events: ServerEventSink;
  /** The expose service's users (a reload replaces what it holds). */
  readonly exposeAuth: SwappableAuthenticator;
  /** With --redis: the rendezvous shares presence, names and signalling with the other nodes. */
  readonly cluster?: RedisRendezvousCluster;
}

async function swapIn(swap: SwappableAuthenticator, next: Promise<TurnAuthenticator>): Promise<SwappableAuthenticator> {
  swap.replace(await next);
  return swap;
}

/** What the rendezvous needs of the STUN/TURN server: its listeners (for the URLs it hands out) and TURN's list of addresses no relay may reach. */
export interface RendezvousStunHook {
  readonly listeners: StunServer['listeners'];
  readonly turn?: { addServiceAddresses(addresses: readonly TransportAddress[]): void } | undefined;
  /** Present on a single-process server: the TLS port's HTTP connections go to the rendezvous. */
  readonly serveHttpOnTls?: StunServer['serveHttpOnTls'];
}

export async function startRendezvousOf(config: ServerConfig, stun: RendezvousStunHook, scope: RelayScope, ctx: ServiceContext): Promise<Rendezvous> {
  const { logger, out, events } = ctx;
  const first = config.listen[0]!;
  // Behind a 1:1 NAT (--external-ip) peers reach the server at its public address.
  const told = advertisedIp(externalOf(config), first);
  const host = told.includes(':') ? `[${told}]` : told;
  // The ports actually bound (with --port 0 each transport gets its own), not the configured one.
  const bound = (transport: 'udp' | 'tcp' | 'tls'): number =>
    stun.listeners.find((l) => l.transport === transport && l.role === 'PP' && l.address.address === first)?.address.port ?? config.port;
  // TURN over TCP too (when served) for peers whose network blocks UDP, and over TLS on the
  // TLS port (often 443) for networks that let only that out.
  const tls = config.tlsPort !== undefined;
  const urls = config.rendezvousIceUrls ?? [
    `stun:${host}:${bound('udp')}`,
    ...(config.realm
      ? [
          `turn:${host}:${bound('udp')}`,
          ...(config.tcp ? [`turn:${host}:${bound('tcp')}?transport=tcp`] : []),
          ...(tls ? [`turns:${host}:${bound('tls')}?transport=tcp`] : []),
        ]
      : []),
  ];
  const rendezvous = await startRendezvous({
    host: config.rendezvousHost ?? first,
    port: config.rendezvousPort!,
    logger,
    scope,
    ...(ctx.cluster === undefined ? {} : { cluster: ctx.cluster }),
    admission: { peerKeys: config.rendezvousPeerKeys, tokens: config.rendezvousTokens },
    events,
    // The listener carries the expose control connections too: a source's share covers both.
    ...(config.exposePorts === undefined
      ? {}
      : {
          connections: {
            maxConnectionsPerSource: config.rendezvousConnectionsPerSource + DEFAULT_RENDEZVOUS_LIMITS.maxPendingPerSource + exposeSessionsPerSource(config),
          },
        }),
    limits: {
      handshakeTimeoutMs: config.rendezvousHandshakeTimeout * 1000,
      maxConnectionsPerSource: config.rendezvousConnectionsPerSource,
      maxConnections: config.rendezvousMaxConnections,
      maxNamesPerPeer: config.rendezvousNamesPerKey,
      nameClaimsPerSource: config.rendezvousNameClaimsPerHour,
      nameTtlMs: config.rendezvousNameTtlDays * 86_400_000,
    },
    // Time-limited TURN credentials need a REST API secret: the first one is the current one.
    ...(config.realm && config.authSecrets.length > 0
      ? { turn: { urls, secret: config.authSecrets[0]! } }
      : { iceServers: [{ urls: urls.filter((u) => u.startsWith('stun')) }] }),
  });
  // Its port (and the expose control on it) is never a TURN relay peer.
  stun.turn?.addServiceAddresses([rendezvous.address]);
  // Behind a 1:1 NAT the bound URL is not what peers dial: say both (the bound one first).
  const peersUrl = told === first ? undefined : rendezvous.url.replace(/^(wss?:\/\/)[^/]+/, `$1${host}:${rendezvous.address.port}`);
  out.stderr.write(`rendezvous ${rendezvous.url}${peersUrl === undefined ? '' : ` (peers dial ${peersUrl})`}\n`);
  if (tls && stun.serveHttpOnTls !== undefined) {
    // One port for restrictive networks: the TLS port serves the rendezvous (and expose control) too.
    stun.serveHttpOnTls((socket, lease) => rendezvous.serveGoverned(socket, lease));
    out.stderr.write(`rendezvous wss://${host}:${bound('tls')}${new URL(rendezvous.url).pathname} (on the TLS port, with TURN over TLS)\n`);
  }
  if (ctx.cluster !== undefined) {
    ctx.cluster.setUrl(peersUrl ?? rendezvous.url);
    out.stderr.write(
      `cluster: node ${ctx.cluster.instance.replace(/~[^~]*$/, '')} sharing the rendezvous with the nodes in Redis ${redactRedisUrl(config.redis ?? '')}\n`,
    );
  }
  const warning = noRelayWarning(config);
  if (warning !== undefined) out.stderr.write(`${warning}\n`);
  return rendezvous;
}

/** The expose service of a configuration, on the rendezvous service's HTTP server (with --redis, sharing its ports and owners with the other nodes). */
export async function attachExposeOf(config: ServerConfig, rendezvous: Rendezvous, ctx: ServiceContext): Promise<ReturnType<typeof attachExpose>> {
  const { logger, out } = ctx;
  // With --redis: ports per user counted on every node, owners told to every node.
  const shared = await startExposeClusterOf(config, logger);
  const expose = closingWith(
    await exposeOf(config, rendezvous, ctx, shared?.cluster).catch(async (e: unknown) => {
      await shared?.close();
      throw e;
    }),
    shared,
  );
  out.stderr.write(`expose ${rendezvous.url.replace(/\/?$/, '/')}expose ports ${config.exposePorts}\n`);
  return expose;
}

/** The expose service of a configuration itself. */
async function exposeOf(config: ServerConfig, rendezvous: Rendezvous, ctx: ServiceContext, cluster: ExposeCluster | undefined): Promise<ExposeHandle> {
  const { logger, events } = ctx;
  return attachExpose(rendezvous.httpServer, {
    host: rendezvous.address.address,
    ports: parsePortRange(config.exposePorts!),
    publicIp: config.exposePublicIp ?? exposePublicIpOf(config, rendezvous.address.address),
    ...(config.realm ? { realm: config.realm } : {}),
    ...(config.users.length + config.authSecrets.length > 0 || config.usersFile ? { auth: await swapIn(ctx.exposeAuth, authenticatorOf(config)) } : {}),
    peerKeys: config.exposePeerKeys,
    denySources: config.exposeDenySources,
    limits: {
      portsPerUser: config.exposePortsPerUser,
      connectionsPerPort: config.exposeConnectionsPerPort,
      bandwidthPerUser: config.exposeBandwidth,
      idleTimeoutMs: config.exposeIdleTimeout * 1000,
      graceMs: config.exposeGrace * 1000,
      ...(config.exposeSessionsPerSource !== undefined ? { sessionsPerSource: config.exposeSessionsPerSource } : {}),
      ...(config.exposeConnectionsPerSource !== undefined ? { connectionsPerSource: config.exposeConnectionsPerSource } : {}),
      outboundPerSession: config.exposeOutboundPerSession,
      outboundPerMinute: config.exposeOutboundPerMinute,
      outboundTotal: config.exposeOutboundTotal,
      outboundConnectTimeoutMs: config.exposeOutboundTimeout * 1000,
    },
    // The server's own addresses (every listener, relay and public one) are never outbound targets.
    outbound: { enabled: config.exposeOutbound, peers: { allow: config.allowPeers, deny: config.denyPeers, ownIps: ownIpsOf(config) } },
    logger,
    events,
    ...(cluster ? { cluster } : {}),
  });
}

/** Every IP address of the server a configuration names (a wildcard listen address: every address of the machine). */
function ownIpsOf(config: ServerConfig): string[] {
  const ips = [
    ...config.listen,
    ...config.alternate,
    ...(config.rendezvousHost === undefined ? [] : [config.rendezvousHost]),
    ...(config.relayIps ?? []),
    ...externalOf(config).map((m) => m.public),
  ];
  if (config.exposePublicIp !== undefined) ips.push(config.exposePublicIp);
  if (ips.some((ip) => /^(0\.0\.0\.0|::)$/.test(ip)))
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.push(a.address.replace(/%.*$/, ''));
  return ips.filter((ip) => !/^(0\.0\.0\.0|::)$/.test(ip));
}

/** The address announced for public ports: the rendezvous address, or its public one behind a 1:1 NAT (--external-ip). */
function exposePublicIpOf(config: ServerConfig, host: string): string {
  const external = externalOf(config);
  const told = advertisedIp(external, host);
  if (told !== host || !/^(0\.0\.0\.0|::)$/.test(host)) return told;
  // A wildcard rendezvous address: the public address of the listen address of its family.
  const listen = config.listen.find((l) => l.includes(':') === host.includes(':'));
  return listen === undefined ? host : advertisedIp(external, listen);
}

/** Expose control connections one source may hold (`exposeSessionsPerSource`, default a quarter of the expose service's session cap). */
function exposeSessionsPerSource(config: ServerConfig): number {
  return config.exposeSessionsPerSource ?? DEFAULT_EXPOSE_LIMITS.sessionsPerSource;
}

/** The admin listener (Prometheus metrics) of a configuration. */
export async function startAdminOf(
  config: ServerConfig,
  views: { metrics: ServerMetrics; status: StatusView; reload?: () => Promise<string> },
  logger: Logger,
  out: Out,
): Promise<AdminServer> {
  const token = config.adminTokenFile !== undefined ? await readAdminToken(config.adminTokenFile) : config.adminToken;
  const admin = await startAdminServer({ ...views, listen: config.adminListen, port: config.adminPort!, ...(token === undefined ? {} : { token }), logger });
  const a = admin.address;
  out.stderr.write(
    `admin http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics${token === undefined ? '' : ` (token required; status page at /status)`}\n`,
  );
  return admin;
}
