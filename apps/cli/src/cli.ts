import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { detectCommand } from './commands/detect.js';
import { exposePublicCommand } from './commands/expose-public.js';
import { ownerCommand } from './commands/owner.js';
import { idCommand } from './commands/id.js';
import { listenCommand } from './commands/listen.js';
import { mapAddCommand, mapListCommand, mapRemoveCommand } from './commands/map.js';
import { pingCommand } from './commands/ping.js';
import { collectRendezvous } from './commands/rendezvous-nodes.js';
import { stunCommand } from './commands/stun.js';
import { connectCommand, exposeCommand } from './commands/tunnel.js';
import { turnCommand, turnCredentialsCommand } from './commands/turn.js';
import { ExitCode, UsageError } from './exit-codes.js';
import type { Io } from './io.js';

const positiveInt =
  (what: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError(`expected ${what}`);
    return n;
  };

/** The version in this package's package.json (one folder above src/ and dist/). */
function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/**
 * Commander checks required options before unknown ones, so `nat detect --bogus` would complain
 * about --server first. The required options of every command are checked here instead, after
 * commander has refused unknown options and bad arguments.
 */
function checkRequiredLast(program: Command): void {
  const required = new Map<Command, Option[]>();
  const walk = (c: Command): void => {
    const opts = c.options.filter((o) => o.mandatory);
    for (const o of opts) o.mandatory = false;
    if (opts.length > 0) required.set(c, opts);
    c.commands.forEach(walk);
  };
  walk(program);
  program.hook('preAction', (_program, command) => {
    for (const o of required.get(command) ?? []) {
      if (command.getOptionValue(o.attributeName()) === undefined)
        throw new UsageError(`required option '${o.flags}' not specified (run nat ${command.name()} --help for usage)`);
    }
  });
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The help of `-r, --rendezvous` on the peer commands. */
const RENDEZVOUS_HELP =
  'rendezvous service, e.g. ws://127.0.0.1:8443/; several nodes: repeat the flag or separate URLs with commas (a host name with several addresses counts as several): registers with one (a random one) and moves to the next when it goes away';

/**
 * The options of every command that opens ICE connections (ping, listen, expose, connect): the
 * peer link's keepalive (`links`), host candidates, relay only, punching, and port mapping, whose
 * help says whose ports are mapped and, for links, that a link's mapping ends with it.
 */
function withIceOptions(command: Command, o: { readonly mapped: string; readonly links?: boolean }): Command {
  if (o.links === true) {
    command.option(
      '--keepalive <ms>',
      'peer link keepalive when idle, below the NAT binding lifetime; the link is declared dead after 3 intervals of silence (default 15000)',
      positiveInt('milliseconds'),
    );
    command.option(
      '--no-direct-streams',
      "keep the link's streams on the sealed route through the path, never straight on a direct pair's socket (slower; streams survive a peer moving either way)",
    );
  }
  return command
    .option('--host-address <ip>', 'gather host candidates on this address only, loopback allowed (repeatable)', collect, [])
    .option('--relay-only', 'no host or server-reflexive candidates: relay through TURN')
    .option('--no-punch', "do not probe this side's NAT mapping (up to 1 s) nor birthday-punch through a symmetric NAT")
    .option(
      '--port-map [gateway]',
      `ask the router (default: the IPv4 default gateway) to map ${o.mapped} UDP ports with PCP, NAT-PMP or UPnP IGD, for a direct ${o.links === true ? 'link' : 'path'} even when both NATs are hard; off by default because it opens ports on your real router (removed ${o.links === true ? 'when the link ends and on exit' : 'on exit'})`,
    );
}

/**
 * Runs `nat` with `argv` (without node and script) and resolves to the exit code. Nothing here
 * calls process.exit, so tests run it in-process.
 */
export async function runCli(argv: readonly string[], io: Io = process, signal: AbortSignal = new AbortController().signal): Promise<number> {
  let code: number = ExitCode.Ok;
  const program = new Command('nat')
    .description('NAT traversal from the command line: what NAT am I behind, what address does the world see.')
    .exitOverride()
    .enablePositionalOptions()
    .version(version(), '-V, --version', 'print the version of nat')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s), outputError: () => {} })
    .addHelpText('after', '\nExit codes: 0 done, 1 failure, 2 bad usage, 3 no server or peer answered.');

  program
    .command('detect')
    .description('classify the NAT between this host and a STUN server with two addresses (RFC 3489 type A-G and RFC 5780 behaviour)')
    .requiredOption('-s, --server <host[:port]>', 'STUN server with an alternate address (port 3478 by default), e.g. 127.0.0.1:3478')
    .option('-l, --local <ip>', 'local IP address to send from')
    .option('--json', 'print one JSON object (keys documented in the README) and no progress')
    .option('-q, --quiet', 'no progress lines')
    .option('--lifetime', 'also measure how long an idle mapping lives (RFC 5780 section 4.6; takes minutes)')
    .option('--classic', 'send classic RFC 3489 requests (for servers that only speak RFC 3489)')
    .option('--no-hairpinning', 'skip the hairpinning test')
    .option('-g, --gateway <ip>', 'router to probe for PCP, NAT-PMP and UPnP IGD (default: the IPv4 default gateway; not probed for a loopback server)')
    .option('--no-port-mapping', 'skip the port-mapping probes')
    .option('--rto <ms>', 'initial retransmission timeout per test (default 250)', positiveInt('milliseconds'))
    .option('--rc <n>', 'requests per test before giving up (default 4)', positiveInt('a count'))
    .addHelpText('after', '\nExample:\n  nat detect --server 127.0.0.1:3478\n  nat detect --server stun.example.org --json | jq .classic')
    .action(async (opts) => {
      code = await detectCommand(opts, io, signal);
    });

  program
    .command('stun')
    .description('send one STUN binding request and print the mapped (public) address')
    .argument('<host[:port]>', 'STUN server (port 3478, or 5349 for TLS, by default)')
    .addOption(new Option('-t, --transport <transport>', 'transport').choices(['udp', 'tcp', 'tls']).default('udp'))
    .option('-l, --local <ip>', 'local IP address to send from')
    .option('--json', 'print the response as JSON')
    .option('-k, --insecure', 'TLS: accept a self-signed or unverifiable certificate')
    .option('--rto <ms>', 'initial retransmission timeout (default 500)', positiveInt('milliseconds'))
    .option('--rc <n>', 'requests before giving up (default 7)', positiveInt('a count'))
    .action(async (server: string, opts) => {
      code = await stunCommand(server, opts, io, signal);
    });

  const turn = program
    .command('turn')
    .description('allocate a relayed address on a TURN server (RFC 8656); with --peer, relay stdin/stdout or run an echo test')
    .enablePositionalOptions()
    .option('-s, --server <host[:port]>', 'TURN server (port 3478, or 5349 for TLS)')
    .option(
      '-u, --user <name:password>',
      'long-term credentials; for a server with --auth-secret, EXPIRY:USER:PASSWORD (the username and password `nat turn credentials` prints, joined by a colon)',
    )
    .option('-p, --peer <ip:port>', 'peer to relay to')
    .addOption(new Option('-t, --transport <transport>', 'transport to the server').choices(['udp', 'tcp', 'tls']).default('udp'))
    .option('--echo', 'send probes to an echoing peer and print round-trip times')
    .option('-n, --count <n>', 'echo probes (default 5)', positiveInt('a count'))
    .option('--interval <ms>', 'time between echo probes (default 200)', positiveInt('milliseconds'))
    .option('--channel', 'bind a channel for the peer (ChannelData) instead of Send indications')
    .option('--hold', 'without --peer: keep the allocation until Ctrl-C')
    .option('-k, --insecure', 'TLS: accept a self-signed certificate')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  nat turn --server 127.0.0.1:3478 --user alice:secret\n  nat turn --server turn.example.org --user alice:secret --peer 198.51.100.7:9000 --echo\n  echo hello | nat turn --server 127.0.0.1 --user alice:secret --peer 198.51.100.7:9000 --channel',
    )
    .action(async (opts) => {
      if (!opts.server || !opts.user) throw new UsageError('nat turn needs --server HOST[:PORT] and --user NAME:PASSWORD');
      code = await turnCommand(opts, io, signal);
    });
  turn
    .command('credentials')
    .description('print TURN REST API time-limited credentials (username expiry:user, password base64(HMAC-SHA1(secret, username)))')
    .requiredOption('--secret <secret>', 'the shared secret configured on the server (--auth-secret)')
    .requiredOption('--user <name>', 'the user part of the username')
    .option('--ttl <seconds>', 'validity (default 86400)', positiveInt('seconds'), 86400)
    .option('--json', 'print JSON')
    .action((opts) => {
      code = turnCredentialsCommand(opts, io);
    });

  withIceOptions(
    program
      .command('ping')
      .description('connect to a peer through a rendezvous service (ICE: direct when possible, else relayed) and measure round trips')
      .argument('<peer-id>', 'the id `nat listen` printed')
      .requiredOption('-r, --rendezvous <url>', RENDEZVOUS_HELP, collectRendezvous)
      .option('--rendezvous-token <token>', 'invite token of a rendezvous that needs one (default: NAT_RENDEZVOUS_TOKEN)')
      .option('-i, --identity <file>', 'Ed25519 identity key (default: a new key for this run; nat listen answers any peer)')
      .option('-n, --count <n>', 'pings (default 4)', positiveInt('a count'))
      .option('--interval <ms>', 'time between pings (default 200)', positiveInt('milliseconds'))
      .option('--timeout <ms>', 'give up connecting after this long (default 10000)', positiveInt('milliseconds')),
    { mapped: "this peer's" },
  )
    .option('--json', 'print one JSON object: path, localCandidate, remoteCandidate, connectMs, directMs, rttMs, punched, nat, portMapping')
    .addHelpText('after', '\nExample:\n  nat ping 3xk2...9f --rendezvous ws://rv.example.org:8443/ --json')
    .action(async (peerId: string, opts) => {
      code = await pingCommand(peerId, opts, io, signal);
    });

  withIceOptions(
    program
      .command('listen')
      .description("register with a rendezvous service, print this peer's id, and answer connections and pings until Ctrl-C")
      .requiredOption('-r, --rendezvous <url>', RENDEZVOUS_HELP, collectRendezvous)
      .option('--rendezvous-token <token>', 'invite token of a rendezvous that needs one (default: NAT_RENDEZVOUS_TOKEN)')
      .option('-i, --identity <file>', 'Ed25519 identity key (default: the config directory, created on first use)'),
    { mapped: "this peer's" },
  )
    .option('--json', 'print {"id": ...} and then one JSON line per event')
    .option('--max-sessions <n>', 'inbound sessions at once, every peer together; more offers are refused (default 32)', positiveInt('a count'))
    .option('--max-offers-per-peer <n>', 'inbound sessions at once from one peer id; more offers are refused (default 4)', positiveInt('a count'))
    .action(async (opts) => {
      code = await listenCommand(opts, io, signal);
    });

  withIceOptions(
    program
      .command('expose')
      .description(
        'make a local TCP service reachable to allowed peers through peer links (encrypted, direct when possible, else relayed); with --public, to anyone through a public TCP or UDP port of the server',
      )
      .argument('[target]', 'the local service, IP:PORT (e.g. 127.0.0.1:15441, a ZeroNet fileserver)')
      .option('-n, --name <name>', "the name peers connect to; claimed on the rendezvous service and bound to this peer's key")
      .option('-r, --rendezvous <url>', `${RENDEZVOUS_HELP}; with --public, the one server whose port it is`, collectRendezvous)
      .option('--rendezvous-token <token>', 'invite token of a rendezvous that needs one (default: NAT_RENDEZVOUS_TOKEN)')
      .option('-a, --allow <peer-id>', 'a peer id allowed to connect (repeatable)', collect, [])
      .option('--allow-any', 'allow every peer registered with the rendezvous service')
      .option(
        '-c, --config <file>',
        'a JSON file with several services: {"rendezvous" (a URL or an array of them), "identity", "services": [{"name", "target", "allow", "allowAny"}]}; with --public: {"rendezvous", "user", "identity", "insecure", "outboundSocks", "advertisePeer"}',
      )
      .option('-i, --identity <file>', 'Ed25519 identity key (default: the config directory, created on first use)'),
    { mapped: "each peer link's", links: true },
  )
    .option('--public', 'expose through a public port of the server behind --rendezvous (frp/ngrok style): plain clients reach it, no peer software needed')
    .option(
      '-u, --user <name:password>',
      '--public: a user of the server (static NAME:PASSWORD, or TURN REST EXPIRY:USER:PASSWORD from `nat turn credentials`); or --identity for a peer key',
    )
    .option('--public-port <port>', "--public: ask for this public port (e.g. the service's own); default any free one", positiveInt('a port'))
    .option('--udp', '--public: expose a UDP service (datagrams keep their sender address)')
    .option(
      '--proxy-protocol',
      "send a PROXY protocol v2 header to TARGET on each connection: the real source address (with --public), or the peer link's remote address",
    )
    .option('--allow-source <cidr>', '--public: only these source prefixes may connect (repeatable)', collect, [])
    .option('--deny-source <cidr>', '--public: these source prefixes may not connect (repeatable)', collect, [])
    .option('-k, --insecure', '--public: accept a self-signed certificate on a wss:// rendezvous URL')
    .option('--advertise-peer', "--public: let the server tell this peer's id (--identity, else the default identity) as the port's owner (nat owner PORT)")
    .option(
      '--outbound-socks <ip:port>',
      "--public: a SOCKS5 proxy on this loopback address (port 0 picks one) whose connections the server opens from its public address (needs nat-server --expose-outbound), e.g. for a fileserver's tracker announces",
    )
    .option('--json', 'one JSON status line per event ({"event": "ready", "id", "services"}, "path", "link", "port-mapping", "refused", ...)')
    .option('--max-sessions <n>', 'inbound peer sessions at once, every peer together; more offers are refused (default 32)', positiveInt('a count'))
    .option('--max-offers-per-peer <n>', 'inbound peer sessions at once from one peer id; more offers are refused (default 4)', positiveInt('a count'))
    .addHelpText(
      'after',
      '\nExamples:\n  nat expose 127.0.0.1:15441 --name zeronet-home --rendezvous ws://rv.example.org:8443/ --allow 3xk2...9f\n  nat expose --config services.json --rendezvous ws://rv.example.org:8443/\n  nat expose 127.0.0.1:15441 --public --rendezvous ws://rv.example.org:8443/ --user alice:secret --public-port 15441',
    )
    .action(async (target: string | undefined, opts) => {
      if ((opts.outboundSocks !== undefined || opts.advertisePeer === true) && opts.public !== true)
        throw new UsageError(
          `${opts.outboundSocks !== undefined ? '--outbound-socks' : '--advertise-peer'} goes with --public: it is about a public port of the server`,
        );
      if (opts.public === true) {
        if (opts.portMap !== undefined)
          throw new UsageError(
            "--port-map maps the ports of peer links; nat expose --public opens none (plain clients come in through the server's public port)",
          );
        code = await exposePublicCommand(target, opts, io, signal);
        return;
      }
      code = await exposeCommand(target, opts, io, signal);
    });

  withIceOptions(
    program
      .command('connect')
      .description("open a local TCP port whose connections reach a peer's exposed service over one encrypted peer link")
      .argument(
        '<name-or-peer-id>',
        "the name given to nat expose --name (the rendezvous says which peer owns it; NAME@PEER_ID refuses any other owner), or the exposing peer's id",
      )
      .requiredOption('-l, --listen <ip:port>', 'local address to listen on, e.g. 127.0.0.1:15442 (port 0 picks one; it is printed)')
      .requiredOption('-r, --rendezvous <url>', RENDEZVOUS_HELP, collectRendezvous)
      .option('--rendezvous-token <token>', 'invite token of a rendezvous that needs one (default: NAT_RENDEZVOUS_TOKEN)')
      .option('-s, --service <name>', 'with a peer id: which of its services (default: its only one)')
      .option('-i, --identity <file>', 'Ed25519 identity key (default: the config directory, created on first use)'),
    { mapped: "the peer link's", links: true },
  )
    .option('--json', 'one JSON status line per event ({"event": "listening"}, "path", "link", "port-mapping", "link-lost", "reconnected", ...)')
    .addHelpText('after', '\nExample:\n  nat connect zeronet-home --listen 127.0.0.1:15442 --rendezvous ws://rv.example.org:8443/')
    .action(async (nameOrPeer: string, opts) => {
      code = await connectCommand(nameOrPeer, opts, io, signal);
    });

  const portArg = (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port (1-65535)');
    return n;
  };
  const map = program
    .command('map')
    .description('open a port on the router with PCP, NAT-PMP or UPnP IGD (tried at once; the first that works is used)')
    .enablePositionalOptions();
  map
    .command('add')
    .description('map PORT on the router to this host, renew the lease until Ctrl-C (or SIGTERM), then remove it')
    .argument('<port>', 'local port of the service', portArg)
    .addOption(new Option('-p, --protocol <protocol>', 'transport').choices(['udp', 'tcp']).default('udp'))
    .option('-e, --external <port>', 'wanted external port (default PORT; another is taken when it is in use)', portArg)
    .option('--exact', 'fail instead of taking another external port')
    .option('-l, --lifetime <s>', 'lease in seconds, renewed at half-life (default 7200)', positiveInt('seconds'))
    .addOption(new Option('-m, --method <method>', 'use only this method').choices(['pcp', 'natpmp', 'upnp']))
    .option('-g, --gateway <ip>', 'router address (default: the IPv4 default gateway)')
    .option('--state <file>', "where mappings are remembered, so that a crashed run's are removed (default ~/.local/state/nat/portmap.json)")
    .option('--json', 'one JSON line per event: mapped, renewed, restored, error, removed')
    .addHelpText('after', '\nExamples:\n  nat map add 15441 --protocol tcp\n  nat map add 7000 --external 17000 --lifetime 600 --json')
    .action(async (port: number, opts) => {
      code = await mapAddCommand(port, opts, io, signal);
    });
  map
    .command('list')
    .description('show which methods the router offers and the mappings held by this host')
    .option('-g, --gateway <ip>', 'router address (default: the IPv4 default gateway)')
    .option('--state <file>', 'state file (default ~/.local/state/nat/portmap.json)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      code = await mapListCommand(opts, io);
    });
  map
    .command('remove')
    .description('remove the mapping of PORT (internal or external) held by this host')
    .argument('<port>', 'the port', portArg)
    .addOption(new Option('-p, --protocol <protocol>', 'only this transport').choices(['udp', 'tcp']))
    .option('--state <file>', 'state file (default ~/.local/state/nat/portmap.json)')
    .option('--json', 'print JSON')
    .action(async (port: number, opts) => {
      code = await mapRemoveCommand(port, opts, io);
    });

  program
    .command('id')
    .description("print this machine's peer id (what other peers name in --allow), from the default identity or --identity FILE (created on first use)")
    .option('-i, --identity <file>', 'Ed25519 identity key (default: the config directory, created on first use)')
    .option('--json', 'print {"id", "identity", "created"}')
    .action(async (opts) => {
      code = await idCommand(opts, io);
    });

  program
    .command('owner')
    .description('print the peer id that owns a public port of a nat-server, when its owner advertised it (nat expose --public --advertise-peer)')
    .argument('<port>', "the public port, or HOST:PORT: a public port of another node sharing the server's Redis (HOST: that node's public IP)")
    .option(
      '-r, --rendezvous <url>',
      'the rendezvous URL of the server whose public port it is (or of any node of its cluster), e.g. ws://rv.example.org:8443/',
    )
    .option('--udp', 'a public UDP port (default TCP)')
    .option('-k, --insecure', 'accept a self-signed certificate on a wss:// URL')
    .option('--json', 'print {"event": "owner", "peer", "address", "port", "transport"} (or "not-advertised")')
    .action(async (port: string, opts) => {
      code = await ownerCommand(port, opts, io);
    });

  checkRequiredLast(program);
  if (argv.length === 0) {
    io.stderr.write(program.helpInformation());
    return ExitCode.Usage;
  }
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message: string };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.Ok;
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      io.stderr.write(`nat: ${err.message.replace(/^error: /, '')}\n(run nat --help for usage)\n`);
      return ExitCode.Usage;
    }
    if (e instanceof UsageError) {
      io.stderr.write(`nat: ${e.message}\n`);
      return ExitCode.Usage;
    }
    if (e instanceof Error && e.name === 'StunClientError' && (e as { code?: string }).code === 'ABORTED') {
      io.stderr.write('nat: interrupted\n');
      return 130;
    }
    io.stderr.write(`nat: ${e instanceof Error ? e.message : String(e)}\n`);
    return ExitCode.Failure;
  }
  return code;
}
