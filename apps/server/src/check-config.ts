/**
 * `nat-server --check-config FILE`: everything a start would read, read and checked without
 * binding a socket: the config's keys, the users file, the TLS certificate and key (that they
 * parse, belong together, and when the certificate expires), the admin token file. The same
 * checks guard a reload (SIGHUP): a configuration that fails them is refused and the old one kept.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { redactRedisUrl } from '@nat/redis';
import { ConfigError, type ServerConfig, authenticatorOf } from './config.js';
import { externalOf } from './external-ip.js';

/** What a checked configuration loads: the TLS credentials and admin token as read, and a summary for people. */
export interface CheckedConfig {
  readonly tls?: { readonly cert: string; readonly key: string; readonly validTo: Date };
  readonly adminToken?: string;
  /** One line per service, in words. */
  readonly summary: readonly string[];
  /** Problems that do not stop a start (a certificate that expires soon). */
  readonly warnings: readonly string[];
}

const DAY = 86_400_000;

/** Reads and checks every file the configuration names; throws ConfigError naming the file and the key or flag. */
export async function checkConfigFiles(c: ServerConfig, now = Date.now()): Promise<CheckedConfig> {
  const summary: string[] = [`listen ${c.listen.join(', ')}${c.alternate.length > 0 ? ` (alternate ${c.alternate.join(', ')})` : ''}, port ${c.port}`];
  const warnings: string[] = [];
  // Behind a 1:1 NAT (--external-ip): what clients are told instead of each bound address.
  for (const m of externalOf(c)) summary.push(`external ${m.public} for ${m.private} (told to clients instead)`);
  if (c.realm !== undefined) {
    await authenticatorOf(c);
    const users = c.users.length + (c.usersFile !== undefined ? await countUsers(c.usersFile) : 0);
    summary.push(`TURN realm ${c.realm}: ${users} static user(s), ${c.authSecrets.length} REST secret(s), relay ports ${c.minPort}-${c.maxPort}`);
  }
  const tls = c.tlsCert !== undefined && c.tlsKey !== undefined ? await checkTls(c.tlsCert, c.tlsKey) : undefined;
  if (tls !== undefined) {
    const days = Math.floor((tls.validTo.getTime() - now) / DAY);
    if (days < 0) throw new ConfigError(`--tls-cert ${c.tlsCert}: the certificate expired on ${tls.validTo.toISOString()}`);
    if (days < 14) warnings.push(`--tls-cert ${c.tlsCert}: the certificate expires in ${days} day(s), on ${tls.validTo.toISOString()}`);
    summary.push(`TLS on port ${c.tlsPort ?? 5349}: certificate valid until ${tls.validTo.toISOString()}`);
  } else if (c.tlsPort !== undefined) summary.push(`TLS on port ${c.tlsPort}: a generated self-signed certificate (for local use)`);
  if (c.rendezvousPort !== undefined)
    summary.push(`rendezvous on port ${c.rendezvousPort}${c.exposePorts !== undefined ? `, public ports ${c.exposePorts}` : ''}`);
  const adminToken = c.adminTokenFile !== undefined ? await readAdminToken(c.adminTokenFile) : c.adminToken;
  if (c.redis !== undefined) summary.push(`several nodes: node ${c.nodeId ?? '(host name and rendezvous port)'} in Redis ${redactRedisUrl(c.redis)}`);
  if (c.adminPort !== undefined) summary.push(`admin listener ${c.adminListen}:${c.adminPort}${adminToken !== undefined ? ' (bearer token)' : ''}`);
  return { ...(tls !== undefined ? { tls } : {}), ...(adminToken !== undefined ? { adminToken } : {}), summary, warnings };
}

/** The admin token in a file (trimmed); ConfigError when it cannot be read or is shorter than 16 characters. */
export async function readAdminToken(path: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(path, 'utf8')).trim();
  } catch (e) {
    throw new ConfigError(`--admin-token-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (token.length < 16) throw new ConfigError(`--admin-token-file ${path}: the token in it has ${token.length} characters; it needs at least 16`);
  return token;
}

async function countUsers(path: string): Promise<number> {
  const text = await readFile(path, 'utf8');
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).length;
}

async function checkTls(certFile: string, keyFile: string): Promise<{ cert: string; key: string; validTo: Date }> {
  const read = async (path: string, flag: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      throw new ConfigError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  };
  const [cert, key] = await Promise.all([read(certFile, '--tls-cert'), read(keyFile, '--tls-key')]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new ConfigError(`--tls-cert ${certFile}: not a PEM certificate (${(e as Error).message})`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    const why = (e as Error).message;
    throw new ConfigError(
      /key values mismatch/i.test(why)
        ? `--tls-key ${keyFile}: this key does not belong to the certificate in ${certFile}`
        : `--tls-key ${keyFile}: cannot be used with ${certFile} (${why})`,
    );
  }
  return { cert, key, validTo: new Date(x509.validTo) };
}
