import { readFile } from 'node:fs/promises';
import { ipFamily, parseTransportAddress } from '@nat/protocol';
import {
  MemoryRelayScope,
  type RelayScope,
  type StunServerInit,
  type TurnAuthenticator,
  anonymousRelayTier,
  anonymousRelayUsers,
  anyOf,
  parseUsersFile,
  restApiSecrets,
  staticUsers,
} from '@nat/server';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CLUSTER_KEYS, clusterProblems } from './cluster/config.js';
import type { TurnClusterParts } from './cluster/turn.js';
import { configErrorSentences } from './config-errors.js';
import { EXTERNAL_IPS_DESCRIPTION, externalIp, externalIpsProblem, externalOf } from './external-ip.js';

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, { message: 'not an IP prefix (e.g. 10.0.0.0/8)' });
const ip = z.string().refine((s) => ipFamily(s) !== undefined, { message: 'not an IP address' });
const port = z.number().int().min(0).max(65535);
const count = (min: number) => z.number().int().min(min);
const peerId = z.string().regex(/^[a-z2-7]{32}$/, { message: 'not a peer id (32 lower-case base32 characters, as nat id prints)' });
const wrap = (v: unknown): unknown => (v === undefined || v === null || Array.isArray(v) ? v : [v]);
/** A list key that also takes one value on its own (`listen: 127.0.0.1`). */
const list = <T extends z.ZodType>(item: T, bounds: { min?: number; max?: number } = {}) => {
  let array = z.array(item);
  if (bounds.min !== undefined) array = array.min(bounds.min);
  if (bounds.max !== undefined) array = array.max(bounds.max);
  return z.preprocess(wrap, array);
};
const hostPort = z.string().refine(
  (s) => {
    try {
      parseTransportAddress(s, 3478);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not IP[:PORT]' },
);

const isLoopbackIp = (a: string): boolean => a === '::1' || a.startsWith('127.');

/** `20000-20099` or `20000`, within 1-65535, MIN <= MAX. */
function isPortRange(text: string): boolean {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  const min = Number(m?.[1]);
  const max = Number(m?.[2] ?? m?.[1]);
  return m !== null && min >= 1 && max <= 65535 && min <= max;
}

/**
 * The configuration file (YAML or JSON) of `nat-server`; flags override it key by key. Each key's
 * description says what it expects, in words: config errors quote it (see config-errors.ts).
 */
export const ServerConfig = z
  .object({
    listen: list(ip, { min: 1, max: 2 }).describe('an IP address or a list of up to 2 IP addresses (one per family)'),
    alternate: list(ip, { max: 2 }).default([]).describe('an IP address or a list of up to 2 IP addresses (one per family) for RFC 5780 change-IP answers'),
    port: port.default(3478).describe('a port number 0-65535'),
    altPort: port.nullable().default(3479).describe('a port number 0-65535, or null for no alternate port'),
    tcp: z.boolean().default(true).describe('true or false'),
    /** 1:1 NAT (coturn's external-ip): the public address told to clients for a bound one. */
    externalIps: list(externalIp).default([]).describe(EXTERNAL_IPS_DESCRIPTION),
    tlsPort: port.optional().describe('a port number 0-65535'),
    tlsCert: z.string().min(1).optional().describe('the path of a PEM certificate chain file'),
    tlsKey: z.string().min(1).optional().describe('the path of a PEM private key file'),
    software: z.string().max(127).optional().describe('a text of at most 127 characters'),
    rateLimit: z
      .preprocess(
        (v) => (typeof v === 'number' ? { perSecond: v } : v),
        z.object({ perSecond: z.number().min(0), burst: z.number().min(1).optional() }).strict(),
      )
      .default({ perSecond: 500, burst: 1000 })
      .describe('requests per second per source IP (0 disables), or a mapping {perSecond, burst} of non-negative numbers (burst at least 1)'),
    maxConnections: count(1).default(10_000).describe('a whole number of at least 1'),
    maxConnectionsPerSource: count(1).default(256).describe('a whole number of at least 1'),
    idleTimeout: z.number().min(0.1).default(30).describe('seconds, a number of at least 0.1'),
    tlsHandshakeTimeout: z.number().min(0.1).default(10).describe('seconds, a number of at least 0.1'),
    /** Load balancers whose TCP/TLS connections start with a PROXY header (v2 or v1) carrying the client's address. */
    proxyProtocolFrom: list(cidr).default([]).describe('an IP prefix (e.g. 10.0.0.0/8) or a list of them: the load balancers that send PROXY headers'),
    /** Worker processes (`--workers`, workers/plan.ts): a number, or auto (one per core; one on a loopback-only server). */
    workers: z
      .union([z.literal('auto'), count(1).max(64)])
      .default('auto')
      .describe('auto or a whole number 1-64'),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('one of fatal, error, warn, info, debug, trace, silent'),
    // ---- TURN (on when realm and at least one credential source are given)
    realm: z.string().min(1).max(127).optional().describe('a realm name of 1-127 characters'),
    users: list(z.string().regex(/^[^:]+:.+$/, { message: 'not name:password' }))
      .default([])
      .describe('a name:password user or a list of them'),
    usersFile: z.string().min(1).optional().describe('the path of a file of name:password lines'),
    authSecrets: list(z.string().min(1)).default([]).describe('a TURN REST API shared secret or a list of them (the first is current)'),
    relayIps: list(ip, { max: 2 }).optional().describe('an IP address or a list of up to 2 IP addresses (one per family)'),
    minPort: port.min(1).default(49152).describe('a port number 1-65535'),
    maxPort: port.min(1).default(65535).describe('a port number 1-65535'),
    allowPeers: list(cidr).default([]).describe('an IP prefix (e.g. 10.0.0.0/8) or a list of them'),
    denyPeers: list(cidr).default([]).describe('an IP prefix (e.g. 10.0.0.0/8) or a list of them'),
    userQuota: count(1).default(10).describe('a whole number of at least 1'),
    totalQuota: count(1).default(10_000).describe('a whole number of at least 1'),
    sourceQuota: count(1).default(64).describe('a whole number of at least 1'),
    tcpConnectsPerAllocation: count(1).default(64).describe('a whole number of at least 1'),
    tcpIncomingPerAllocation: count(1).default(64).describe('a whole number of at least 1'),
    maxPermissions: count(1).default(100).describe('a whole number of at least 1'),
    maxChannels: count(1).default(100).describe('a whole number of at least 1'),
    bandwidth: count(0).default(0).describe('bytes per second per allocation, a whole number (0: unlimited)'),
    defaultLifetime: count(60).default(600).describe('seconds, a whole number of at least 60'),
    maxLifetime: count(60).default(3600).describe('seconds, a whole number of at least 60'),
    /** Only RFC 8656 channel numbers 0x4000-0x4FFF (default: RFC 5766's 0x4000-0x7FFF too). */
    strictChannelRange: z.boolean().default(false).describe('true or false'),
    /** Deprecated: RFC 5766 channel numbers are accepted by default now. */
    legacyChannelNumbers: z.boolean().optional().describe('true or false (deprecated: the RFC 5766 range is the default)'),
    alternateServer: hostPort.optional().describe('an address IP[:PORT]'),
    // ---- rendezvous (WebSocket signalling)
    rendezvousPort: port.optional().describe('a port number 0-65535'),
    rendezvousHost: ip.optional().describe('an IP address'),
    rendezvousIceUrls: list(z.string().regex(/^(stun|stuns|turn|turns):/, { message: 'not a stun: or turn: URI' }), { max: 8 })
      .optional()
      .describe('a stun: or turn: URI or a list of up to 8 of them'),
    // ---- expose (public ports, frp/ngrok style; on the rendezvous HTTP server; users as for TURN)
    exposePorts: z
      .preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().refine(isPortRange, { message: 'not a port range within 1-65535' }))
      .optional()
      .describe('a port or a port range MIN-MAX, e.g. 20000-20099'),
    exposePublicIp: ip.optional().describe('an IP address'),
    exposePortsPerUser: count(1).default(4).describe('a whole number of at least 1'),
    exposeConnectionsPerPort: count(1).default(256).describe('a whole number of at least 1'),
    exposeBandwidth: count(0).default(0).describe('bytes per second per user, a whole number (0: unlimited)'),
    exposeIdleTimeout: count(1).default(300).describe('seconds, a whole number of at least 1'),
    exposeGrace: count(0).default(30).describe('seconds, a whole number'),
    exposePeerKeys: z
      .union([z.literal(false), list(peerId)])
      .default(false)
      .describe('a peer id or a list of peer ids allowed to expose ports with their key (true, any key, is not allowed: exposure is never anonymous)'),
    // ---- who may register with the rendezvous, and what anonymous peers get
    rendezvousPeerKeys: list(peerId).default([]).describe('a peer id or a list of peer ids: only these may register (default: any key)'),
    rendezvousTokens: list(z.string().min(8)).default([]).describe('an invite token of at least 8 characters or a list of them: registering needs one'),
    rendezvousHandshakeTimeout: count(1).default(10).describe('seconds, a whole number of at least 1'),
    rendezvousConnectionsPerSource: count(1).default(64).describe('a whole number of at least 1'),
    rendezvousMaxConnections: count(1).default(10_000).describe('a whole number of at least 1'),
    rendezvousNamesPerKey: count(0).default(8).describe('a whole number'),
    rendezvousNameClaimsPerHour: count(0).default(32).describe('a whole number'),
    rendezvousNameTtlDays: count(1).default(30).describe('days, a whole number of at least 1'),
    anonymousRelayPerPeer: count(0).default(4).describe('allocations per anonymous peer, a whole number (0: no anonymous relay)'),
    anonymousRelayTotal: count(0).default(1000).describe('allocations of all anonymous peers together, a whole number'),
    anonymousRelayBandwidth: count(0)
      .default(1024 * 1024)
      .describe('bytes per second per anonymous allocation, a whole number (0: unlimited)'),
    anonymousRelayTotalBandwidth: count(0)
      .default(32 * 1024 * 1024)
      .describe('bytes per second of all anonymous allocations together, a whole number (0: unlimited)'),
    exposeDenySources: list(cidr).default([]).describe('an IP prefix (e.g. 10.0.0.0/8) or a list of them'),
    /** Per source (IPv4 address, IPv6 /64): control connections, and connections (UDP: flows) per public port. Default a quarter of the pool. */
    exposeSessionsPerSource: count(1).optional().describe('a whole number of at least 1'),
    exposeConnectionsPerSource: count(1).optional().describe('a whole number of at least 1'),
    /** Outbound TCP connections for exposed users, from the public ports' address (e.g. tracker announces). */
    exposeOutbound: z.boolean().default(false).describe('true or false'),
    exposeOutboundPerSession: count(1).default(16).describe('a whole number of at least 1'),
    exposeOutboundPerMinute: count(1).default(30).describe('new connections per user per minute, a whole number of at least 1'),
    exposeOutboundTotal: count(1).default(1000).describe('a whole number of at least 1'),
    exposeOutboundTimeout: count(1).default(10).describe('seconds, a whole number of at least 1'),
    // ---- admin listener (Prometheus metrics at /metrics; off unless adminPort is set)
    adminPort: port.optional().describe('a port number 0-65535 (without it there is no admin listener)'),
    adminListen: ip.default('127.0.0.1').describe('an IP address (anything but loopback needs adminToken or adminTokenFile)'),
    adminToken: z.string().min(16).optional().describe('a bearer token of at least 16 characters'),
    adminTokenFile: z.string().min(1).optional().describe('the path of a file holding a bearer token of at least 16 characters'),
    ...CLUSTER_KEYS,
  })
  .strict()
  .superRefine((c, ctx) => {
    const problem = externalIpsProblem(c);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, path: ['externalIps'] });
    for (const p of clusterProblems(c)) ctx.addIssue({ code: 'custom', message: p.message, path: [p.path] });
  })
  .refine((c) => c.minPort <= c.maxPort, { message: 'must not exceed maxPort (--max-port)', path: ['minPort'] })
  .refine((c) => c.realm === undefined || c.users.length + c.authSecrets.length > 0 || c.usersFile !== undefined || c.redisUserdb !== undefined, {
    message: 'TURN needs credentials: give --user, --users-file, --auth-secret or --redis-userdb (config keys users, usersFile, authSecrets, redisUserdb)',
    path: ['realm'],
  })
  .refine((c) => c.realm !== undefined || c.exposePorts !== undefined || (c.users.length === 0 && c.authSecrets.length === 0 && c.usersFile === undefined), {
    message: 'credentials were given but no realm: give --realm REALM (config key realm) to serve TURN',
    path: ['realm'],
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    message: 'tlsCert and tlsKey (--tls-cert, --tls-key) go together',
    path: ['tlsCert'],
  })
  .refine((c) => !(c.strictChannelRange && c.legacyChannelNumbers === true), {
    message: 'legacyChannelNumbers contradicts it: drop one of them',
    path: ['strictChannelRange'],
  })
  .refine((c) => c.exposePorts === undefined || c.rendezvousPort !== undefined, {
    message: 'expose runs on the rendezvous service: set --rendezvous-port (config key rendezvousPort) too',
    path: ['exposePorts'],
  })
  .refine((c) => !c.exposeOutbound || c.exposePorts !== undefined, {
    message: 'outbound connections are for exposed users: set --expose-ports (config key exposePorts) too',
    path: ['exposeOutbound'],
  })
  .refine((c) => c.adminPort === undefined || isLoopbackIp(c.adminListen) || c.adminToken !== undefined || c.adminTokenFile !== undefined, {
    message:
      'the admin listener on an address other than loopback needs a token: --admin-token-file FILE or NAT_SERVER_ADMIN_TOKEN (config keys adminTokenFile, adminToken)',
    path: ['adminListen'],
  })
  .refine((c) => c.exposePorts === undefined || c.exposePeerKeys !== false || c.users.length + c.authSecrets.length > 0 || c.usersFile !== undefined, {
    message: 'expose needs credentials: give --user, --users-file or --auth-secret (config keys users, usersFile, authSecrets, or exposePeerKeys: [PEER_ID])',
    path: ['exposePorts'],
  });

