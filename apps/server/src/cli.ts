import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ServerError } from '@nat/server';
import { checkConfigFiles } from './check-config.js';
import { ConfigError, readConfigFile, resolveConfig } from './config.js';
import { type ClusterFlags, clusterFlagValues, withClusterOptions } from './cluster/flags.js';
import { HELP_AFTER } from './help.js';
import { type ProxyProtocolFlags, proxyProtocolFromFlag, withProxyProtocolOption } from './proxy-flags.js';
import { type OutboundFlags, outboundFlagValues, withOutboundOptions } from './outbound-flags.js';
import { type Out, noRelayWarning } from './services.js';
import type { RunningServer } from './running.js';
import { startOneProcess } from './single.js';
import { startWorkersOf, withWorkerOptions } from './workers/index.js';
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

/** The version of this package (`nat-server --version`). */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export type { RunningServer } from './running.js';

interface Flags extends ProxyProtocolFlags, OutboundFlags, ClusterFlags {
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
  maxConnections?: number;
  maxConnectionsPerSource?: number;
  idleTimeout?: number;
  tlsHandshakeTimeout?: number;
  logLevel?: string;
  config?: string;
  realm?: string;
  user?: string[];
  usersFile?: string;
  authSecret?: string[];
  relayIp?: string[];
  externalIp?: string[];
  minPort?: number;
  maxPort?: number;
  allowPeer?: string[];
  denyPeer?: string[];
  userQuota?: number;
  totalQuota?: number;
  sourceQuota?: number;
  tcpConnects?: number;
  tcpIncoming?: number;
  bandwidth?: number;
  strictChannelRange?: boolean;
  legacyChannelNumbers?: boolean;
  alternateServer?: string;
  rendezvousPort?: number;
  rendezvousHost?: string;
  rendezvousIceUrl?: string[];
  exposePorts?: string;
  exposePublicIp?: string;
  exposeSessionsPerSource?: number;
  exposeConnectionsPerSource?: number;
  exposeAllowKey?: string[];
  rendezvousAllowKey?: string[];
  rendezvousToken?: string[];
  rendezvousConnectionsPerSource?: number;
  rendezvousMaxConnections?: number;
  rendezvousNamesPerKey?: number;
  rendezvousNameTtlDays?: number;
  anonymousRelayPerPeer?: number;
  anonymousRelayTotal?: number;
  anonymousRelayBandwidth?: number;
  adminPort?: number;
  adminListen?: string;
  adminTokenFile?: string;
  checkConfig?: string;
}

