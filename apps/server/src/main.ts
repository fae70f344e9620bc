#!/usr/bin/env node
import { ConfigError, ExitCode, ServerError, run } from './cli.js';

try {
  const server = await run(process.argv.slice(2));
  if (server) {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${signal}: closing sockets\n`);
      server.stop().then(
        () => process.exit(ExitCode.Ok),
        () => process.exit(ExitCode.Failure),
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  }
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
