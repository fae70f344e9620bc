#!/usr/bin/env node
import { ConfigError, ExitCode, type RunningServer, ServerError, run } from './cli.js';

// SIGINT and SIGTERM are handled from the first moment: a signal that arrives while the server
// is still opening its sockets is remembered, and the server stops (exit 0) as soon as it is up,
// instead of dying by the signal with its sockets half open.
let server: RunningServer | undefined;
let pending: string | undefined;
let stopping = false;
const stop = (signal: string): void => {
  if (server === undefined) {
    pending ??= signal;
    return;
  }
  if (stopping) return;
  stopping = true;
  process.stderr.write(`${signal}: closing sockets\n`);
  server.stop().then(
    () => process.exit(ExitCode.Ok),
    () => process.exit(ExitCode.Failure),
  );
};
// A reader that went away (`nat-server --help | head -1`) is not a crash: stop as on SIGTERM.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  if (server === undefined) process.exit(ExitCode.Ok);
  stop('EPIPE on stdout');
});
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
// SIGHUP (systemctl reload) re-reads the users, secrets and TLS certificate; it never stops the server.
process.on('SIGHUP', () => {
  if (server === undefined || stopping) return void process.stderr.write('SIGHUP: ignored (the server is not running)\n');
  server.reload().then(
    (did) => process.stderr.write(`SIGHUP: reloaded: ${did}\n`),
    (e: unknown) => process.stderr.write(`SIGHUP: reload refused, the running configuration is kept: ${e instanceof Error ? e.message : String(e)}\n`),
  );
});

try {
  server = await run(process.argv.slice(2));
  if (server === undefined) process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM').removeAllListeners('SIGHUP');
  else if (pending !== undefined) stop(pending);
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`nat-server: ${e.message}\n`);
    process.exit(ExitCode.Usage);
  }
  if (e instanceof ServerError) {
    process.stderr.write(`nat-server: ${e.message}\n`);
    process.exit(ExitCode.Failure);
  }
  throw e;
}
