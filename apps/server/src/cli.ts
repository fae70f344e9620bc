import { Command, InvalidArgumentError, Option } from 'commander';
import { ServerError, attachExpose, parsePortRange, startRendezvous, startStunServer, type StunServer } from '@nat/server';
import { formatTransportAddress } from '@nat/protocol';
import { pino } from 'pino';
import { ConfigError, authenticatorOf, readConfigFile, resolveConfig, toServerInit } from './config.js';

/** Exit codes of `nat-server`. */
export const ExitCode = { Ok: 0, Failure: 1, Usage: 2 } as const;

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
const portArg = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
};
const numberArg = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
};

export interface RunningServer {
  stun: StunServer;
  stop(): Promise<void>;
}

/**
 * Parses argv, starts the server and returns it; `main.ts` adds signal handling. Throws
 * ConfigError (exit 2) for bad flags or config, ServerError (exit 1) when sockets cannot be bound.
 */
export async function run(argv: string[], out: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<RunningServer | undefined> {
  const program = new Command('nat-server')
    .description('STUN server with RFC 5780 behaviour discovery (two addresses, two ports), over UDP, TCP and TLS.')
    .option('-l, --listen <ip>', 'primary IP address to listen on (repeat for IPv4 and IPv6)', collect)
    .option('-a, --alternate <ip>', 'alternate IP address for RFC 5780 change-IP answers (one per family)', collect)
    .option('-p, --port <port>', 'primary UDP/TCP port (default 3478; 0 picks one)', portArg)
    .option('--alt-port <port>', 'alternate port for change-port answers (default 3479; 0 picks one)', portArg)
    .option('--no-alt-port', 'serve no alternate port')
    .option('--no-tcp', 'serve STUN over UDP only')
    .option('--tls-port <port>', 'serve STUN over TLS on this port (default off; 0 picks one)', portArg)
    .option('--tls-cert <file>', 'PEM certificate chain for TLS (default: a generated self-signed one)')
    .option('--tls-key <file>', 'PEM private key for TLS')
    .option('--software <text>', 'SOFTWARE attribute to send when the response size allows')
    .option('--rate-limit <n>', 'requests per second allowed per source IP (default 500; 0 disables)', numberArg)
    .option('--rate-burst <n>', 'burst allowed per source IP (default 2 x rate limit)', numberArg)
    .option('--realm <realm>', 'TURN: serve TURN (RFC 8656) with this realm; needs --user, --users-file or --auth-secret')
    .option('-u, --user <name:password>', 'TURN: a static user (repeatable)', collect)
    .option('--users-file <file>', 'TURN: file of name:password lines')
    .option('--auth-secret <secret>', 'TURN: REST API shared secret, as coturn use-auth-secret (repeat to rotate)', collect)
    .option('--relay-ip <ip>', 'TURN: relay address per family (default: the --listen address)', collect)
    .option('--min-port <port>', 'TURN: lowest relay port (default 49152)', portArg)
    .option('--max-port <port>', 'TURN: highest relay port (default 65535)', portArg)
    .option('--allow-peer <cidr>', 'TURN: allow relaying to this prefix even if denied by default (repeatable)', collect)
    .option('--deny-peer <cidr>', 'TURN: refuse relaying to this prefix (repeatable)', collect)
    .option('--user-quota <n>', 'TURN: allocations per user (default 10)', numberArg)
    .option('--total-quota <n>', 'TURN: allocations in total (default 10000)', numberArg)
    .option('--bandwidth <bytes/s>', 'TURN: relayed bytes per second per allocation (default 0: unlimited)', numberArg)
    .option('--legacy-channel-numbers', 'TURN: accept RFC 5766 channel numbers 0x4000-0x7FFE (older clients)')
    .option('--alternate-server <ip:port>', 'TURN: redirect Allocate requests there with 300 Try Alternate')
    .option('--rendezvous-port <port>', 'serve the WebSocket rendezvous (signalling) service on this TCP port (default off; 0 picks one)', portArg)
    .option('--rendezvous-host <ip>', 'IP address of the rendezvous service (default: the first --listen address)')
    .option('--rendezvous-ice-url <uri>', 'stun:/turn: URI handed to registered peers (repeatable; default this server: stun:, turn: and, with TCP, turn:...?transport=tcp)', collect)
    .option('--expose-ports <range>', 'expose: hand out these public ports (e.g. 20000-20099) to authenticated clients of the rendezvous service (needs --rendezvous-port and --user/--users-file/--auth-secret)')
    .option('--expose-public-ip <ip>', 'expose: the address announced for public ports (default: the rendezvous address)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('-c, --config <file>', 'YAML or JSON config file; flags override its keys')
    .addHelpText(
      'after',
      `
Examples:
  nat-server --listen 127.0.0.1 --alternate 127.0.0.2          loopback demo (ports 3478, 3479)
  nat-server --listen 203.0.113.1 --alternate 203.0.113.2 --tls-port 5349 --tls-cert cert.pem --tls-key key.pem
  nat-server --config /etc/nat-server.yaml

  nat-server --listen 203.0.113.1 --realm example.org --auth-secret S --relay-ip 203.0.113.1
                                                              STUN + TURN with REST API credentials

Config file keys: listen, alternate, port, altPort, tcp, tlsPort, tlsCert, tlsKey, software,
rateLimit {perSecond, burst}, logLevel; TURN: realm, users [name:password], usersFile,
authSecrets, relayIps, minPort, maxPort, allowPeers, denyPeers, userQuota, totalQuota,
maxPermissions, maxChannels, bandwidth, defaultLifetime, maxLifetime, legacyChannelNumbers,
alternateServer; rendezvous: rendezvousPort, rendezvousHost, rendezvousIceUrls; expose: exposePorts, exposePublicIp,
exposePortsPerUser, exposeConnectionsPerPort, exposeBandwidth, exposeIdleTimeout, exposeGrace, exposePeerKeys,
exposeDenySources.  Exit codes: 0 stopped cleanly, 1 could not start, 2 bad usage.`,
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.stdout.write(s), writeErr: (s) => out.stderr.write(s), outputError: () => {} });

  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message: string };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return undefined;
    throw new ConfigError(err.message.replace(/^error: /, ''));
  }
  const o = program.opts<{
    listen?: string[];
    alternate?: string[];
    port?: number;
    altPort?: number | false;
    tcp: boolean;
    tlsPort?: number;
    tlsCert?: string;
    tlsKey?: string;
    software?: string;
    rateLimit?: number;
    rateBurst?: number;
    logLevel?: string;
    config?: string;
    realm?: string;
    user?: string[];
    usersFile?: string;
    authSecret?: string[];
    relayIp?: string[];
    minPort?: number;
    maxPort?: number;
    allowPeer?: string[];
    denyPeer?: string[];
    userQuota?: number;
    totalQuota?: number;
    bandwidth?: number;
    legacyChannelNumbers?: boolean;
    alternateServer?: string;
    rendezvousPort?: number;
    rendezvousHost?: string;
    rendezvousIceUrl?: string[];
    exposePorts?: string;
    exposePublicIp?: string;
  }>();
  const fromFile = o.config ? await readConfigFile(o.config) : {};
  const flags: Record<string, unknown> = {
    listen: o.listen,
    alternate: o.alternate,
    port: o.port,
    altPort: o.altPort === false ? null : o.altPort,
    tcp: o.tcp === false ? false : undefined,
    tlsPort: o.tlsPort,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    software: o.software,
    rateLimit: o.rateLimit === undefined ? undefined : { perSecond: o.rateLimit, ...(o.rateBurst !== undefined ? { burst: o.rateBurst } : {}) },
    logLevel: o.logLevel,
    realm: o.realm,
    users: o.user,
    usersFile: o.usersFile,
    authSecrets: o.authSecret,
    relayIps: o.relayIp,
    minPort: o.minPort,
    maxPort: o.maxPort,
    allowPeers: o.allowPeer,
    denyPeers: o.denyPeer,
    userQuota: o.userQuota,
    totalQuota: o.totalQuota,
    bandwidth: o.bandwidth,
    legacyChannelNumbers: o.legacyChannelNumbers,
    alternateServer: o.alternateServer,
    rendezvousPort: o.rendezvousPort,
    rendezvousHost: o.rendezvousHost,
    rendezvousIceUrls: o.rendezvousIceUrl,
    exposePorts: o.exposePorts,
    exposePublicIp: o.exposePublicIp,
  };
  if (!o.listen && !fromFile.listen) throw new ConfigError('give at least one --listen IP address (or "listen" in --config); see nat-server --help');
  const config = resolveConfig(fromFile, flags, o.config ? `${o.config} and flags` : 'flags');
  const logger = pino({ level: config.logLevel, base: { service: 'nat-server' } }, pino.destination({ dest: 1, sync: true }));
  const stun = await startStunServer({ ...(await toServerInit(config)), logger });
  if (config.realm) out.stderr.write(`TURN on, realm ${config.realm}, relay ports ${config.minPort}-${config.maxPort}\n`);
  for (const l of stun.listeners) out.stderr.write(`listening ${l.transport.padEnd(3)} ${formatTransportAddress(l.address)} (${l.role})\n`);
  let rendezvous: Awaited<ReturnType<typeof startRendezvous>> | undefined;
  if (config.rendezvousPort !== undefined) {
    const first = config.listen[0]!;
    const host = first.includes(':') ? `[${first}]` : first;
    // TURN over TCP too (when served) for peers whose network blocks UDP.
    const urls = config.rendezvousIceUrls ?? [
      `stun:${host}:${config.port}`,
      ...(config.realm ? [`turn:${host}:${config.port}`, ...(config.tcp ? [`turn:${host}:${config.port}?transport=tcp`] : [])] : []),
    ];
    try {
      rendezvous = await startRendezvous({
        host: config.rendezvousHost ?? first,
        port: config.rendezvousPort,
        logger,
        // Time-limited TURN credentials need a REST API secret: the first one is the current one.
        ...(config.realm && config.authSecrets.length > 0 ? { turn: { urls, secret: config.authSecrets[0]! } } : { iceServers: [{ urls: urls.filter((u) => u.startsWith('stun')) }] }),
      });
    } catch (e) {
      await stun.close();
      throw e;
    }
    out.stderr.write(`rendezvous ${rendezvous.url}\n`);
  }
  let expose: ReturnType<typeof attachExpose> | undefined;
  if (config.exposePorts !== undefined && rendezvous !== undefined) {
    const host = rendezvous.address.address;
    expose = attachExpose(rendezvous.httpServer, {
      host,
      ports: parsePortRange(config.exposePorts),
      ...(config.exposePublicIp ? { publicIp: config.exposePublicIp } : {}),
      ...(config.realm ? { realm: config.realm } : {}),
      ...(config.users.length + config.authSecrets.length > 0 || config.usersFile ? { auth: await authenticatorOf(config) } : {}),
      peerKeys: config.exposePeerKeys,
      denySources: config.exposeDenySources,
      limits: {
        portsPerUser: config.exposePortsPerUser,
        connectionsPerPort: config.exposeConnectionsPerPort,
        bandwidthPerUser: config.exposeBandwidth,
        idleTimeoutMs: config.exposeIdleTimeout * 1000,
        graceMs: config.exposeGrace * 1000,
      },
      logger,
    });
    out.stderr.write(`expose ${rendezvous.url.replace(/\/?$/, '/')}expose ports ${config.exposePorts}\n`);
  }
  return {
    stun,
    async stop() {
      await expose?.close();
      await rendezvous?.close();
      await stun.close();
      logger.info({ stats: stun.stats(), ...(rendezvous ? { rendezvous: rendezvous.stats() } : {}) }, 'stopped');
    },
  };
}

export { ConfigError, ServerError };
