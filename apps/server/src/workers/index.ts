/** `nat-server --workers N`: which part this process plays, and its flag. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, type ServerConfig } from '../config.js';
import type { RunningServer } from '../running.js';
import type { Out } from '../services.js';
import { MAX_WORKERS, oneTlsPort, workerCount } from './plan.js';
import { runPrimary } from './primary.js';
import { runWorker, workerIdentity } from './worker.js';

const workersArg = (v: string): number | 'auto' => {
  if (v === 'auto') return 'auto';
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAX_WORKERS) throw new InvalidArgumentError(`expected auto or a whole number 1-${MAX_WORKERS}`);
  return Number(v);
};

/** The --workers option (config key `workers`). */
export function withWorkerOptions(program: Command): Command {
  return program
    .optionsGroup('Worker options (every core):')
    .addOption(
      new Option(
        '--workers <n>',
        `worker processes, 1-${MAX_WORKERS}, or auto: one per core, but one on a loopback-only server (default auto). STUN is answered by every worker; each TURN user's allocations live on one worker (300 Try Alternate to its port)`,
      ).argParser(workersArg),
    );
}

/**
 * Starts this process's part when it is not the one process of a single-process server: a
 * worker (started by a primary), or the primary of several workers. Undefined: run as one process.
 */
export async function startWorkersOf(
  config: ServerConfig,
  src: { file: string | undefined; flags: Record<string, unknown>; argv: readonly string[]; out: Out; version: string },
): Promise<RunningServer | undefined> {
  const me = workerIdentity();
  if (me !== undefined) return runWorker(config, me, src);
  const count = workerCount(config);
  if (count > 1 && oneTlsPort(config)) {
    throw new ConfigError(
      `--workers ${count} with --tls-port and --rendezvous-port: the TLS port serves the rendezvous too, which runs in one process; use --workers 1 (the default, auto, does)`,
    );
  }
  return count > 1 ? runPrimary(config, count, src) : undefined;
}
