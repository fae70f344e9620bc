/**
 * `nat expose --public --public-port N` when N is not free on the server: held by another user of
 * the server (`taken`) or by another program on the server machine (`port-in-use`, EADDRINUSE).
 * The two are told apart on the wire and in what the CLI prints.
 */
import { createSocket } from 'node:dgram';
import { type Server, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '@nat/cli';
import { captureIo, type ExposeApp, startExposeApp } from './harness.js';

describe('nat expose --public --public-port: a port held on the server', () => {
  let app: ExposeApp;
  let url: string;
  let range: { min: number; max: number };
  let echo: ExposeApp['echo'];
  beforeAll(async () => {
    app = await startExposeApp(10, ['--user', 'alice:pw', '--user', 'bob:pw']);
    ({ url, range, echo } = app);
  });
  afterAll(async () => {
    await app.close();
  });

  test('TCP port held by a plain net.Server on the server address: "in use on the server by another program", code port-in-use, exit 1', async () => {
    const port = range.min;
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      const s = captureIo();
      const code = await runCli(
        ['expose', `127.0.0.1:${echo.port}`, '--public', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(port)],
        s.io,
      );
      expect(code, s.err()).toBe(1);
      expect(s.err()).toContain(`tcp port ${port} is in use on the server by another program (not a nat user) (port-in-use)`);
      expect(s.err()).toMatch(/choose another --public-port, or leave it out/);
      expect(s.err()).not.toMatch(/another user/);
      const j = captureIo();
      expect(
        await runCli(
          ['expose', `127.0.0.1:${echo.port}`, '--public', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(port), '--json'],
          j.io,
        ),
      ).toBe(1);
      expect(JSON.parse(j.out().trim().split('\n').pop()!)).toMatchObject({ event: 'failed', code: 'port-in-use' });
    } finally {
      squatter.close();
    }
  });

  test('UDP port held by a plain dgram socket: port-in-use too', async () => {
    const port = range.min + 1;
    const squatter = createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(port, '127.0.0.1', r));
    try {
      const s = captureIo();
      expect(
        await runCli(['expose', `127.0.0.1:${echo.port}`, '--public', '--udp', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(port)], s.io),
      ).toBe(1);
      expect(s.err()).toContain(`udp port ${port} is in use on the server by another program (not a nat user) (port-in-use)`);
    } finally {
      squatter.close();
    }
  });

  test('a port another user of the server holds: "taken", naming the other user as the holder', async () => {
    const port = range.min + 2;
    const ac = new AbortController();
    const alice = captureIo();
    const holding = runCli(
      ['expose', `127.0.0.1:${echo.port}`, '--public', '--rendezvous', url, '--user', 'alice:pw', '--public-port', String(port), '--json'],
      alice.io,
      ac.signal,
    );
    try {
      while (!alice.out().includes('"exposed"')) await new Promise((r) => setTimeout(r, 20));
      const bob = captureIo();
      expect(
        await runCli(['expose', `127.0.0.1:${echo.port}`, '--public', '--rendezvous', url, '--user', 'bob:pw', '--public-port', String(port)], bob.io),
      ).toBe(1);
      expect(bob.err()).toContain(`tcp port ${port} is held by another user of this server (taken)`);
      expect(bob.err()).toMatch(/another user holds that port/);
      expect(bob.err()).not.toMatch(/another program/);
    } finally {
      ac.abort();
      expect(await holding).toBe(0);
    }
  });
});
