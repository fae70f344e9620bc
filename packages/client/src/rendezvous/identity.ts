import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { peerIdFromPublicKey } from '@nat/protocol';
import { NatClientError } from '../errors.js';

/**
 * A peer's identity: an Ed25519 key pair, as node:crypto's `generateKeyPairSync('ed25519')`
 * returns it. The peer id is derived from the public key ({@link peerIdOf}).
 */
export interface RendezvousIdentity {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/** An identity loaded by {@link loadOrCreateIdentity}, with its id and where it lives. */
export interface LoadedIdentity extends RendezvousIdentity {
  /** The peer id. */
  readonly id: string;
  /** The key file. */
  readonly path: string;
  /** True when the file did not exist and a new key was written. */
  readonly created: boolean;
}

/** The 32-byte raw Ed25519 public key (RFC 8032) of a KeyObject, base64url without padding. */
export function rawPublicKeyBase64url(publicKey: KeyObject): string {
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`not an Ed25519 key: ${publicKey.asymmetricKeyType ?? publicKey.type}`);
  const jwk = publicKey.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new TypeError('Ed25519 key without x');
  return jwk.x;
}

/** The peer id of an identity (or of its public key). */
export function peerIdOf(identity: RendezvousIdentity | KeyObject): string {
  const key = 'publicKey' in identity ? identity.publicKey : identity;
  return peerIdFromPublicKey(Buffer.from(rawPublicKeyBase64url(key), 'base64url'));
}

/** A new random identity. */
export function generateIdentity(): RendezvousIdentity {
  return generateKeyPairSync('ed25519');
}

/**
 * Where the identity key lives by default: `$XDG_CONFIG_HOME/nat/identity.pem` when
 * XDG_CONFIG_HOME is set to an absolute path (the XDG Base Directory rule), else
 * `~/.config/nat/identity.pem`.
 */
export function defaultIdentityPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(homedir(), '.config');
  return join(base, 'nat', 'identity.pem');
}

/** The identity in a PKCS#8 PEM text. Throws TypeError when it is not an Ed25519 private key. */
export function identityFromPem(pem: string | Buffer): RendezvousIdentity {
  const privateKey = createPrivateKey({ key: pem, format: 'pem' });
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`not an Ed25519 private key: ${privateKey.asymmetricKeyType ?? '?'}`);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** Why an identity file could not be used: `READ` (it exists but cannot be read), `INVALID` (not an Ed25519 PKCS#8 PEM key), `CREATE` (it or its folder cannot be created). */
export type IdentityFileErrorCode = 'READ' | 'INVALID' | 'CREATE';

/** An identity file that cannot be read, parsed or created (a {@link NatClientError}); `path` names it, `cause` is the fs or key error. */
export class IdentityFileError extends NatClientError<IdentityFileErrorCode> {
  override readonly name = 'IdentityFileError';
  constructor(
    code: IdentityFileErrorCode,
    readonly path: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(code, message, options);
  }
}

const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;
const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Creates `dir` and its missing parents (mode 0700), one level at a time. Node's own recursive
 * mkdir never settles (and spins a core) where mkdir answers ENOENT for a folder whose parent
 * exists, as on /proc; here that is an error naming the folder.
 */
async function makeDirectories(dir: string, file: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      if ((await stat(d)).isDirectory()) break;
      throw new IdentityFileError('CREATE', file, `cannot create the identity file ${file}: ${d} is not a folder`);
    } catch (e) {
      if (e instanceof IdentityFileError) throw e;
      if (errnoOf(e) !== 'ENOENT' || dirname(d) === d)
        throw new IdentityFileError('CREATE', file, `cannot create the identity file ${file}: ${reasonOf(e)}`, { cause: e });
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    try {
      await mkdir(d, { mode: 0o700 });
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') continue;
      throw new IdentityFileError(
        'CREATE',
        file,
        `cannot create the identity file ${file}: cannot create the folder ${d} (${reasonOf(e)}); choose another --identity FILE`,
        { cause: e },
      );
    }
  }
}

/**
 * Loads the identity from `file` (a PKCS#8 PEM Ed25519 private key), or, when the file does not
 * exist, makes a new one and writes it there with mode 0600, creating the parent directories
 * (mode 0700). Two processes racing to create it end up with the same key: the file is created
 * exclusively and the loser reads the winner's. Rejects with an {@link IdentityFileError} naming
 * the file otherwise (code `READ`, `INVALID` or `CREATE`), at once.
 */
export async function loadOrCreateIdentity(file: string = defaultIdentityPath()): Promise<LoadedIdentity> {
  const load = async (created: boolean): Promise<LoadedIdentity> => {
    let pem: Buffer;
    try {
      pem = await readFile(file);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') throw e;
      throw new IdentityFileError('READ', file, `cannot read the identity file ${file}: ${reasonOf(e)}`, { cause: e });
    }
    let identity: RendezvousIdentity;
    try {
      identity = identityFromPem(pem);
    } catch (e) {
      throw new IdentityFileError(
        'INVALID',
        file,
        `the identity file ${file} is not an Ed25519 private key in PKCS#8 PEM (${reasonOf(e)}); move it away to get a new identity, or choose another --identity FILE`,
        { cause: e },
      );
    }
    return { ...identity, id: peerIdOf(identity), path: file, created };
  };
  try {
    return await load(false);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw error;
  }
  await makeDirectories(dirname(file), file);
  const identity = generateIdentity();
  const pem = identity.privateKey.export({ format: 'pem', type: 'pkcs8' });
  try {
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return load(false);
    throw new IdentityFileError('CREATE', file, `cannot create the identity file ${file}: ${reasonOf(error)}; choose another --identity FILE`, {
      cause: error,
    });
  }
  await chmod(file, 0o600); // whatever the umask
  return { ...identity, id: peerIdOf(identity), path: file, created: true };
}
