/**
 * Many machines, on one: a real redis-server and three nat-server nodes (the built binary, each
 * `--redis URL`; node 3 with two workers) on loopback aliases 127.77.0.1-3, sharing one --auth-secret. Peers registered on
 * different nodes connect (`nat listen` on node 2, `nat ping` on node 1); a relay-only peer on
 * node 1 relays through node 3's TURN (node 1 hands out node 3's turn: URI), with the anonymous
 * credentials node 1 made and the relay scope node 2 recorded; a tunnel (`nat expose` on node 2,
 * `nat connect` by name on node 3) carries bytes intact; a name claimed on node 1 is refused on
 * node 2; and node 3 killed (SIGKILL) mid-run: its peer is answered peer-offline within a few
 * seconds, and reachable again once it registers on node 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RendezvousClient, type RendezvousInbound, generateIdentity } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner, roundTrip, sha256, startHashService } from '../tunnel/helpers.js';
import { type RedisServer, startRedis } from './redis.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'three-nodes-shared-secret';
const SESSION = 'dGhyZWUtbm9kZXMtc2Vzc2lvbg';
const PWD = 'abcdefghijklmnopqrstuvwx';

interface Node {
  readonly ip: string;
  readonly child: ChildProcess;
  readonly rendezvous: string;
  readonly udpPort: number;
  readonly err: () => string;
  readonly exited: Promise<unknown>;
}

let redis: RedisServer;
let dir: string;
const nodes: Node[] = [];
const children: ChildProcess[] = [];
const { start: cli, stopAll } = cliRunner();
const clients: RendezvousClient[] = [];
let hashService: Awaited<ReturnType<typeof startHashService>>;

async function until(what: string, ok: () => boolean, ms = 15_000, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function startNode(ip: string, id: string, extra: string[] = []): Promise<Node> {
  const args = ['apps/server/dist/main.js', '--listen', ip, '--port', '0', '--no-alt-port', '--no-tcp', '--realm', 'cluster.test'];
  args.push('--auth-secret', SECRET, '--allow-peer', '127.0.0.0/8', '--rendezvous-port', '0', '--redis', redis.url, '--node-id', id, '--log-level', 'warn');
  const child = spawn(process.execPath, [...args, ...extra], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (c) => (err += String(c)));
  const exited = new Promise((r) => child.once('exit', r));
  await until(
    `node ${id}`,
    () => /^cluster: node /m.test(err) || child.exitCode !== null,
    20_000,
    () => err,
  );
  const rendezvous = /^rendezvous (ws:\/\/\S+)/m.exec(err)?.[1];
  const udpPort = Number(new RegExp(`^listening udp\\s+${ip.replace(/\./g, '\\.')}:(\\d+)`, 'm').exec(err)?.[1]);
  if (rendezvous === undefined || !udpPort) throw new Error(`node ${id} did not start:\n${err}`);
  const node = { ip, child, rendezvous, udpPort, err: () => err, exited };
  nodes.push(node);
  return node;
}

async function client(url: string): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ url, identity: generateIdentity(), heartbeatIntervalMs: 0 });
  clients.push(c);
  return c;
}

/** The next error or offer `c` receives within `ms`. */
function nextOf(c: RendezvousClient, types: readonly string[], ms = 5000): Promise<RendezvousInbound> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`nothing of ${types.join('/')} within ${ms} ms`)), ms);
    const on = (m: RendezvousInbound): void => {
      if (!types.includes(m.type)) return;
      clearTimeout(t);
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
  });
}