/** The command line of `nat-server`: its options in groups, with their help. */
function buildProgram(out: Out): Command {
  const program = new Command('nat-server')
    .description(
      'The server side of nat: a STUN server with RFC 5780 behaviour discovery (two addresses, two ports) over UDP, TCP and TLS; ' +
        'optionally a TURN relay (--realm), a rendezvous service where peers meet (--rendezvous-port) and public ports for `nat expose --public` (--expose-ports).',
    )
    .optionsGroup('STUN options:')
    .option('-l, --listen <ip>', 'primary IP address to listen on (repeat for IPv4 and IPv6)', collect)
    .option('-a, --alternate <ip>', 'alternate IP address for RFC 5780 change-IP answers (one per family)', collect)
    .option('-p, --port <port>', 'primary UDP/TCP port (default 3478; 0 picks one)', portArg)
    .option('--alt-port <port>', 'alternate port for change-port answers (default 3479; 0 picks one)', portArg)
    .option('--no-alt-port', 'serve no alternate port')
    .option('--no-tcp', 'serve STUN over UDP only')
    .option('--external-ip <pub[/priv]>', 'behind a 1:1 NAT: tell clients PUB for PRIV (default: --listen, --relay-ip); repeatable', collect)
    .option('--tls-port <port>', 'STUN and TURN over TLS on this port; also the rendezvous (wss:) and expose control when on (default off)', portArg)
    .option('--tls-cert <file>', 'PEM certificate chain for TLS (default: a generated self-signed one)')
    .option('--tls-key <file>', 'PEM private key for TLS')
    .option('--software <text>', 'SOFTWARE attribute to send when the response size allows')
    .option('--rate-limit <n>', 'requests per second allowed per source IP (default 500; 0 disables)', numberArg)
    .option('--rate-burst <n>', 'burst allowed per source IP (default 2 x rate limit)', numberArg)
    .option('--max-connections <n>', 'most TCP/TLS connections at once, counted from accept (default 10000)', numberArg)
    .option('--max-connections-per-source <n>', 'most TCP/TLS connections from one IPv4 address or IPv6 /64 (default 256)', numberArg)
    .option('--idle-timeout <seconds>', 'close a silent TCP/TLS connection that carries no TURN allocation or bound data connection (default 30)', numberArg)
    .option('--tls-handshake-timeout <seconds>', 'close a TLS connection whose handshake has not finished this long after accept (default 10)', numberArg)
    .optionsGroup('TURN relay options (RFC 8656; on with --realm):')
    .option('--realm <realm>', 'serve TURN with this realm; needs --user, --users-file or --auth-secret')
    .option('-u, --user <name:password>', 'a static user (repeatable); also an expose user', collect)
    .option('--users-file <file>', 'file of name:password lines')
    .option(
      '--auth-secret <secret>',
      'REST API shared secret, as coturn use-auth-secret (repeat to rotate); the rendezvous hands peers anonymous relay credentials derived from it',
      collect,
    )
    .option('--relay-ip <ip>', 'relay address per family (default: the --listen address)', collect)
    .option('--min-port <port>', 'lowest relay port (default 49152)', portArg)
    .option('--max-port <port>', 'highest relay port (default 65535)', portArg)
    .option('--allow-peer <cidr>', 'allow relaying to this prefix even if denied by default, e.g. 127.0.0.0/8 on one machine (repeatable)', collect)
    .option('--deny-peer <cidr>', 'refuse relaying to this prefix (repeatable)', collect)
    .option('--user-quota <n>', 'allocations per user (default 10)', numberArg)
    .option('--total-quota <n>', 'allocations in total (default 10000)', numberArg)
    .option('--source-quota <n>', 'allocations per client IPv4 address or IPv6 /64, all users together (default 64)', numberArg)
    .option('--tcp-connects <n>', 'RFC 6062 peer connections one TCP allocation may open with Connect (default 64)', numberArg)
    .option('--tcp-incoming <n>', 'RFC 6062 peer connections peers may open to one TCP allocation (default 64)', numberArg)
    .option('--bandwidth <bytes/s>', 'relayed bytes per second per allocation (default 0: unlimited)', numberArg)
    .option('--strict-channel-range', 'accept only RFC 8656 channel numbers 0x4000-0x4FFF (default: RFC 5766 0x4000-0x7FFF too, as coturn and its clients use)')
    .addOption(new Option('--legacy-channel-numbers', 'deprecated: RFC 5766 channel numbers are accepted by default').hideHelp())
    .option('--alternate-server <ip:port>', 'redirect Allocate requests there with 300 Try Alternate')
    .optionsGroup('Rendezvous options (where peers meet: nat connect, listen, ping, expose):')
    .option(
      '--rendezvous-port <port>',
      'serve the WebSocket rendezvous (signalling) service on this TCP port (default off; 0 picks one); with --realm and --auth-secret it hands peers TURN credentials',
      portArg,
    )
    .option('--rendezvous-host <ip>', 'IP address of the rendezvous service (default: the first --listen address)')
    .option(
      '--rendezvous-ice-url <uri>',
      'stun:/turn: URI handed to registered peers (repeatable; default this server: stun:, turn: and, with TCP, turn:...?transport=tcp)',
      collect,
    )
    .option('--rendezvous-allow-key <peer-id>', 'only these peer ids may register (repeatable; default: any key, an open rendezvous)', collect)
    .option('--rendezvous-token <token>', 'registering needs this invite token (nat --rendezvous-token or NAT_RENDEZVOUS_TOKEN; repeatable)', collect);
  withRendezvousLimitOptions(program)
    .option(
      '--anonymous-relay-per-peer <n>',
      'TURN allocations per peer with the anonymous credentials the rendezvous hands out (default 4; 0: no anonymous relay); they relay UDP only, toward what their sessions signalled',
      numberArg,
    )
    .option('--anonymous-relay-total <n>', 'TURN allocations of all anonymous peers together (default 1000)', numberArg)
    .option('--anonymous-relay-bandwidth <bytes/s>', 'relayed bytes per second per anonymous allocation (default 1048576; 0: unlimited)', numberArg)
    .optionsGroup('Expose options (public ports for nat expose --public):')
    .option(
      '--expose-ports <range>',
      'hand out these public ports (e.g. 20000-20099) to authenticated clients of the rendezvous service (needs --rendezvous-port and --user/--users-file/--auth-secret)',
    )
    .option('--expose-public-ip <ip>', 'the address announced for public ports (default: the rendezvous address, or its --external-ip)')
    .option(
      '--expose-sessions-per-source <n>',
      'expose control connections from one source address (IPv6: one /64) at most (default 250, a quarter of 1000)',
      numberArg,
    )
    .option(
      '--expose-connections-per-source <n>',
      'connections (UDP: flows) from one source address (IPv6: one /64) per public port at most (default a quarter of exposeConnectionsPerPort: 64)',
      numberArg,
    )
    .option('--expose-allow-key <peer-id>', 'this peer key may expose ports (repeatable; the credentials the rendezvous hands out never can)', collect);
  return withGeneralOptions(withClusterOptions(withWorkerOptions(withAdminOptions(withOutboundOptions(withProxyProtocolOption(program))))), out);
}