export type ServerConfig = z.infer<typeof ServerConfig>;

/** A configuration that cannot be used; the message names the bad key. Exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The problems of a configuration as sentences that name each key (its flag when `fromFlags`
 * holds it) and say what it expects, joined with "; ".
 */
export function formatZodError(error: z.ZodError, input: Record<string, unknown> = {}, fromFlags: ReadonlySet<string> = new Set()): string {
  return configSentences(error, input, fromFlags).join('; ');
}

function configSentences(error: z.ZodError, input: Record<string, unknown>, fromFlags: ReadonlySet<string>): string[] {
  const shape: Record<string, z.ZodType> = ServerConfig.shape;
  return configErrorSentences(error, { input, fromFlags, expected: (key) => shape[key]?.description, knownKeys: Object.keys(shape) });
}

/** Reads a YAML or JSON file (JSON is YAML) into a plain object. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML or JSON: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`config file ${path}: the top level must be a mapping of keys`);
  return value as Record<string, unknown>;
}

/** Merges file values and flag values (flags win) and validates the result. */
export function resolveConfig(fromFile: Record<string, unknown>, fromFlags: Record<string, unknown>, source: string): ServerConfig {
  const merged: Record<string, unknown> = { ...fromFile };
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) merged[k] = v;
  const result = ServerConfig.safeParse(merged);
  if (!result.success) {
    const flagKeys = new Set(Object.keys(fromFlags).filter((k) => fromFlags[k] !== undefined));
    const sentences = configSentences(result.error, merged, flagKeys);
    throw new ConfigError(`invalid configuration (${source}):${sentences.length === 1 ? ' ' : '\n  '}${sentences.join('\n  ')}`);
  }
  return result.data;
}

