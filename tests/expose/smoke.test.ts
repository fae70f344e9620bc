import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { exposePublic } from '@nat/client';
import { echoServer, portBlock, roundTrip, startExposeServer, type TestServer } from './harness.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startExposeServer({ ports: portBlock() });
});
afterAll(async () => srv.close());

test('smoke: echo through the public port', async () => {
  const echo = await echoServer();
  const t = exposePublic({ url: srv.url, credentials: { username: 'alice', password: 'alice-pw' }, target: { host: '127.0.0.1', port: echo.port } });
  const a = await t.ready;
  const data = randomBytes(100_000);
  const back = await roundTrip(a.port, data);
  expect(back.equals(data)).toBe(true);
  await t.close();
  echo.server.close();
});
