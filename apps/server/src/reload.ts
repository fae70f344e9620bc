/**
 * Reloading without a restart (SIGHUP, `systemctl reload`, the status page's button): the
 * config file is read again with the same flags and checked as `--check-config` checks it; a
 * configuration that fails is refused with the reason and the running one kept. What a reload
 * changes: the users file and static users, the REST secrets (TURN, expose, the credentials the
 * rendezvous hands out) and the TLS certificate and key; existing allocations and sessions stay.
 * A reload that would change whether TURN runs at all (realm, or secrets where there were none)
 * needs a restart: such keys are named.
 * Other keys that changed are named as needing a restart, and keep their running value.
 */
import type { PasswordAlgorithm } from '@nat/protocol';
import type { TurnAuthenticator } from '@nat/server';
import { type CheckedConfig, checkConfigFiles } from './check-config.js';
import { ConfigError, type ServerConfig, readConfigFile, resolveConfig } from './config.js';

/** Keys a reload applies. */
export const RELOADED_KEYS: ReadonlySet<string> = new Set(['users', 'usersFile', 'authSecrets', 'tlsCert', 'tlsKey']);

/** A TURN/expose authenticator whose source can be replaced while it serves. */
export class SwappableAuthenticator implements TurnAuthenticator {
  #current: TurnAuthenticator;
  constructor(initial: TurnAuthenticator) {
    this.#current = initial;
  }
  keys(username: string, realm: string, algorithm: PasswordAlgorithm, now: number): readonly Uint8Array[] {
    return this.#current.keys(username, realm, algorithm, now);
  }
  /** The current source's lookup (coturn's Redis user database), if it has one. */
  prepare(username: string, realm: string, now: number): Promise<void> | undefined {
    return this.#current.prepare?.(username, realm, now);
  }
  replace(next: TurnAuthenticator): void {
    this.#current = next;
  }
}

/** A configuration read again: what it is, what its files hold, and which changed keys need a restart. */
export interface ReloadedConfig {
  readonly config: ServerConfig;
  readonly checked: CheckedConfig;
  /** Reloadable keys whose value changed. */
  readonly applied: readonly string[];
  /** Other keys whose value changed: they keep their running value until a restart. */
  readonly needRestart: readonly string[];
}

/** Reads `file` again with `flags` and checks it; throws ConfigError (the reason) when it cannot be used. */
export async function readReload(file: string | undefined, flags: Record<string, unknown>, running: ServerConfig): Promise<ReloadedConfig> {
  const fromFile = file === undefined ? {} : await readConfigFile(file);
  const config = resolveConfig(fromFile, flags, file === undefined ? 'flags' : `${file} and flags`);
  const checked = await checkConfigFiles(config);
  const changed = (Object.keys(config) as (keyof ServerConfig)[]).filter((k) => JSON.stringify(config[k]) !== JSON.stringify(running[k]));
  return {
    config,
    checked,
    applied: changed.filter((k) => RELOADED_KEYS.has(k)),
    needRestart: changed.filter((k) => !RELOADED_KEYS.has(k)),
  };
}

/** What a reload acts on in a running server. */
export interface ReloadTargets {
  /** The config file and the flags the server started with. */
  readonly file: string | undefined;
  readonly flags: Record<string, unknown>;
  /** The running configuration (replaced by each successful reload). */
  config: ServerConfig;
  readonly turnAuth: SwappableAuthenticator;
  readonly exposeAuth: SwappableAuthenticator;
  readonly stun: { setTlsCredentials(c: { cert: string; key: string }): void };
  readonly rendezvous?: { setTurnSecret(secret: string): void };
}

/**
 * Reloads: reads and checks the configuration, then swaps the authenticators, the rendezvous's
 * signing secret and the TLS certificate. Resolves to what it did, in words; rejects with the
 * reason (ConfigError) and changes nothing when the configuration cannot be used.
 */
export async function reload(
  t: ReloadTargets,
  turnAuthOf: (c: ServerConfig) => Promise<TurnAuthenticator>,
  usersOf: (c: ServerConfig) => Promise<TurnAuthenticator>,
): Promise<string> {
  const r = await readReload(t.file, t.flags, t.config);
  const structural = r.needRestart.filter((k) => k !== 'adminToken' && k !== 'adminTokenFile');
  const turnOnOff =
    (t.config.realm === undefined) !== (r.config.realm === undefined) || (t.config.authSecrets.length === 0) !== (r.config.authSecrets.length === 0);
  if (turnOnOff)
    throw new ConfigError('this change turns TURN or its REST secrets on or off: restart nat-server to apply it (the running configuration is kept)');
  const [turnAuth, exposeAuth] = await Promise.all([turnAuthOf(r.config), usersOf(r.config)]);
  if (r.checked.tls !== undefined) t.stun.setTlsCredentials(r.checked.tls);
  t.turnAuth.replace(turnAuth);
  t.exposeAuth.replace(exposeAuth);
  const secret = r.config.authSecrets[0];
  if (secret !== undefined) t.rendezvous?.setTurnSecret(secret);
  t.config = { ...t.config, ...Object.fromEntries([...RELOADED_KEYS].map((k) => [k, r.config[k as keyof ServerConfig]])) } as ServerConfig;
  const did = [
    `users and secrets re-read${r.applied.length > 0 ? ` (changed: ${r.applied.join(', ')})` : ''}`,
    ...(r.checked.tls !== undefined ? [`TLS certificate valid until ${r.checked.tls.validTo.toISOString()}`] : []),
  ];
  const later = [...structural, ...r.needRestart.filter((k) => k === 'adminToken' || k === 'adminTokenFile')];
  return `${did.join('; ')}${later.length > 0 ? `; changed keys that need a restart (running values kept): ${later.join(', ')}` : ''}`;
}
