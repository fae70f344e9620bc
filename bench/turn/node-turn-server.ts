/**
 * Starts node-turn (the npm TURN server package) for the benchmark, from a directory outside the
 * repository where run.ts installed it (`npm install --prefix DIR node-turn`): long-term
 * credentials bench:bench in realm "bench", listening and relaying on one loopback address, no
 * logging. node-turn has no peer address policy, so loopback peers need no flag.
 *
 * Usage: node --import tsx bench/turn/node-turn-server.ts --module-dir DIR --listen 127.0.0.1 --port P
 *          [--min-port N --max-port M] [--user bench --password bench --realm bench]
 * Prints "listening udp IP:PORT" on stderr once started; exits on SIGINT/SIGTERM.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1]!;
  if (fallback === undefined) {
    process.stderr.write(`node-turn-server: ${name} is required\n`);
    process.exit(2);
  }
  return fallback;
}

interface NodeTurnServer {
  start(): void;
  stop(): void;
}
type NodeTurnConstructor = new (config: Record<string, unknown>) => NodeTurnServer;

const require = createRequire(join(arg('--module-dir'), 'package.json'));
const Turn = require('node-turn') as NodeTurnConstructor;
const listenIp = arg('--listen', '127.0.0.1');
const port = Number(arg('--port', '3478'));
const server = new Turn({
  listeningIps: [listenIp],
  relayIps: [listenIp],
  listeningPort: port,
  minPort: Number(arg('--min-port', '49152')),
  maxPort: Number(arg('--max-port', '65535')),
  authMech: 'long-term',
  realm: arg('--realm', 'bench'),
  credentials: { [arg('--user', 'bench')]: arg('--password', 'bench') },
  debugLevel: 'OFF',
  log: () => {},
});
server.start();
process.stderr.write(`listening udp ${listenIp}:${port}\n`);

const stop = (): void => {
  server.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
