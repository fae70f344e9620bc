import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { peerIdFromPublicKey } from '@nat/protocol';

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

/**
 * Loads the identity from `file` (a PKCS#8 PEM Ed25519 private key), or, when the file does not
 * exist, makes a new one and writes it there with mode 0600, creating the parent directories
 * (mode 0700). Two processes racing to create it end up with the same key: the file is created
 * exclusively and the loser reads the winner's. Rejects (with the fs error, or a TypeError for a
 * file that is not an Ed25519 key) otherwise.
 */
export async function loadOrCreateIdentity(file: string = defaultIdentityPath()): Promise<LoadedIdentity> {
  const load = async (created: boolean): Promise<LoadedIdentity> => {
    const identity = identityFromPem(await readFile(file));
    return { ...identity, id: peerIdOf(identity), path: file, created };
  };
  try {
    return await load(false);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const identity = generateIdentity();
  const pem = identity.privateKey.export({ format: 'pem', type: 'pkcs8' });
  try {
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return load(false);
    throw error;
  }
  await chmod(file, 0o600); // whatever the umask
  return { ...identity, id: peerIdOf(identity), path: file, created: true };
}