/** The credential sources of a configuration (reads the users file), and `extra` (coturn's Redis user database) after them. */
export async function authenticatorOf(c: ServerConfig, extra?: TurnAuthenticator): Promise<TurnAuthenticator> {
  const users = new Map<string, string>();
  for (const u of c.users) users.set(u.slice(0, u.indexOf(':')), u.slice(u.indexOf(':') + 1));
  if (c.usersFile) {
    let text: string;
    try {
      text = await readFile(c.usersFile, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read users file ${c.usersFile}: ${(e as Error).message}`);
    }
    let parsed: Map<string, string>;
    try {
      parsed = parseUsersFile(text, c.usersFile);
    } catch (e) {
      throw new ConfigError(`--users-file ${(e as Error).message}`);
    }
    for (const [k, v] of parsed) users.set(k, v);
  }
  const sources: TurnAuthenticator[] = [];
  if (users.size > 0) sources.push(staticUsers(users));
  if (c.authSecrets.length > 0) sources.push(restApiSecrets(c.authSecrets));
  if (extra !== undefined) sources.push(extra);
  return anyOf(...sources);
}

/**
 * The library options a configuration stands for (TURN included when `realm` is set). With REST
 * secrets, TURN also takes the anonymous relay credentials the rendezvous hands out, narrowed by
 * trust tiers to what the peers' sessions signalled in `scope` (share it with the rendezvous).
 */
export async function toServerInit(
  c: ServerConfig,
  scope: RelayScope = new MemoryRelayScope(),
  swap?: { replace(next: TurnAuthenticator): void } & TurnAuthenticator,
  cluster: TurnClusterParts = {},
): Promise<StunServerInit> {
  const base = toStunServerInit(c);
  if (c.realm === undefined) return base;
  let alternateServer;
  if (c.alternateServer) {
    try {
      alternateServer = parseTransportAddress(c.alternateServer, 3478);
    } catch {
      throw new ConfigError(`config key "alternateServer": expected an address IP[:PORT], got ${JSON.stringify(c.alternateServer)}`);
    }
  }
  const users = await authenticatorOf(c, cluster.users);
  let tier: ReturnType<ReturnType<typeof anonymousRelayTier>['turn']> | { auth: TurnAuthenticator } =
    c.authSecrets.length > 0
      ? anonymousRelayTier({
          secrets: c.authSecrets,
          users,
          scope,
          // Relayed candidates carry the public addresses: those are this server's too.
          ownRelayIps: [...(c.relayIps ?? c.listen), ...externalOf(c).map((m) => m.public)],
          perPeer: c.anonymousRelayPerPeer,
          total: c.anonymousRelayTotal,
          bandwidth: c.anonymousRelayBandwidth,
          totalBandwidth: c.anonymousRelayTotalBandwidth,
        }).turn()
      : { auth: users }; // no secret, no anonymous credentials: every user is the operator's
  if (swap !== undefined) {
    swap.replace(tier.auth);
    tier = { ...tier, auth: swap };
  }
  return {
    ...base,
    turn: {
      realm: c.realm,
      ...tier,
      ...(c.relayIps ? { relayIps: c.relayIps } : {}),
      relayPorts: { min: c.minPort, max: c.maxPort },
      peers: { allow: c.allowPeers, deny: c.denyPeers },
      userQuota: c.userQuota,
      totalQuota: c.totalQuota,
      sourceQuota: c.sourceQuota,
      tcpConnectsPerAllocation: c.tcpConnectsPerAllocation,
      tcpIncomingPerAllocation: c.tcpIncomingPerAllocation,
      maxPermissions: c.maxPermissions,
      maxChannels: c.maxChannels,
      bandwidth: c.bandwidth,
      defaultLifetime: c.defaultLifetime,
      maxLifetime: c.maxLifetime,
      strictChannelNumbers: c.strictChannelRange,
      ...(alternateServer || cluster.alternate ? { alternateServer: alternateServer ?? cluster.alternate } : {}),
      ...(cluster.clusterQuota ? { clusterQuota: cluster.clusterQuota } : {}),
      ...(c.software ? { software: c.software } : {}),
    },
  };
}

/** The authenticator TURN uses for a configuration: its users and REST secrets, and the anonymous credentials signed with those secrets. */
export async function turnAuthOf(c: ServerConfig, extra?: TurnAuthenticator): Promise<TurnAuthenticator> {
  const users = await authenticatorOf(c, extra);
  return c.authSecrets.length > 0 ? anyOf(users, anonymousRelayUsers(c.authSecrets)) : users;
}

/** The STUN part of a configuration's library options. */
export function toStunServerInit(c: ServerConfig): StunServerInit {
  return {
    listen: c.listen,
    alternate: c.alternate,
    ...(c.externalIps.length > 0 ? { external: externalOf(c) } : {}),
    port: c.port,
    altPort: c.altPort,
    tcp: c.tcp,
    tlsPort: c.tlsPort,
    tls: c.tlsCert && c.tlsKey ? { certFile: c.tlsCert, keyFile: c.tlsKey } : undefined,
    software: c.software,
    rateLimit: c.rateLimit,
    streams: {
      maxConnections: c.maxConnections,
      maxConnectionsPerSource: c.maxConnectionsPerSource,
      idleTimeoutMs: c.idleTimeout * 1000,
      handshakeTimeoutMs: c.tlsHandshakeTimeout * 1000,
    },
    // The PROXY header is read before the TLS handshake, within the same deadline.
    ...(c.proxyProtocolFrom.length > 0 ? { proxyProtocol: { from: c.proxyProtocolFrom, timeoutMs: c.tlsHandshakeTimeout * 1000 } } : {}),
  };
}
