import { restApiSecrets, startStunServer, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { parseUser } from '../src/user.js';
import { capture } from './capture.js';

describe('NAME:PASSWORD', () => {
  it('splits a TURN REST username (EXPIRY:USER) at the last colon, a static one at the first', () => {
    expect(parseUser('1767225600:alice:q83Vr5Xo+Zt/AbCdEf0123456789=', '--user')).toEqual({
      username: '1767225600:alice',
      password: 'q83Vr5Xo+Zt/AbCdEf0123456789=',
    });
    expect(parseUser('1767225600:pw', '--user')).toEqual({ username: '1767225600', password: 'pw' });
    expect(parseUser('alice:pa:ss', '--user')).toEqual({ username: 'alice', password: 'pa:ss' });
    expect(() => parseUser('alice', 'NAT_EXPOSE_USER')).toThrow(/NAT_EXPOSE_USER: expected NAME:PASSWORD/);
    expect(() => parseUser(':pw', '--user')).toThrow(/--user/);
    expect(() => parseUser('alice:', '--user')).toThrow(/--user/);
  });
});

describe('nat turn --user with the output of nat turn credentials', () => {
  let server: StunServer;
  let port: number;
  beforeAll(async () => {
    server = await startStunServer({
      listen: ['127.0.0.1'],
      port: 0,
      altPort: null,
      rateLimit: { perSecond: 0 },
      turn: { realm: 'rest.test', auth: restApiSecrets(['s3cret']) },
    });
    port = server.listeners.find((l) => l.transport === 'udp')!.address.port;
  });
  afterAll(() => server.close());

  it('allocates with EXPIRY:USER:PASSWORD', async () => {
    const cred = capture();
    expect(await runCli(['turn', 'credentials', '--secret', 's3cret', '--user', 'alice', '--ttl', '600'], cred.io)).toBe(0);
    const username = /^username: (\S+)$/m.exec(cred.out())![1]!;
    const password = /^password: (\S+)$/m.exec(cred.out())![1]!;
    expect(username).toMatch(/^\d+:alice$/);
    const c = capture();
    expect(await runCli(['turn', '--server', `127.0.0.1:${port}`, '--user', `${username}:${password}`, '--json'], c.io), c.err()).toBe(0);
    expect(JSON.parse(c.out()).relayedAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
