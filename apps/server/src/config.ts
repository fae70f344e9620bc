import { readFile } from 'node:fs/promises';
import { ipFamily, parseTransportAddress } from '@nat/protocol';
import { type StunServerInit, type TurnAuthenticator, anyOf, parseUsersFile, restApiSecrets, staticUsers } from '@nat/server';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, { message: 'not an IP prefix (e.g. 10.0.0.0/8)' });
const ip = z.string().refine((s) => ipFamily(s) !== undefined, { message: 'not an IP address' });
const port = z.number().int().min(0).max(65535);

/** The configuration file (YAML or JSON) of `nat-server`; flags override it key by key. */
export const ServerConfig = z
  .object({
    /** Primary IP addresses, at most one per family. */
    listen: z.array(ip).min(1).max(2),
    /** Alternate IP addresses for RFC 5780 (one per family). */
    alternate: z.array(ip).max(2).default([]),
    port: port.default(3478),
    /** null disables the alternate port. */
    altPort: port.nullable().default(3479),
    tcp: z.boolean().default(true),
    tlsPort: port.optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    software: z.string().max(127).optional(),
    rateLimit: z
      .object({ perSecond: z.number().min(0), burst: z.number().min(1).optional() })
      .strict()
      .default({ perSecond: 500, burst: 1000 }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // ---- TURN (on when realm and at least one credential source are given)
    realm: z.string().min(1).max(127).optional(),
    /** Static users as `name:password` strings. */
    users: z.array(z.string().regex(/^[^:]+:.+$/, { message: 'expected name:password' })).default([]),
    usersFile: z.string().min(1).optional(),
    /** TURN REST API shared secrets (several for rotation). */
    authSecrets: z.array(z.string().min(1)).default([]),
    relayIps: z.array(ip).max(2).optional(),
    minPort: port.min(1).default(49152),
    maxPort: port.min(1).default(65535),
    allowPeers: z.array(cidr).default([]),
    denyPeers: z.array(cidr).default([]),
    userQuota: z.number().int().min(1).default(10),
    totalQuota: z.number().int().min(1).default(10_000),
    maxPermissions: z.number().int().min(1).default(100),
    maxChannels: z.number().int().min(1).default(100),
    /** Bytes per second per allocation; 0 = unlimited. */
    bandwidth: z.number().int().min(0).default(0),
    defaultLifetime: z.number().int().min(60).default(600),
    maxLifetime: z.number().int().min(60).default(3600),
    legacyChannelNumbers: z.boolean().default(false),
    alternateServer: z.string().optional(),
    // ---- rendezvous (WebSocket signalling)
    rendezvousPort: port.optional(),
    rendezvousHost: ip.optional(),
    /** stun:/turn: URIs handed to registered peers (default: this server's own). */
    rendezvousIceUrls: z.array(z.string().regex(/^(stun|stuns|turn|turns):/, { message: 'expected a stun: or turn: URI' })).max(8).optional(),
    // ---- expose (public ports, frp/ngrok style; on the rendezvous HTTP server; users as for TURN)
    /** Public ports handed out, `MIN-MAX` or one port. */
    exposePorts: z.string().regex(/^\d{1,5}(-\d{1,5})?$/, { message: 'expected a port range, e.g. 20000-20099' }).optional(),
    /** The address announced for exposed ports (default: the rendezvous address). */
    exposePublicIp: ip.optional(),
    exposePortsPerUser: z.number().int().min(1).default(4),
    exposeConnectionsPerPort: z.number().int().min(1).default(256),
    /** Bytes per second per user; 0 = unlimited. */
    exposeBandwidth: z.number().int().min(0).default(0),
    /** Seconds without traffic before an inbound connection is closed. */
    exposeIdleTimeout: z.number().int().min(1).default(300),
    /** Seconds a disconnected client's ports are held for it. */
    exposeGrace: z.number().int().min(0).default(30),
    /** Accept Ed25519 peer keys as expose credentials. */
    exposePeerKeys: z.boolean().default(false),
    /** Source prefixes refused on every exposed port (clients add their own per port). */
    exposeDenySources: z.array(cidr).default([]),
  })
  .strict()
  .refine((c) => c.minPort <= c.maxPort, { message: 'minPort must not exceed maxPort', path: ['minPort'] })
  .refine((c) => c.realm === undefined || c.users.length + c.authSecrets.length > 0 || c.usersFile !== undefined, {
    message: 'TURN needs credentials: users, usersFile or authSecrets',
    path: ['realm'],
  })
  .refine((c) => c.realm !== undefined || c.exposePorts !== undefined || (c.users.length === 0 && c.authSecrets.length === 0 && c.usersFile === undefined), {
    message: 'credentials given without a realm: set realm to serve TURN',
    path: ['realm'],
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { message: 'tlsCert and tlsKey go together', path: ['tlsCert'] })
  .refine((c) => c.exposePorts === undefined || c.rendezvousPort !== undefined, { message: 'expose runs on the rendezvous service: set rendezvousPort too', path: ['exposePorts'] })
  .refine((c) => c.exposePorts === undefined || c.exposePeerKeys || c.users.length + c.authSecrets.length > 0 || c.usersFile !== undefined, {
    message: 'expose needs credentials: users, usersFile, authSecrets or exposePeerKeys',
    path: ['exposePorts'],
  });

export type ServerConfig = z.infer<typeof ServerConfig>;

/** A configuration that cannot be used; the message names the bad key. Exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** `listen.0: not an IP address; port: Too big: expected number to be <=65535` */
export function formatZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('; ');
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
  if (!result.success) throw new ConfigError(`invalid configuration (${source}): ${formatZodError(result.error)}`);
  return result.data;
}

/** The credential sources of a configuration (reads the users file). */
export async function authenticatorOf(c: ServerConfig): Promise<TurnAuthenticator> {
  const users = new Map<string, string>();
  for (const u of c.users) users.set(u.slice(0, u.indexOf(':')), u.slice(u.indexOf(':') + 1));
  if (c.usersFile) {
    let text: string;
    try {
      text = await readFile(c.usersFile, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read users file ${c.usersFile}: ${(e as Error).message}`);
    }
    for (const [k, v] of parseUsersFile(text, c.usersFile)) users.set(k, v);
  }
  const sources: TurnAuthenticator[] = [];
  if (users.size > 0) sources.push(staticUsers(users));
  if (c.authSecrets.length > 0) sources.push(restApiSecrets(c.authSecrets));
  return anyOf(...sources);
}

/** The library options a configuration stands for (TURN included when `realm` is set). */
export async function toServerInit(c: ServerConfig): Promise<StunServerInit> {
  const base = toStunServerInit(c);
  if (c.realm === undefined) return base;
  let alternateServer;
  if (c.alternateServer) {
    try {
      alternateServer = parseTransportAddress(c.alternateServer, 3478);
    } catch {
      throw new ConfigError(`invalid configuration: alternateServer: ${JSON.stringify(c.alternateServer)} is not IP[:PORT]`);
    }
  }
  return {
    ...base,
    turn: {
      realm: c.realm,
      auth: await authenticatorOf(c),
      ...(c.relayIps ? { relayIps: c.relayIps } : {}),
      relayPorts: { min: c.minPort, max: c.maxPort },
      peers: { allow: c.allowPeers, deny: c.denyPeers },
      userQuota: c.userQuota,
      totalQuota: c.totalQuota,
      maxPermissions: c.maxPermissions,
      maxChannels: c.maxChannels,
      bandwidth: c.bandwidth,
      defaultLifetime: c.defaultLifetime,
      maxLifetime: c.maxLifetime,
      legacyChannelNumbers: c.legacyChannelNumbers,
      ...(alternateServer ? { alternateServer } : {}),
      ...(c.software ? { software: c.software } : {}),
    },
  };
}

/** The STUN part of a configuration's library options. */
export function toStunServerInit(c: ServerConfig): StunServerInit {
  return {
    listen: c.listen,
    alternate: c.alternate,
    port: c.port,
    altPort: c.altPort,
    tcp: c.tcp,
    tlsPort: c.tlsPort,
    tls: c.tlsCert && c.tlsKey ? { certFile: c.tlsCert, keyFile: c.tlsKey } : undefined,
    software: c.software,
    rateLimit: c.rateLimit,
  };
}
