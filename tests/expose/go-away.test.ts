/**
 * A client that closes says goodbye on the wire: `close()` sends `unexpose` and a yamux Go Away
 * (normal) before it ends the TCP connection, so the server ends the session as closed by the
 * client ("mux closed"), not as a connection that was lost. The Go Away used to wait in the frame
 * writer's corked buffer for the next tick while the socket was ended in this one: it never left.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { exposePublic } from '@nat/client';
import type { Logger } from '@nat/server';
import { echoServer, portBlock, startExposeServer, type TestServer } from './harness.js';

const ended: string[] = [];
const noop = (): void => {};
const logger: Logger = {
  info: noop,
  warn: noop,
  error: noop,
  debug: (obj: object, msg?: string) => {
    if (msg === 'expose: control connection ended') ended.push(String((obj as { reason?: unknown }).reason));
  },
};

let srv: TestServer;
let echo: Awaited<ReturnType<typeof echoServer>>;
beforeAll(async () => {
  srv = await startExposeServer({ ports: portBlock(), logger });
  echo = await echoServer();
});
afterAll(async () => {
  await srv.close();
  echo.server.close();
});

test('close() sends Go Away: the server ends the session as closed by the client, not lost', async () => {
  const t = exposePublic({ url: srv.url, credentials: { username: 'alice', password: 'alice-pw' }, target: { host: '127.0.0.1', port: echo.port } });
  await t.ready;
  await t.close();
  const deadline = Date.now() + 5000;
  while (ended.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(ended).toEqual(['mux closed']);
});
