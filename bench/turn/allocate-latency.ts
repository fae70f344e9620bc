/**
 * What shared state in Redis adds to a TURN Allocate (issue 18): the time TurnClient.connect
 * takes (the 401 challenge, then the signed Allocate, on loopback) against three nat-server
 * nodes started side by side on one real redis-server:
 *
 * - `memory`: users from --user, quotas in memory (the single-node default);
 * - `redis-quota`: the same with --redis (each Allocate reserves its slot with one Lua script);
 * - `redis-userdb`: users from coturn's Redis user database (--redis-userdb), cache TTL 5 s: the
 *   first Allocate of a user waits for its lookup, the next ones hit the cache;
 *   `redis-userdb-miss` forces a lookup each time (a new user per Allocate).
 *
 * Each round allocates and deallocates once per setup, in turn, so the machine's load falls on all
 * alike. Prints the median and p99 per setup and the medians' differences to `memory`.
 *
 *   npx tsx bench/turn/allocate-latency.ts [--rounds 300]
 */
import { TurnClient } from '../../packages/client/dist/index.js';
import { randomNet, startNode, type Node } from '../../tests/cluster/nodes.js';
import { startRedis } from '../../tests/cluster/redis.js';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1] ?? 300) || 300;
const NET = randomNet();
const REALM = 'latency.bench';
const USERS = 64;

const redis = await startRedis();
const nodes: Node[] = [];
try {
  for (let i = 0; i < USERS; i++) await redis.command('SET', `turn/realm/${REALM}/user/u${i}/password`, 'pw');
  for (let i = 0; i < rounds; i++) await redis.command('SET', `turn/realm/${REALM}/user/m${i}/password`, 'pw');
  const users = Array.from({ length: USERS }, (_, i) => ['--user', `u${i}:pw`]).flat();
  const common = ['--realm', REALM, '--allow-peer', '127.0.0.0/8', '--log-level', 'error'];
  const [memory, quota, userdb] = await Promise.all([
    startNode(`${NET}.1`, [...common, ...users]),
    startNode(`${NET}.2`, [...common, ...users, '--redis', redis.url, '--node-id', 'bench-quota']),
    startNode(`${NET}.3`, [...common, '--redis-userdb', redis.url]),
  ]);
  nodes.push(memory!, quota!, userdb!);
  const setups: [string, Node, (i: number) => string][] = [
    ['memory', memory!, (i) => `u${i % USERS}`],
    ['redis-quota', quota!, (i) => `u${i % USERS}`],
    ['redis-userdb', userdb!, (i) => `u${i % USERS}`],
    ['redis-userdb-miss', userdb!, (i) => `m${i}`],
  ];
  const times = new Map<string, number[]>(setups.map(([name]) => [name, []]));
  // Warm-up: every user once (fills the user database's cache, JIT-compiles the paths).
  for (const [, node, user] of setups.slice(0, 3)) for (let i = 0; i < USERS; i++) await (await connect(node, user(i))).close();
  for (let i = 0; i < rounds; i++) {
    for (const [name, node, user] of setups) {
      const t0 = performance.now();
      const c = await connect(node, user(i));
      times.get(name)!.push(performance.now() - t0);
      await c.close();
    }
  }
  const base = median(times.get('memory')!);
  console.log(`Allocate latency (TurnClient.connect: 401 + Allocate), ${rounds} rounds, loopback:`);
  for (const [name, t] of times) {
    const m = median(t);
    console.log(
      `  ${name.padEnd(18)} median ${m.toFixed(2)} ms  p99 ${quantile(t, 0.99).toFixed(2)} ms  (median ${m - base >= 0 ? '+' : ''}${(m - base).toFixed(2)} ms vs memory)`,
    );
  }
} finally {
  await Promise.all(nodes.map((n) => n.stop({ kill: true })));
  await redis.stop();
}

/** Each user from its own source address: one source's 401 challenges are rate limited (50/s). */
function connect(node: Node, username: string): Promise<TurnClient> {
  let h = 0;
  for (const ch of username) h = (h * 31 + ch.charCodeAt(0)) % 200;
  return TurnClient.connect({ server: node.server, username, password: 'pw', localAddress: `${NET}.${50 + h}` });
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}
