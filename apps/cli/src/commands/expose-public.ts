import { readFile, stat } from 'node:fs/promises';
import { type StunClientError, type ExposeCredentials, type ExposedAddress, defaultIdentityPath, exposePublic, loadOrCreateIdentity } from '@nat/client';
import { ipFamily } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';
import { parseSocksListen, startOutboundSocksOf } from './expose-outbound.js';
import { parseUser } from '../user.js';
import { singleRendezvous } from './rendezvous-nodes.js';

/** Flags of `nat expose TARGET --public`. */
export interface ExposePublicOptions {
  /** `--rendezvous URL`: the one server whose public port it is (a list of one works too). */
  readonly rendezvous?: string | readonly string[];
  readonly user?: string;
  readonly identity?: string;
  readonly publicPort?: number;
  readonly udp?: boolean;
  readonly proxyProtocol?: boolean;
  readonly allowSource?: readonly string[];
  readonly denySource?: readonly string[];
  readonly insecure?: boolean;
  /** `--outbound-socks IP:PORT`: a local SOCKS5 proxy whose connections the server opens from its public address. */
  readonly outboundSocks?: string;
  /** `--advertise-peer`: the server's owner lookup tells this peer's id for the port. */
  readonly advertisePeer?: boolean;
  readonly json?: boolean;
  /** `--config FILE`: rendezvous URL and credentials from a JSON file ({@link readPublicConfig}). */
  readonly config?: string;
}

/** What a `--config FILE` of `nat expose --public` may hold; the command line wins over it. */
export interface PublicExposeConfig {
  readonly rendezvous?: string;
  /** `NAME:PASSWORD` of a user of the server. */
  readonly user?: string;
  /** An Ed25519 identity key file the server accepts. */
  readonly identity?: string;
  readonly insecure?: boolean;
  /** As `--outbound-socks`. */
  readonly outboundSocks?: string;
  /** As `--advertise-peer`. */
  readonly advertisePeer?: boolean;
}

const CONFIG_KEYS: Readonly<Record<keyof PublicExposeConfig, 'string' | 'boolean'>> = {
  rendezvous: 'string',
  user: 'string',
  identity: 'string',
  insecure: 'boolean',
  outboundSocks: 'string',
  advertisePeer: 'boolean',
};

/**
 * Reads `{"rendezvous": "wss://...", "user": "NAME:PASSWORD", "identity": "FILE", "insecure":
 * false, "outboundSocks": "127.0.0.1:1080", "advertisePeer": true}` (every key optional, no other
 * key allowed), so the password stays off the command line.
 * A file with a password that other users may read gets a warning on `warn`.
 */
export async function readPublicConfig(file: string, warn: (line: string) => void): Promise<PublicExposeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new UsageError(`--config ${file}: expected a JSON object with "rendezvous", "user" or "identity"`);
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const type = CONFIG_KEYS[k as keyof PublicExposeConfig];
    if (type === undefined)
      throw new UsageError(
        `--config ${file}: unknown key ${JSON.stringify(k)} (with --public: rendezvous, user, identity, insecure, outboundSocks, advertisePeer)`,
      );
    if (typeof v !== type) throw new UsageError(`--config ${file}: ${JSON.stringify(k)} must be a ${type}`);
    config[k] = v;
  }
  if (config['user'] !== undefined && ((await stat(file)).mode & 0o077) !== 0)
    warn(`nat expose: ${file} holds a password and other users may read it (chmod 600 ${file})`);
  return config as PublicExposeConfig;
}

/** `IP:PORT`, `[IPv6]:PORT` or a bare `PORT` (on 127.0.0.1). Throws UsageError. */
export function parseTarget(text: string | undefined): { host: string; port: number } {
  if (text === undefined) throw new UsageError('nat expose --public needs TARGET, the local service as IP:PORT or PORT (e.g. 127.0.0.1:15441)');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const host = m?.[1] || m?.[2] || '127.0.0.1';
  const port = Number(m?.[3]);
  if (!m || ipFamily(host) === undefined || port < 1 || port > 65535)
    throw new UsageError(`TARGET ${JSON.stringify(text)}: expected IP:PORT or PORT, e.g. 127.0.0.1:15441`);
  return { host, port };
}

/** The flags, with the --config file's keys for those not given (the command line wins). */
function withConfig(o: ExposePublicOptions, config: PublicExposeConfig): ExposePublicOptions {
  return {
    ...o,
    rendezvous: singleRendezvous(o.rendezvous, 'nat expose --public') ?? config.rendezvous,
    insecure: o.insecure ?? config.insecure,
    outboundSocks: o.outboundSocks ?? config.outboundSocks,
    advertisePeer: o.advertisePeer ?? config.advertisePeer,
  };
}

/** The credentials of `nat expose --public`: --user, NAT_EXPOSE_USER, the config file's user, or an identity. Throws UsageError. */
async function credentialsOf(o: ExposePublicOptions, config: PublicExposeConfig, env: NodeJS.ProcessEnv): Promise<ExposeCredentials> {
  // NAT_EXPOSE_USER and --config keep the password off the command line (where `ps` shows it).
  const fromEnv = env['NAT_EXPOSE_USER'] !== undefined && env['NAT_EXPOSE_USER'] !== '' ? env['NAT_EXPOSE_USER'] : undefined;
  const user = o.user ?? fromEnv ?? (o.identity === undefined ? config.user : undefined);
  const identity = o.identity ?? config.identity;
  if (user !== undefined && user !== '')
    return parseUser(user, o.user !== undefined ? '--user' : fromEnv !== undefined ? 'NAT_EXPOSE_USER' : `"user" in --config ${o.config}`);
  if (identity !== undefined) return { identity: await loadOrCreateIdentity(identity) };
  throw new UsageError(
    'nat expose --public needs --user NAME:PASSWORD, NAT_EXPOSE_USER=NAME:PASSWORD in the environment or "user" in --config FILE (a user of the server), or --identity FILE (a peer key the server accepts)',
  );
}

