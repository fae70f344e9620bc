/**
 * Log lines are for journal readers: JSON with level, time and service, and never a secret. The
 * built nat-server runs at `--log-level trace` with a static user, a REST secret, an admin token
 * and a rendezvous; a peer registers (and is handed relay credentials), clients authenticate right and wrong, an allocation is made, the admin page
 * is asked with a wrong token; then no line of its output (stdout and stderr) may carry any of
 * the passwords, the secret, the token or a REST password derived from the secret.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RendezvousClient, TurnClient, generateIdentity } from '@nat/client';
import { restApiCredentials } from '@nat/server';
import { afterAll, describe, expect, it } from 'vitest';
import { start, until } from './helpers.js';

const PASSWORD = 'alice-pw-Zq8x1';
const SECRET = 'rest-secret-Hk29v';
const TOKEN = 'admin-token-Pw7n3-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'nat-server-logs-'));
writeFileSync(join(dir, 'token'), TOKEN);
const server = start([
  '--listen',
  '127.0.0.1',
  '--port',
  '0',
  '--no-alt-port',
  '--realm',
  'logs.test',
  '--user',
  `alice:${PASSWORD}`,
  '--auth-secret',
  SECRET,
  '--allow-peer',
  '127.0.0.0/8',
  '--rendezvous-port',
  '0',
  '--admin-port',
  '0',
  '--admin-token-file',
  join(dir, 'token'),
  '--log-level',
  'trace',
]);
afterAll(async () => {
  server.child.kill('SIGTERM');
  await server.exited;
});

describe('nat-server logs', () => {
  it('are JSON lines with level, time and service, and carry no password, secret or token', { timeout: 60_000 }, async () => {
    expect(await until(() => /admin http:\/\/\S+\/metrics/.test(server.err()) && /listening udp \S+ \(PP\)/.test(server.err()), 20_000), server.err()).toBe(
      true,
    );
    const turn = /listening udp (\S+) \(PP\)/.exec(server.err())![1]!;
    const admin = /admin (http:\/\/\S+)\/metrics/.exec(server.err())![1]!;
    const rv = await RendezvousClient.connect({
      url: /rendezvous (ws:\S+)/.exec(server.err())![1]!,
      identity: generateIdentity(),
      signal: AbortSignal.timeout(10_000),
    });
    const handedOut = rv.iceServers.map((s) => s.credential).filter((c): c is string => typeof c === 'string' && c.length > 0);
    expect(handedOut.length, 'the rendezvous hands out relay credentials').toBeGreaterThan(0);
    await rv.close();
    const rest = restApiCredentials(SECRET, 'bob', 3600);
    const ok = await TurnClient.connect({ server: turn, username: 'alice', password: PASSWORD, transport: 'udp', signal: AbortSignal.timeout(10_000) });
    const viaRest = await TurnClient.connect({
      server: turn,
      username: rest.username,
      password: rest.password,
      transport: 'udp',
      signal: AbortSignal.timeout(10_000),
    });
    await TurnClient.connect({ server: turn, username: 'alice', password: `${PASSWORD}x`, transport: 'udp', signal: AbortSignal.timeout(10_000) }).catch(
      () => undefined,
    );
    expect((await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status).toBe(401);
    await ok.close();
    await viaRest.close();
    server.child.kill('SIGTERM');
    await server.exited;
    const out = server.out();
    const lines = out.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) {
      const j = JSON.parse(l) as { level?: number; time?: number; service?: string };
      expect(typeof j.level, l).toBe('number');
      expect(typeof j.time, l).toBe('number');
      expect(j.service, l).toBe('nat-server');
    }
    for (const secret of [PASSWORD, SECRET, TOKEN, rest.password, ...handedOut]) {
      expect(out.includes(secret), `stdout carries ${secret}`).toBe(false);
      expect(server.err().includes(secret), `stderr carries ${secret}`).toBe(false);
    }
  });
});
