import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { exposePublicCommand } from '@nat/cli';
import { restApiCredentials } from '@nat/server';
import { captureIo, roundTrip, type ExposeApp, startExposeApp } from './harness.js';

// `nat turn credentials` prints EXPIRY:USER and a password; joined with a colon they are what
// NAT_EXPOSE_USER and the config file's "user" take against a server with --auth-secret.
describe('nat expose --public with TURN REST credentials', () => {
  let app: ExposeApp;
  let url: string;
  let range: { min: number; max: number };
  let echo: ExposeApp['echo'];
  let dir: string;
  beforeAll(async () => {
    app = await startExposeApp(4, ['--realm', 'rest.test', '--auth-secret', 'S3CRET']);
    ({ url, range, echo } = app);
    dir = mkdtempSync(join(tmpdir(), 'nat-rest-user-'));
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const exposeWith = async (user: { env?: string; config?: string }, publicPort: number): Promise<void> => {
    const s = captureIo();
    const ac = new AbortController();
    let config: string | undefined;
    if (user.config !== undefined) {
      config = join(dir, `expose-${publicPort}.json`);
      writeFileSync(config, JSON.stringify({ rendezvous: url, user: user.config }), { mode: 0o600 });
    }
    const done = exposePublicCommand(
      `127.0.0.1:${echo.port}`,
      { json: true, publicPort, ...(config === undefined ? { rendezvous: url } : { config }) },
      s.io,
      ac.signal,
      user.env === undefined ? {} : { NAT_EXPOSE_USER: user.env },
    );
    const deadline = Date.now() + 15_000;
    while (!s.out().includes('"exposed"') && !s.out().includes('"failed"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.out()).toContain('"event":"exposed"');
    // --json events carry `time` like the other commands' events.
    expect((JSON.parse(s.out().split('\n')[0]!) as { time: string }).time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((await roundTrip(publicPort, Buffer.from('rest'))).toString()).toBe('rest');
    ac.abort();
    expect(await done).toBe(0);
  };

  test('NAT_EXPOSE_USER=EXPIRY:USER:PASSWORD', async () => {
    const c = restApiCredentials('S3CRET', 'alice', 600);
    await exposeWith({ env: `${c.username}:${c.password}` }, range.min);
  });

  test('"user": "EXPIRY:USER:PASSWORD" in --config', async () => {
    const c = restApiCredentials('S3CRET', 'bob', 600);
    await exposeWith({ config: `${c.username}:${c.password}` }, range.min + 1);
  });
});
