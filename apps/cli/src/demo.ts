#!/usr/bin/env node
/**
 * `pnpm demo`: starts a STUN server on loopback (127.0.0.1 and 127.0.0.2, ports 3478/3479, or
 * free ports when those are taken), runs `nat detect` against it and prints the report, then
 * keeps serving until Ctrl-C so that `pnpm nat ...` can be tried against it. `--once` exits after
 * the report.
 */
import { type StunServer, ServerError, startStunServer } from '@nat/server';
import { formatTransportAddress } from '@nat/protocol';
import { runCli } from './cli.js';

const once = process.argv.includes('--once');
let server: StunServer;
try {
  server = await startStunServer({ listen: ['127.0.0.1'], alternate: ['127.0.0.2'], port: 3478, altPort: 3479 });
} catch (e) {
  if (!(e instanceof ServerError)) throw e;
  process.stderr.write(`ports 3478/3479 are taken (${e.message}); using free ports instead\n`);
  server = await startStunServer({ listen: ['127.0.0.1'], alternate: ['127.0.0.2'], port: 0, altPort: 0 });
}
const primary = server.endpoints[0]!;
process.stdout.write(`nat-server is listening on ${server.listeners.map((l) => `${l.transport} ${formatTransportAddress(l.address)}`).join(', ')}\n\n`);
process.stdout.write(`$ nat detect --server 127.0.0.1:${primary.port}\n`);
const code = await runCli(['detect', '--server', `127.0.0.1:${primary.port}`]);
if (once || code !== 0) {
  await server.close();
  process.exit(code);
}
process.stdout.write(
  `\nThe server keeps running. In another terminal, try:\n  pnpm nat stun 127.0.0.1:${primary.port}\n  pnpm nat detect --server 127.0.0.1:${primary.port} --json\nCtrl-C stops it.\n`,
);
const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
