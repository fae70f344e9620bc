import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { exposePublicCommand, runCli } from '@nat/cli';
import { ConfigError, resolveConfig } from '@nat/server-app';
import { captureIo, roundTrip, type ExposeApp, startExposeApp } from './harness.js';

describe('nat-server --expose-ports', () => {
  test('config: expose needs the rendezvous service and credentials; users need no realm for it', () => {
    expect(() => resolveConfig({}, { listen: ['127.0.0.1'], exposePorts: '20000-20009', users: ['a:b'] }, 'flags')).toThrow(/rendezvousPort/);
    expect(() => resolveConfig({}, { listen: ['127.0.0.1'], exposePorts: '20000-20009', rendezvousPort: 0 }, 'flags')).toThrow(/credentials/);
    expect(() => resolveConfig({}, { listen: ['127.0.0.1'], exposePorts: '20000-', rendezvousPort: 0, users: ['a:b'] }, 'flags')).toThrow(ConfigError);
    expect(resolveConfig({}, { listen: ['127.0.0.1'], exposePorts: '20000-20009', rendezvousPort: 0, users: ['a:b'] }, 'flags').exposePorts).toBe(
      '20000-20009',
    );
    expect(() =>
      resolveConfig({ exposeDenySources: ['not a prefix'] }, { listen: ['127.0.0.1'], exposePorts: '20000', rendezvousPort: 0, users: ['a:b'] }, 'flags'),
    ).toThrow(/exposeDenySources/);
  });
});

describe('nat expose TARGET --public', () => {
  let app: ExposeApp;
  let url: string;
  let range: { min: number; max: number };
  let echo: ExposeApp['echo'];
  beforeAll(async () => {
    app = await startExposeApp(10, ['--user', 'alice:pw']);
    ({ url, range, echo } = app);
  });
  afterAll(async () => {
    await app.close();
  });

  test('prints the public address (--json events), carries connections, stops on abort with exit 0', async () => {
    const s = captureIo();
    const ac = new AbortController();
    const done = runCli(
      ['expose', `127.0.0.1:${echo.port}`, '--public', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(range.min), '--json'],
      s.io,
      ac.signal,
    );
    while (!s.out().includes('"exposed"')) await new Promise((r) => setTimeout(r, 20));
    const ev = JSON.parse(s.out().split('\n')[0]!) as Record<string, unknown>;
    expect(ev).toMatchObject({
      event: 'exposed',
      transport: 'tcp',
      address: `127.0.0.1:${range.min}`,
      port: range.min,
      user: 'alice',
      target: `127.0.0.1:${echo.port}`,
    });
    expect((await roundTrip(range.min, Buffer.from('cli'))).toString()).toBe('cli');
    ac.abort();
    expect(await done).toBe(0);
    expect(s.out()).toContain('"event":"connection"');
  });

  test('--config FILE gives the rendezvous URL and the user (flags win); a readable password file is warned about; bad files are usage errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nat-expose-config-'));
    const file = join(dir, 'expose.json');
    writeFileSync(file, JSON.stringify({ rendezvous: url, user: 'alice:pw' }), { mode: 0o600 });
    const s = captureIo();
    const ac = new AbortController();
    const done = runCli(['expose', `127.0.0.1:${echo.port}`, '--public', '--config', file, '--public-port', String(range.min + 1), '--json'], s.io, ac.signal);
    while (!s.out().includes('"exposed"')) await new Promise((r) => setTimeout(r, 20));
    expect(s.out()).toContain('"user":"alice"');
    expect(s.err()).not.toMatch(/other users may read/);
    expect((await roundTrip(range.min + 1, Buffer.from('from config'))).toString()).toBe('from config');
    ac.abort();
    expect(await done).toBe(0);
    // --user on the command line wins over the file's user: a wrong one is refused (exit 1).
    const flagWins = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--config', file, '--user', 'alice:wrong'], flagWins.io)).toBe(1);
    expect(flagWins.err()).toMatch(/unauthorized/);
    // A password file others may read: still used (here a wrong password, refused: no port
    // held), with a warning that says what to do.
    writeFileSync(file, JSON.stringify({ rendezvous: url, user: 'alice:wrong' }));
    chmodSync(file, 0o644);
    const readable = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--config', file], readable.io)).toBe(1);
    expect(readable.err()).toMatch(/other users may read it \(chmod 600/);
    expect(readable.err()).toMatch(/unauthorized/);
    for (const [content, why] of [
      ['{"user": 5}', /"user" must be a string/],
      ['{"password": "x"}', /unknown key "password"/],
      ['not json', /--config/],
      ['[]', /JSON object/],
    ] as const) {
      writeFileSync(file, content);
      const bad = captureIo();
      expect(await runCli(['expose', '8080', '--public', '--config', file], bad.io)).toBe(2);
      expect(bad.err()).toMatch(why);
    }
  });

  test('exit codes: 2 bad usage, 1 refused (with what to do), 3 no server', async () => {
    const bad = captureIo();
    expect(await runCli(['expose', 'not-an-address', '--public', '--rendezvous', url, '--user', 'alice:pw'], bad.io)).toBe(2);
    expect(bad.err()).toMatch(/IP:PORT/);
    const noUser = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--rendezvous', url], noUser.io)).toBe(2);
    expect(noUser.err()).toMatch(/--user NAME:PASSWORD/);
    const fromEnv = captureIo();
    const ac = new AbortController();
    const envRun = exposePublicCommand(`127.0.0.1:${echo.port}`, { rendezvous: url, json: true }, fromEnv.io, ac.signal, { NAT_EXPOSE_USER: 'alice:pw' });
    while (!fromEnv.out().includes('"exposed"')) await new Promise((r) => setTimeout(r, 20));
    expect(fromEnv.out()).toContain('"user":"alice"');
    ac.abort();
    expect(await envRun).toBe(0);
    const refused = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--rendezvous', url, '--user', 'alice:wrong'], refused.io)).toBe(1);
    expect(refused.err()).toMatch(/unauthorized[\s\S]*check --user/);
    const range2 = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(range.max + 1)], range2.io)).toBe(1);
    expect(range2.err()).toMatch(/out-of-range/);
    const none = captureIo();
    expect(await runCli(['expose', '8080', '--public', '--rendezvous', 'ws://127.0.0.1:1/', '--user', 'alice:pw'], none.io)).toBe(3);
    expect(none.err()).toMatch(/cannot connect/);
  });
});
