#!/usr/bin/env node
import { runCli } from './cli.js';

// Ctrl-C and SIGTERM both stop the running command the same way: the signal aborts, the command
// closes its connections and removes its port mappings, then exits. A second signal while that
// cleanup runs exits at once (128 + signal number, as a shell reports it).
const controller = new AbortController();
const stop = (signal: NodeJS.Signals, code: number) => (): void => {
  if (controller.signal.aborted) process.exit(code);
  controller.abort();
  process.once(signal, stop(signal, code));
};
// A reader that went away (`nat --help | head -1`, a script that stopped reading --json lines) is
// not a crash: stop the command as Ctrl-C would (its cleanup still runs), writing nothing more.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  controller.abort();
});
process.once('SIGINT', stop('SIGINT', 130));
process.once('SIGTERM', stop('SIGTERM', 143));
process.exitCode = await runCli(process.argv.slice(2), process, controller.signal);