/** The rendezvous' connection and name limits (in the rendezvous options group, where they are added). */
function withRendezvousLimitOptions(program: Command): Command {
  return program
    .option('--rendezvous-connections-per-source <n>', 'rendezvous WebSocket connections per source address, IPv6 per /64 (default 64)', numberArg)
    .option('--rendezvous-max-connections <n>', 'rendezvous WebSocket connections in all, from every source (default 10000)', numberArg)
    .option('--rendezvous-names-per-key <n>', 'names one peer key may claim (default 8)', numberArg)
    .option('--rendezvous-name-ttl-days <days>', 'a name whose owner has not registered for this long is released (default 30)', numberArg);
}

/** The admin listener's options. */
function withAdminOptions(program: Command): Command {
  return program
    .optionsGroup('Admin options (Prometheus metrics):')
    .option('--admin-port <port>', 'serve Prometheus metrics at http://ADMIN-LISTEN:PORT/metrics (default off; 0 picks a port)', portArg)
    .option('--admin-listen <ip>', 'address of the admin listener (default 127.0.0.1; any other needs a token)')
    .option('--admin-token-file <file>', 'file holding the bearer token every admin request must carry (or NAT_SERVER_ADMIN_TOKEN)');
}

/** --version, --log-level, --config, --help, and how the program reports. */
function withGeneralOptions(program: Command, out: Out): Command {
  return program
    .optionsGroup('General options:')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .addOption(new Option('--log-level <level>', 'log level of the JSON log on stdout').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('-c, --config <file>', 'YAML or JSON config file; flags override its keys')
    .option(
      '--check-config <file>',
      'read and check this config file (with the flags given), the files it names (users file, TLS certificate and key, admin token), and exit: 0 valid, 2 not',
    )
    .helpOption('-h, --help', 'print this help and exit')
    .addHelpText('after', HELP_AFTER)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.stdout.write(s), writeErr: (s) => out.stderr.write(s), outputError: () => {} });
}

