/**
 * `nat-server --redis-userdb` reads coturn's Redis user database as coturn's own tools write it:
 * a real redis-server, users and a REST secret written by coturn's `turnadmin -N`, a clear-text
 * password written as coturn's schema describes; TurnClient allocates on nat-server with each,
 * coturn's `turnserver --redis-userdb` on the same Redis accepts the same user, a user deleted
 * with turnadmin is refused after the cache TTL, and while Redis is down an uncached user gets
 * 500 (fail closed), never an allocation.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StunClientError, TurnClient } from '@nat/client';
import { restApiCredentials } from '@nat/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Node, randomNet, startNode, waitFor } from './nodes.js';
import { type RedisServer, startRedis } from './redis.js';

const run = promisify(execFile);
const TURNADMIN = '/usr/bin/turnadmin';
const TURNSERVER = '/usr/bin/turnserver';
const REALM = 'userdb.test';
const NET = randomNet();

let redis: RedisServer;
let node: Node;
let userdb = '';
const dir = mkdtempSync(join(tmpdir(), 'turn-userdb-'));

async function turnadmin(...args: string[]): Promise<void> {
  await run(TURNADMIN, [...args, '-N', userdb, '-r', REALM], { timeout: 20_000 });
}

/** An Allocate on `server` as `username`: the relayed address, or the STUN error code. */
async function allocate(server: string, username: string, password: string): Promise<number | 'ok'> {
  const c = await TurnClient.connect({ server, username, password, localAddress: `${NET}.50`, retransmission: { rto: 200, rc: 5, rm: 8 } }).catch(
    (e: unknown) => e,
  );
  if (c instanceof TurnClient) {
    await c.close();
    return 'ok';
  }
  if (c instanceof StunClientError && c.stunErrorCode !== undefined) return c.stunErrorCode;
  throw c;
}

beforeAll(async () => {
  for (const tool of [TURNADMIN, TURNSERVER]) if (!existsSync(tool)) throw new Error(`${tool} is missing: install coturn (scripts/install-test-deps.sh)`);
  redis = await startRedis();
  userdb = `host=127.0.0.1 port=${redis.port} dbname=0`;
  await turnadmin('-a', '-u', 'alice', '-p', 'alice-pw');
  await turnadmin('-a', '-u', 'bob', '-p', 'bob-pw');
  await turnadmin('-s', 'rest-secret');
  // coturn's other long-term form: the password in clear (schema.userdb.redis, Redis only).
  await redis.command('SET', `turn/realm/${REALM}/user/carol/password`, 'carol-pw');
  node = await startNode(`${NET}.1`, ['--realm', REALM, '--redis-userdb', userdb, '--redis-userdb-cache-ttl', '1', '--allow-peer', '127.0.0.0/8']);
}, 90_000);

afterAll(async () => {
  await node?.stop({ kill: true });
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('nat-server --redis-userdb (coturn layout)', () => {
  it('wrote what coturn documents: an MD5 key per user, a set of secrets', async () => {
    expect(await redis.command('GET', `turn/realm/${REALM}/user/alice/key`)).toContain('\r\n');
    expect(await redis.command('TYPE', `turn/realm/${REALM}/secret`)).toBe('+set\r\n');
  });

  it("allocates for turnadmin's users, the clear-text password and the REST secret; refuses a wrong password", async () => {
    expect(await allocate(node.server, 'alice', 'alice-pw')).toBe('ok');
    expect(await allocate(node.server, 'carol', 'carol-pw')).toBe('ok');
    const rest = restApiCredentials('rest-secret', 'dave', 600, Date.now());
    expect(await allocate(node.server, rest.username, rest.password)).toBe('ok');
    expect(await allocate(node.server, 'alice', 'wrong')).toBe(401);
    expect(await allocate(node.server, 'nobody', 'x')).toBe(401);
    const expired = restApiCredentials('rest-secret', 'dave', -10, Date.now());
    expect(await allocate(node.server, expired.username, expired.password)).toBe(401);
  }, 60_000);

  it('coturn reading the same Redis accepts the same user', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const minPort = 40_000 + Math.floor(Math.random() * 9) * 1000;
    const coturn = spawn(
      TURNSERVER,
      [
        '-n',
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '-L',
        `${NET}.2`,
        '-E',
        `${NET}.2`,
        '-p',
        String(port),
        '--min-port',
        String(minPort),
        '--max-port',
        String(minPort + 999),
        '--lt-cred-mech',
        '--realm',
        REALM,
        '--redis-userdb',
        userdb,
        '--log-file',
        'stdout',
        '--simple-log',
        '--pidfile',
        join(dir, 'turnserver.pid'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    coturn.stdout.on('data', (c: Buffer) => (log += c.toString()));
    coturn.stderr.on('data', (c: Buffer) => (log += c.toString()));
    try {
      // Ready once an Allocate gets an answer at all (401 with a wrong password).
      await waitFor(
        'coturn answering',
        async () => ((await allocate(`${NET}.2:${port}`, 'alice', 'wrong').catch(() => undefined)) === 401 ? true : undefined),
        20_000,
        () => log,
      );
      expect(await allocate(`${NET}.2:${port}`, 'alice', 'alice-pw')).toBe('ok');
      expect(await allocate(`${NET}.2:${port}`, 'bob', 'wrong')).toBe(401);
      expect(await allocate(node.server, 'bob', 'bob-pw')).toBe('ok'); // and nat-server, the same user
      expect(await allocate(`${NET}.2:${port}`, 'bob', 'bob-pw')).toBe('ok');
    } finally {
      coturn.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses a user deleted with turnadmin once the cache TTL (1 s) has passed', async () => {
    expect(await allocate(node.server, 'bob', 'bob-pw')).toBe('ok');
    await turnadmin('-d', '-u', 'bob');
    const started = Date.now();
    await waitFor('bob refused', async () => ((await allocate(node.server, 'bob', 'bob-pw')) === 401 ? true : undefined), 15_000);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await allocate(node.server, 'alice', 'alice-pw')).toBe('ok');
  }, 60_000);

  it('fails closed while Redis is down: 500 for a user it cannot look up, and the metric counts the errors', async () => {
    await turnadmin('-a', '-u', 'erin', '-p', 'erin-pw');
    await redis.stop();
    expect(await allocate(node.server, 'erin', 'erin-pw')).toBe(500);
    expect(await allocate(node.server, 'erin', 'wrong')).toBe(500);
    await waitFor(
      'the errors metric',
      async () => (/nat_redis_errors_total\{use="userdb"\} [1-9]/.test(await node.metric('nat_redis_errors_total')) ? true : undefined),
      10_000,
    );
  }, 60_000);
});
