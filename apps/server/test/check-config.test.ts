/**
 * `nat-server --check-config FILE` reads everything a start would read and exits 0 (valid) or 2
 * (not), naming the file and the key or flag, without binding anything.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTlsCredentials } from '@nat/server';
import { beforeAll, describe, expect, it } from 'vitest';
import { start } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'nat-server-check-'));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
let cert = '';
let key = '';
let otherKey = '';

beforeAll(async () => {
  const a = await loadTlsCredentials({ selfSigned: true, commonName: 'check.test' });
  const b = await loadTlsCredentials({ selfSigned: true, commonName: 'other.test' });
  cert = file('cert.pem', a.cert);
  key = file('key.pem', a.key);
  otherKey = file('other-key.pem', b.key);
});

const check = async (config: string, ...flags: string[]) => {
  const s = start(['--check-config', config, ...flags]);
  return { code: await s.exited, out: s.out(), err: s.err() };
};

describe('nat-server --check-config', () => {
  it('a valid config with a users file, a TLS certificate and an admin token: exit 0 and a summary', async () => {
    const users = file('users', '# comment\nalice:pw1\nbob:pw2\n');
    const token = file('token', 'check-config-admin-token-0123\n');
    const config = file(
      'ok.yaml',
      `listen: 192.0.2.10\nexternalIps: 203.0.113.10\nrealm: check.test\nusersFile: ${users}\nauthSecrets: [s3cret]\ntlsPort: 5349\ntlsCert: ${cert}\ntlsKey: ${key}\nadminPort: 9641\nadminTokenFile: ${token}\n`,
    );
    const r = await check(config);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`${config}: valid`);
    expect(r.out).toContain('listen 192.0.2.10, port 3478');
    expect(r.out).toContain('external 203.0.113.10 for 192.0.2.10 (told to clients instead)');
    expect(r.out).toContain('TURN realm check.test: 2 static user(s), 1 REST secret(s)');
    expect(r.out).toMatch(/TLS on port 5349: certificate valid until \d{4}-/);
    expect(r.out).toContain('admin listener 127.0.0.1:9641 (bearer token)');
    // secrets never printed
    expect(r.out + r.err).not.toMatch(/s3cret|pw1|check-config-admin-token/);
  });

  it('a key that does not belong to the certificate: exit 2, naming both files', async () => {
    const r = await check(file('mismatch.yaml', `listen: 127.0.0.1\ntlsPort: 0\ntlsCert: ${cert}\ntlsKey: ${otherKey}\n`));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--tls-key ${otherKey}: this key does not belong to the certificate in ${cert}`);
  });

  it('a certificate file that is not PEM, a missing users file, a bad key: exit 2 with the file named', async () => {
    const junk = file('junk.pem', 'not a certificate\n');
    let r = await check(file('junk.yaml', `listen: 127.0.0.1\ntlsCert: ${junk}\ntlsKey: ${key}\n`));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--tls-cert ${junk}: not a PEM certificate`);
    const missing = join(dir, 'no-such-users');
    r = await check(file('users.yaml', `listen: 127.0.0.1\nrealm: r\nusersFile: ${missing}\n`));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`cannot read users file ${missing}`);
    r = await check(file('keys.yaml', 'listen: 127.0.0.1\nport: 99999\n'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/config key "port": expected a port number 0-65535, got the number 99999/);
  });

  it('flags given with it are checked too, and nothing is bound', async () => {
    const config = file('flags.yaml', 'listen: 127.0.0.1\nport: 3478\n');
    const r = await check(config, '--admin-port', '9641', '--admin-listen', '0.0.0.0');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--admin-listen: the admin listener on an address other than loopback needs a token');
    // the same port twice at once: a check binds nothing, so both pass
    const [a, b] = await Promise.all([check(config), check(config)]);
    expect([a.code, b.code]).toEqual([0, 0]);
  });
});
