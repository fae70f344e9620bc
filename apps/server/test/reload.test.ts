/**
 * Reloading without a restart (issue 17): SIGHUP to the built nat-server re-reads the users
 * file and the TLS certificate. A user added is served, a user removed is refused, an allocation
 * made before keeps relaying, new TLS connections get the new certificate; a users file that does
 * not parse is refused with the reason and the running configuration kept.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { TurnClient } from '@nat/client';
import { loadTlsCredentials } from '@nat/server';
import { afterAll, describe, expect, it } from 'vitest';
import { start, until } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'nat-server-reload-'));
const users = join(dir, 'users');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let server: ReturnType<typeof start> | undefined;
afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
});

async function certificate(commonName: string): Promise<void> {
  const c = await loadTlsCredentials({ selfSigned: true, commonName });
  writeFileSync(cert, c.cert);
  writeFileSync(key, c.key);
}

function peerName(address: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('nat-server reloads on SIGHUP', () => {
  it('users file and TLS certificate: new ones served, old allocations kept, a bad file refused', { timeout: 60_000 }, async () => {
    writeFileSync(users, 'alice:alice-pw\ncarol:carol-pw\n');
    await certificate('before.test');
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1\nport: 0\naltPort: null\ntlsPort: 0\ntlsCert: ${cert}\ntlsKey: ${key}\nrealm: reload.test\nusersFile: ${users}\nallowPeers: [127.0.0.0/8]\n`,
    );
    const s = start(['--config', config]);
    server = s;
    expect(await until(() => /listening tls (\S+) \(PP\)/.test(s.err()), 20_000), s.err()).toBe(true);
    const udp = /listening udp (\S+) \(PP\)/.exec(s.err())![1]!;
    const tls = /listening tls (\S+) \(PP\)/.exec(s.err())![1]!;
    const allocate = (username: string, password: string) =>
      TurnClient.connect({ server: udp, username, password, transport: 'udp', signal: AbortSignal.timeout(10_000) });
    expect(await peerName(tls)).toBe('before.test');
    const carol = await allocate('carol', 'carol-pw');

    writeFileSync(users, 'bob:bob-pw\ncarol:carol-pw\n');
    await certificate('after.test');
    s.child.kill('SIGHUP');
    expect(await until(() => /SIGHUP: reloaded: /.test(s.err()), 10_000), s.err()).toBe(true);
    expect(s.err()).toMatch(/SIGHUP: reloaded: users and secrets re-read; TLS certificate valid until \d{4}-/);

    const bob = await allocate('bob', 'bob-pw');
    await expect(allocate('alice', 'alice-pw')).rejects.toThrow(/401/);
    expect(await peerName(tls)).toBe('after.test');
    // carol's allocation, made before the reload, still relays (its authenticated requests still verify)
    await carol.createPermission(bob.relayedAddress);
    await bob.createPermission(carol.relayedAddress);
    const got = new Promise<void>((resolve) => bob.on('data', () => resolve()));
    carol.send(bob.relayedAddress, new Uint8Array([1, 2, 3]));
    await got;

    writeFileSync(users, 'bob:bob-pw\nnot a user line\n');
    s.child.kill('SIGHUP');
    expect(await until(() => /SIGHUP: reload refused/.test(s.err()), 10_000), s.err()).toBe(true);
    expect(s.err()).toMatch(/SIGHUP: reload refused, the running configuration is kept: --users-file \S+ line 2: expected name:password/);
    // the running users stay: carol still allocates, and the server did not stop
    const again = await allocate('carol', 'carol-pw');
    expect(s.child.exitCode).toBeNull();
    await Promise.all([carol.close(), bob.close(), again.close()]);
  });
});