/** Flag values under their config keys (undefined: not given). */
function flagValues(o: Flags): Record<string, unknown> {
  return {
    listen: o.listen,
    alternate: o.alternate,
    externalIps: o.externalIp,
    port: o.port,
    altPort: o.altPort === false ? null : o.altPort,
    tcp: o.tcp === false ? false : undefined,
    tlsPort: o.tlsPort,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    software: o.software,
    rateLimit: o.rateLimit === undefined ? undefined : { perSecond: o.rateLimit, ...(o.rateBurst !== undefined ? { burst: o.rateBurst } : {}) },
    maxConnections: o.maxConnections,
    maxConnectionsPerSource: o.maxConnectionsPerSource,
    idleTimeout: o.idleTimeout,
    tlsHandshakeTimeout: o.tlsHandshakeTimeout,
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
    sourceQuota: o.sourceQuota,
    tcpConnectsPerAllocation: o.tcpConnects,
    tcpIncomingPerAllocation: o.tcpIncoming,
    bandwidth: o.bandwidth,
    strictChannelRange: o.strictChannelRange,
    legacyChannelNumbers: o.legacyChannelNumbers,
    alternateServer: o.alternateServer,
    rendezvousPort: o.rendezvousPort,
    rendezvousHost: o.rendezvousHost,
    rendezvousIceUrls: o.rendezvousIceUrl,
    exposePorts: o.exposePorts,
    exposePublicIp: o.exposePublicIp,
    exposeSessionsPerSource: o.exposeSessionsPerSource,
    exposeConnectionsPerSource: o.exposeConnectionsPerSource,
    exposePeerKeys: o.exposeAllowKey,
    ...outboundFlagValues(o),
    rendezvousPeerKeys: o.rendezvousAllowKey,
    rendezvousTokens: o.rendezvousToken,
    rendezvousConnectionsPerSource: o.rendezvousConnectionsPerSource,
    rendezvousMaxConnections: o.rendezvousMaxConnections,
    rendezvousNamesPerKey: o.rendezvousNamesPerKey,
    rendezvousNameTtlDays: o.rendezvousNameTtlDays,
    anonymousRelayPerPeer: o.anonymousRelayPerPeer,
    anonymousRelayTotal: o.anonymousRelayTotal,
    anonymousRelayBandwidth: o.anonymousRelayBandwidth,
    adminPort: o.adminPort,
    adminListen: o.adminListen,
    adminTokenFile: o.adminTokenFile,
    adminToken: process.env.NAT_SERVER_ADMIN_TOKEN === '' ? undefined : process.env.NAT_SERVER_ADMIN_TOKEN,
  };
}

/** The flags of `argv`; undefined after --help or --version. Throws ConfigError for bad flags. */
function parseArgv(argv: string[], out: Out): (Flags & { workers?: number | 'auto' }) | undefined {
  const program = buildProgram(out);
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message: string };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return undefined;
    const hint = err.code === 'commander.unknownOption' ? '; nat-server --help lists the options' : '';
    throw new ConfigError(`${err.message.replace(/^error: /, '').replace(/\n/g, ' ')}${hint}`);
  }
  return program.opts<Flags & { workers?: number | 'auto' }>();
}

/**
 * Parses argv, starts the server and returns it; `main.ts` adds signal handling. Throws
 * ConfigError (exit 2) for bad flags or config, ServerError (exit 1) when sockets cannot be bound.
 */
export async function run(argv: string[], out: Out = process): Promise<RunningServer | undefined> {
  const o = parseArgv(argv, out);
  if (o === undefined) return undefined;
  const file = o.checkConfig ?? o.config;
  const fromFile = file ? await readConfigFile(file) : {};
  const flags = { ...flagValues(o), ...clusterFlagValues(o), ...proxyProtocolFromFlag(o.proxyProtocolFrom), workers: o.workers };
  if (!o.listen && !fromFile.listen) throw new ConfigError('give at least one --listen IP address (or "listen" in --config); see nat-server --help');
  const config = resolveConfig(fromFile, flags, file ? `${file} and flags` : 'flags');
  if (o.checkConfig !== undefined) {
    const checked = await checkConfigFiles(config);
    out.stdout.write(`${o.checkConfig}: valid\n${checked.summary.map((l) => `  ${l}\n`).join('')}`);
    for (const w of checked.warnings) out.stderr.write(`warning: ${w}\n`);
    return undefined;
  }
  const split = await startWorkersOf(config, { file, flags, argv, out, version: VERSION });
  if (split !== undefined) return split;
  return startOneProcess(config, { file, flags, out, version: VERSION });
}

export { ConfigError, ServerError, noRelayWarning };
