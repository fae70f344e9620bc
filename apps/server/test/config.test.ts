/**
 * Config files and flags: a list key takes one value on its own (`listen: 127.0.0.1`), and every
 * error names the key (or the flag) and says what it expects, in words.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../src/config.js';
import { start, until } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'nat-server-config-'));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const errorOf = (fromFile: Record<string, unknown>, flags: Record<string, unknown> = {}): string => {
  try {
    resolveConfig(fromFile, flags, 'test');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no ConfigError');
};

describe('nat-server --config with single values for list keys', () => {
  it('starts from a YAML file with "listen: 127.0.0.1" (one address, not a list)', async () => {
    const s = start(['--config', file('one.yaml', 'listen: 127.0.0.1\nport: 0\naltPort: null\nlogLevel: silent\n')]);
    try {
      expect(await until(() => /listening udp 127\.0\.0\.1:\d+/.test(s.err())), s.err()).toBe(true);
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
    expect(s.err()).not.toMatch(/invalid configuration/);
  });

  it('takes one value for every list key, and still takes lists', () => {
    const c = resolveConfig(
      {
        listen: '127.0.0.1',
        alternate: '127.0.0.2',
        realm: 'r',
        users: 'alice:pw',
        authSecrets: 'S',
        relayIps: '127.0.0.1',
        allowPeers: '127.0.0.0/8',
        denyPeers: '10.0.0.0/8',
        rendezvousIceUrls: 'stun:127.0.0.1:3478',
        rendezvousPort: 0,
        exposePorts: 20000,
        exposeDenySources: '192.0.2.0/24',
        rateLimit: 100,
      },
      {},
      'test',
    );
    expect(c).toMatchObject({
      listen: ['127.0.0.1'],
      alternate: ['127.0.0.2'],
      users: ['alice:pw'],
      authSecrets: ['S'],
      relayIps: ['127.0.0.1'],
      allowPeers: ['127.0.0.0/8'],
      denyPeers: ['10.0.0.0/8'],
      rendezvousIceUrls: ['stun:127.0.0.1:3478'],
      exposePorts: '20000',
      exposeDenySources: ['192.0.2.0/24'],
      rateLimit: { perSecond: 100 },
    });
    expect(resolveConfig({ listen: ['127.0.0.1', '::1'] }, {}, 'test').listen).toEqual(['127.0.0.1', '::1']);
  });
});

describe('config errors name the key and say what it expects, in words', () => {
  it('from a file: the key, what it expects, what it got; no zod jargon', async () => {
    const s = start(['--config', file('bad.yaml', 'listen: localhost\nport: 70000\nalternate: [127.0.0.2, 300.1.1.1]\nrelayIp: 127.0.0.1\n')]);
    expect(await s.exited).toBe(2);
    const err = s.err();
    expect(err).toContain(
      'config key "listen": expected an IP address or a list of up to 2 IP addresses (one per family), got the string "localhost" (not an IP address)',
    );
    expect(err).toContain('config key "port": expected a port number 0-65535, got the number 70000');
    expect(err).toMatch(
      /config key "alternate": expected an IP address or a list of up to 2 IP addresses .*, got the list \["127\.0\.0\.2", "300\.1\.1\.1"\] \(item 2, "300\.1\.1\.1", is not an IP address\)/,
    );
    expect(err).toContain('unknown config key "relayIp" (did you mean "relayIps"?)');
    expect(err).not.toMatch(/expected array|received|Too big|Invalid input|<=/);
  });

  it('from flags: names the flag', async () => {
    expect(errorOf({}, { listen: ['127.0.0.1'], alternate: ['300.1.1.1'] })).toMatch(
      /--alternate: expected an IP address .*, got the string "300\.1\.1\.1" \(not an IP address\)/,
    );
    expect(errorOf({}, { listen: ['127.0.0.1'], realm: 'r' })).toMatch(
      /--realm: TURN needs credentials: give --user, --users-file, --auth-secret or --redis-userdb/,
    );
    // Shared state in Redis (issue 18): each key's problem names its flag.
    expect(errorOf({}, { listen: ['127.0.0.1'], alternateOver: 5 })).toMatch(/--alternate-over: the nodes publish their load in Redis: set --redis/);
    expect(errorOf({}, { listen: ['127.0.0.1'], redis: 'localhost:6379' })).toMatch(
      /--redis: expected a redis:\/\/\[\[user\]:password@\]host:port\[\/db\] URL/,
    );
    expect(errorOf({}, { listen: ['127.0.0.1'], realm: 'r', redisUserdb: 'bogus' })).toMatch(
      /--redis-userdb: expected a redis:\/\/ URL or coturn's --redis-userdb string/,
    );
    expect(errorOf({}, { listen: ['127.0.0.1'], redis: 'redis://h:1', alternateOver: 9, workers: 2 })).toMatch(/--alternate-over: .*--workers 1/);
    expect(errorOf({}, { listen: ['127.0.0.1'], alternateServer: 'nowhere' })).toMatch(
      /--alternate-server: expected an address IP\[:PORT\], got the string "nowhere"/,
    );
    const s = start(['--listen', '127.0.0.1', '--rendezvous-host', 'localhost']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toMatch(/--rendezvous-host: expected an IP address, got the string "localhost" \(not an IP address\)/);
  });

  it('more cases: too many addresses, wrong types, bad ranges, contradicting keys', () => {
    expect(errorOf({ listen: ['127.0.0.1', '::1', '127.0.0.2'] })).toMatch(
      /config key "listen": expected an IP address or a list of up to 2 IP addresses .*, got the list \["127\.0\.0\.1", "::1", "127\.0\.0\.2"\]/,
    );
    expect(errorOf({ listen: '127.0.0.1', tcp: 'yes' })).toMatch(/config key "tcp": expected true or false, got the string "yes"/);
    expect(errorOf({ listen: '127.0.0.1', users: ['alice'] })).toMatch(
      /config key "users": expected a name:password user or a list of them, got the string "alice" \(not name:password\)/,
    );
    expect(errorOf({ listen: '127.0.0.1', rendezvousPort: 0, exposePorts: '20000-10000', users: 'a:b' })).toMatch(
      /config key "exposePorts": expected a port or a port range MIN-MAX, e\.g\. 20000-20099, got the string "20000-10000"/,
    );
    expect(errorOf({ listen: '127.0.0.1', strictChannelRange: true, legacyChannelNumbers: true })).toMatch(
      /config key "strictChannelRange": legacyChannelNumbers contradicts it/,
    );
    expect(errorOf({ listen: '127.0.0.1', logLevel: 'loud' })).toMatch(
      /config key "logLevel": expected one of fatal, error, warn, info, debug, trace, silent, got the string "loud"/,
    );
  });

  it('exposure is never anonymous: exposePeerKeys takes peer ids, not true; the new keys have their defaults and flags', () => {
    expect(errorOf({ listen: '127.0.0.1', rendezvousPort: 0, exposePorts: 20000, exposePeerKeys: true })).toMatch(
      /config key "exposePeerKeys": expected a peer id or a list of peer ids .*true, any key, is not allowed.*, got the boolean true/,
    );
    expect(errorOf({}, { listen: ['127.0.0.1'], rendezvousPeerKeys: ['nothex'] })).toMatch(
      /--rendezvous-allow-key: expected a peer id .*got the string "nothex" \(not a peer id/,
    );
    expect(errorOf({ listen: '127.0.0.1', rendezvousTokens: 'short' })).toMatch(/config key "rendezvousTokens"/);
    const id = 'a'.repeat(32);
    const c = resolveConfig({ listen: '127.0.0.1', rendezvousPort: 0, exposePorts: 20000, exposePeerKeys: id }, {}, 'test');
    expect(c.exposePeerKeys).toEqual([id]);
    expect(c).toMatchObject({
      rendezvousNamesPerKey: 8,
      rendezvousNameTtlDays: 30,
      rendezvousConnectionsPerSource: 64,
      rendezvousMaxConnections: 10_000,
      rendezvousHandshakeTimeout: 10,
      anonymousRelayPerPeer: 4,
      anonymousRelayTotal: 1000,
    });
  });
});

describe('TURN shares (issue 14 findings 6 and 7)', () => {
  it('--source-quota, --tcp-connects and --tcp-incoming reach the TURN options; their defaults are 64', async () => {
    const { toServerInit } = await import('../src/config.js');
    const given = await toServerInit(
      resolveConfig(
        { listen: ['127.0.0.1'], realm: 'r', users: ['a:b'] },
        { sourceQuota: 5, tcpConnectsPerAllocation: 6, tcpIncomingPerAllocation: 7 },
        'test',
      ),
    );
    expect(given.turn).toMatchObject({ sourceQuota: 5, tcpConnectsPerAllocation: 6, tcpIncomingPerAllocation: 7 });
    const defaults = await toServerInit(resolveConfig({ listen: ['127.0.0.1'], realm: 'r', users: ['a:b'] }, {}, 'test'));
    expect(defaults.turn).toMatchObject({ sourceQuota: 64, tcpConnectsPerAllocation: 64, tcpIncomingPerAllocation: 64 });
    expect(errorOf({ listen: ['127.0.0.1'] }, { sourceQuota: 0 })).toMatch(/--source-quota: expected a whole number of at least 1/);
  });
});

describe('the admin listener (issue 17: metrics)', () => {
  it('is off by default, on loopback when a port is given, and needs a token anywhere else', async () => {
    const c = resolveConfig({ listen: '127.0.0.1' }, {}, 'test');
    expect(c.adminPort).toBeUndefined();
    expect(c.adminListen).toBe('127.0.0.1');
    expect(errorOf({ listen: '127.0.0.1', adminPort: 9641 }, { adminListen: '0.0.0.0' })).toMatch(
      /--admin-listen: the admin listener on an address other than loopback needs a token: --admin-token-file FILE or NAT_SERVER_ADMIN_TOKEN/,
    );
    expect(errorOf({ listen: '127.0.0.1', adminToken: 'short' })).toMatch(/config key "adminToken": expected a bearer token of at least 16 characters/);
    const short = file('short-token', 'tooshort\n');
    const s = start(['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--admin-port', '0', '--admin-token-file', short]);
    expect(await s.exited).toBe(2);
    expect(s.err()).toContain(`--admin-token-file ${short}: the token in it has 8 characters; it needs at least 16`);
    const missing = join(dir, 'no-such-token');
    const m = start(['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--admin-port', '0', '--admin-token-file', missing]);
    expect(await m.exited).toBe(2);
    expect(m.err()).toContain(`--admin-token-file ${missing}: cannot read it (ENOENT)`);
  });
});
