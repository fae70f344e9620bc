import { readFile } from 'node:fs/promises';
import { ServerError } from '../errors.js';

/** A TLS certificate chain and private key, PEM-encoded. */
export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
}

/** Where a server's TLS certificate comes from: PEM text, files, or a generated self-signed one. */
export type TlsCredentialsSource =
  | TlsCredentials
  | { readonly certFile: string; readonly keyFile: string }
  | { readonly selfSigned: true; readonly commonName?: string; readonly altIps?: readonly string[] };

/** Loads or generates the credentials. A self-signed certificate is for local use and tests only. */
export async function loadTlsCredentials(source: TlsCredentialsSource): Promise<TlsCredentials> {
  if ('cert' in source) return source;
  if ('certFile' in source) {
    try {
      const [cert, key] = await Promise.all([readFile(source.certFile, 'utf8'), readFile(source.keyFile, 'utf8')]);
      return { cert, key };
    } catch (e) {
      throw new ServerError('TLS', `cannot read the TLS certificate or key: ${(e as Error).message}`, { cause: e });
    }
  }
  // Loaded only when a self-signed certificate is wanted: the library costs ~170 ms at startup.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: source.commonName ?? 'nat-server.local' }], {
    keyType: 'ec',
    curve: 'P-256',
    notBeforeDate: new Date(Date.now() - 60_000),
    notAfterDate: new Date(Date.now() + 30 * 24 * 3600_000),
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: source.commonName ?? 'nat-server.local' },
          { type: 2, value: 'localhost' },
          ...(source.altIps ?? []).map((ip) => ({ type: 7 as const, ip })),
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
