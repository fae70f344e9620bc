import { defaultIdentityPath, loadOrCreateIdentity } from '@nat/client';
import { ExitCode } from '../exit-codes.js';
import type { Io } from '../io.js';

/** Options of `nat id`. */
export interface IdCommandOptions {
  readonly identity?: string;
  readonly json?: boolean;
}

/**
 * `nat id`: prints this machine's peer id (the one `nat listen` registers and other peers name
 * in `--allow`), from `--identity FILE` or the default identity, which is created on first use
 * as the other commands do.
 */
export async function idCommand(o: IdCommandOptions, io: Io): Promise<number> {
  const identity = await loadOrCreateIdentity(o.identity ?? defaultIdentityPath());
  if (o.json) io.stdout.write(`${JSON.stringify({ id: identity.id, identity: identity.path, created: identity.created })}\n`);
  else {
    io.stdout.write(`${identity.id}\n`);
    io.stderr.write(`identity ${identity.path}${identity.created ? ' (created now)' : ''}\n`);
  }
  return ExitCode.Ok;
}