/** What to do about each refusal of the port, when something can be done. */
const REFUSAL_HINTS: Readonly<Record<string, string>> = {
  unauthorized: 'check --user NAME:PASSWORD (or the key behind --identity) with the server operator',
  taken: 'another user holds that port: choose another --public-port, or omit it',
  'port-in-use': 'choose another --public-port, or leave it out (the server picks a free one)',
  'port-denied': 'choose another --public-port, or ask the server operator to let nat-server bind it',
  'out-of-range': 'ask the server operator which ports it hands out (nat-server --expose-ports)',
  'over-quota': 'stop another of your exposures first',
};

/**
 * `nat expose TARGET --public`: asks the server behind `--rendezvous` for a public port and
 * carries every public connection (or UDP datagram) to TARGET until Ctrl-C; reconnects with
 * backoff and asks for the same port again. Prints the public address (stdout: `ip:port`, or
 * one JSON line per event with --json). Exit codes: 0 stopped by Ctrl-C, 1 refused by the
 * server, 2 bad usage, 3 the server did not answer.
 */
export async function exposePublicCommand(
  targetText: string | undefined,
  o: ExposePublicOptions,
  io: Io,
  signal: AbortSignal,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const target = parseTarget(targetText);
  const config = o.config === undefined ? {} : await readPublicConfig(o.config, (line) => io.stderr.write(`${line}\n`));
  o = withConfig(o, config);
  const socksAt =
    o.outboundSocks === undefined
      ? undefined
      : parseSocksListen(o.outboundSocks, o.outboundSocks === config.outboundSocks ? '"outboundSocks"' : '--outbound-socks');
  const url = singleRendezvous(o.rendezvous, 'nat expose --public');
  if (url === undefined)
    throw new UsageError('nat expose --public needs --rendezvous URL (the ws:// or wss:// address of the rendezvous service), or "rendezvous" in --config');
  const credentials = await credentialsOf(o, config, env);
  // --advertise-peer: the key of --identity (else the default identity) is told as the port's owner.
  const advertise = o.advertisePeer ? await loadOrCreateIdentity(o.identity ?? config.identity ?? defaultIdentityPath()) : undefined;
  const transport = o.udp ? 'udp' : 'tcp';
  const out = (event: Record<string, unknown>, text: string | undefined, toStdout = false): void => {
    if (o.json) io.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    else if (text !== undefined) (toStdout ? io.stdout : io.stderr).write(`${text}\n`);
  };
  const tunnel = exposePublic({
    url,
    credentials,
    target,
    transport,
    ...(o.publicPort !== undefined ? { publicPort: o.publicPort } : {}),
    ...(o.proxyProtocol ? { proxyProtocol: true } : {}),
    ...(o.allowSource?.length ? { allow: o.allowSource } : {}),
    ...(o.denySource?.length ? { deny: o.denySource } : {}),
    ...(o.insecure ? { tls: { insecure: true } } : {}),
    ...(advertise ? { advertise } : {}),
    signal,
  });
  const json = (a: ExposedAddress): Record<string, unknown> => ({
    event: 'exposed',
    transport: a.transport,
    address: a.address,
    port: a.port,
    user: a.user,
    target: `${target.host}:${target.port}`,
    ...(advertise ? { peer: advertise.id } : {}),
  });
  let first = true;
  tunnel.on('exposed', (a) => {
    out(json(a), first ? a.address : `reconnected: ${a.transport} ${a.address}`, first);
    if (first && !o.json)
      io.stderr.write(
        `public ${a.transport} ${a.address} -> ${target.host}:${target.port} (as ${a.user}${advertise ? `, owner advertised as peer ${advertise.id}` : ''}); Ctrl-C stops\n`,
      );
    first = false;
  });
  tunnel.on('connection', (c) => out({ event: 'connection', transport: c.transport, source: `${c.source.address}:${c.source.port}` }, undefined));
  tunnel.on('disconnected', (d) =>
    out(
      { event: 'disconnected', error: d.error.message, retryInMs: d.retryInMs ?? null },
      d.retryInMs === undefined ? undefined : `connection to the server lost (${d.error.message}); retrying in ${d.retryInMs} ms`,
    ),
  );
  const closed = new Promise<StunClientError | undefined>((resolve) => tunnel.once('closed', (c) => resolve(c.error)));
  try {
    await tunnel.ready;
  } catch (e) {
    const err = e as StunClientError;
    if (err.code === 'ABORTED') return ExitCode.Ok;
    out({ event: 'failed', code: err.reason ?? err.code, error: err.message }, `nat expose: ${err.message}`);
    if (err.code === 'ERROR_RESPONSE') {
      if (!o.json && err.reason && REFUSAL_HINTS[err.reason]) io.stderr.write(`  ${REFUSAL_HINTS[err.reason]}\n`);
      return ExitCode.Failure;
    }
    return ExitCode.NoAnswer;
  }
  const socks = socksAt === undefined ? undefined : await startOutboundSocksOf(tunnel, socksAt, out);
  if (socks instanceof Error) {
    await tunnel.close();
    return ExitCode.Failure;
  }
  const error = await closed;
  await socks?.close();
  if (error === undefined || error.code === 'ABORTED') return ExitCode.Ok;
  out({ event: 'failed', code: error.reason ?? error.code, error: error.message }, `nat expose: ${error.message}`);
  return ExitCode.Failure;
}
