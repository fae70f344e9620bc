import { Command, InvalidArgumentError, Option } from 'commander';
import { detectCommand } from './commands/detect.js';
import { stunCommand } from './commands/stun.js';
import { ExitCode, UsageError } from './exit-codes.js';
import type { Io } from './io.js';

const positiveInt = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError(`expected ${what}`);
  return n;
};

/**
 * Runs `nat` with `argv` (without node and script) and resolves to the exit code. Nothing here
 * calls process.exit, so tests run it in-process.
 */
export async function runCli(argv: readonly string[], io: Io = process, signal: AbortSignal = new AbortController().signal): Promise<number> {
  let code: number = ExitCode.Ok;
  const program = new Command('nat')
    .description('NAT traversal from the command line: what NAT am I behind, what address does the world see.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s), outputError: () => {} })
    .addHelpText('after', '\nExit codes: 0 done, 1 failure, 2 bad usage, 3 no server answered.');

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