let n1: Node;
let n2: Node;
let n3: Node;

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'nat-three-nodes-'));
  hashService = await startHashService();
  [n3, n2] = await Promise.all([startNode('127.77.0.3', 'n3', ['--workers', '2']), startNode('127.77.0.2', 'n2')]);
  // node 1 hands its peers node 3's TURN: they relay there with the credentials node 1 made
  n1 = await startNode('127.77.0.1', 'n1', ['--rendezvous-ice-url', `turn:127.77.0.3:${n3.udpPort}`, '--admin-port', '0']);
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.allSettled(nodes.map((n) => n.exited));
  hashService?.server.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('three nat-server nodes sharing one Redis', () => {
  let listenerId = '';

  it('a peer on node 1 pings a peer listening on node 2 (direct)', async () => {
    const listen = cli(['listen', '--rendezvous', n2.rendezvous, '--identity', join(dir, 'listen.pem'), '--host-address', '127.0.0.1', '--json']);
    listenerId = String((await listen.waitFor((l) => typeof l.id === 'string')).id);
    const ping = cli(['ping', listenerId, '--rendezvous', n1.rendezvous, '--host-address', '127.0.0.1', '--count', '2', '--json']);
    expect(await ping.done, ping.err()).toBe(0);
    const r = JSON.parse(ping.out().trim()) as { peer: string; path: string; rttMs: number[] };
    expect(r.peer).toBe(listenerId);
    expect(r.path).toBe('direct');
    expect(r.rttMs.length).toBe(2);
  }, 30_000);

  it("a relay-only peer on node 1 relays through node 3's TURN to the peer on node 2", async () => {
    const ping = cli(['ping', listenerId, '--rendezvous', n1.rendezvous, '--relay-only', '--count', '2', '--json']);
    expect(await ping.done, `${ping.err()}\nnode 3:\n${n3.err()}`).toBe(0);
    const r = JSON.parse(ping.out().trim()) as { path: string; localCandidate: { type: string; address: string }; rttMs: number[] };
    expect(r.path).toBe('relay');
    expect(r.localCandidate.type).toBe('relay');
    expect(r.localCandidate.address).toMatch(/^127\.77\.0\.3:\d+$/); // node 3's relay address
    expect(r.rttMs.length).toBe(2);
  }, 30_000);

  it('a tunnel: nat expose on node 2, nat connect by name on node 3, bytes intact', async () => {
    const target = `127.0.0.1:${hashService.port}`;
    const expose = cli([
      'expose',
      target,
      '--name',
      'hash-svc',
      '--allow-any',
      '--rendezvous',
      n2.rendezvous,
      '--identity',
      join(dir, 'expose.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    await expose.waitFor((l) => l.event === 'ready');
    const connect = cli([
      'connect',
      'hash-svc',
      '--listen',
      '127.0.0.1:0',
      '--rendezvous',
      n3.rendezvous,
      '--identity',
      join(dir, 'connect.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    const listening = await connect.waitFor((l) => l.event === 'listening');
    const port = Number(String(listening.listen).split(':')[1]);
    const data = randomBytes(2 << 20);
    expect(await roundTrip(port, data)).toBe(sha256(data));
  }, 30_000);

  it('a name claimed on node 1 is refused on node 2', async () => {
    const owner = await client(n1.rendezvous);
    const other = await client(n2.rendezvous);
    await owner.claimName('only-mine');
    const refused = await other.claimName('only-mine').catch((e: unknown) => e as Error);
    expect((refused as Error).message).toMatch(/the name only-mine belongs to another peer/);
    expect(await other.resolveName('only-mine')).toEqual({ peerId: owner.id, online: true });
  });

  it('node 3 killed: its peer is offline within a few seconds (no hang), and reachable again on node 2', async () => {
    const caller = await client(n1.rendezvous);
    const victimKey = generateIdentity();
    const victim = await RendezvousClient.connect({ url: n3.rendezvous, identity: victimKey, heartbeatIntervalMs: 0 });
    clients.push(victim);
    const reached = nextOf(victim, ['offer']);
    caller.send({ type: 'offer', to: victim.id, sessionId: SESSION, ufrag: 'call', pwd: PWD, candidates: [] });
    await reached;
    const killed = Date.now();
    n3.child.kill('SIGKILL');
    await n3.exited;
    // offers until one is answered peer-offline: each is answered (or not) within 2 s, never left hanging
    let offlineAfter = -1;
    for (let i = 0; i < 40 && offlineAfter < 0; i++) {
      const answer = nextOf(caller, ['error'], 2000).catch(() => undefined);
      const ref = caller.send({ type: 'offer', to: victim.id, sessionId: SESSION, ufrag: 'call', pwd: PWD, candidates: [] });
      const m = await answer;
      if (m?.type === 'error' && m.code === 'peer-offline' && m.ref === ref) offlineAfter = Date.now() - killed;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(offlineAfter).toBeGreaterThanOrEqual(0);
    expect(offlineAfter).toBeLessThan(5000);
    // the victim moves to node 2 and is reachable again
    const moved = await RendezvousClient.connect({ url: n2.rendezvous, identity: victimKey, heartbeatIntervalMs: 0 });
    clients.push(moved);
    const again = nextOf(moved, ['offer']);
    caller.send({ type: 'offer', to: moved.id, sessionId: SESSION, ufrag: 'back', pwd: PWD, candidates: [] });
    expect(await again).toMatchObject({ from: caller.id, ufrag: 'back' });
    // node 1's metrics: Redis up, and node 3 gone from the live nodes (its liveness key lapsed)
    const metrics = /^admin (http:\/\/\S+\/metrics)/m.exec(n1.err())![1]!;
    const gauge = async (name: string): Promise<number> => Number(new RegExp(`^nat_${name} (\\S+)$`, 'm').exec(await (await fetch(metrics)).text())?.[1]);
    expect(await gauge('rendezvous_cluster_store_up')).toBe(1);
    const deadline = Date.now() + 10_000;
    while ((await gauge('rendezvous_cluster_nodes')) !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await gauge('rendezvous_cluster_nodes')).toBe(2);
    expect(await gauge('rendezvous_cluster_forwarded')).toBeGreaterThanOrEqual(2);
  }, 30_000);
});
