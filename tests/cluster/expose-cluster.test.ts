/**
 * Public exposure across nodes sharing Redis: a real redis-server and two nat-server nodes (the
 * built binary, `--redis URL --quota-lease 3`, exposePortsPerUser 2 from a config file) on
 * loopback aliases. A user's public ports on both nodes together count against its quota (the
 * third is refused `over-quota` on either node; an unexposed one frees a slot at once); an owner
 * advertised on node A is told by node B's `GET /expose/owner?host=A` and by `nat owner A:PORT
 * --rendezvous B`; node A killed (SIGKILL): its port stops counting, and its owner stops being
 * told, within the lease; Redis killed: new ports are refused `unavailable` and a lookup for another
 * node answers 503. Expose control connections are made by hand (tests/expose/raw.ts).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXPOSE_VERSION, type ExposeControlMessage, exposeAdvertisePayload, peerIdFromPublicKey } from '@nat/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portBlock } from '../expose/harness.js';
import { type RawSession, rawSession } from '../expose/raw.js';
import { type Node, randomNet, startNode } from './nodes.js';
import { type RedisServer, startRedis } from './redis.js';

const NAT_CLI = fileURLToPath(new URL('../../apps/cli/dist/main.js', import.meta.url));
const LEASE_MS = 3000;
/** How long a disconnected client's ports are held for it (exposeGrace). */
const GRACE_MS = 1000;

let redis: RedisServer;
let dir: string;
let a: Node;
let b: Node;
let urlA: string;
let urlB: string;
const range = portBlock(8);
const sessions: RawSession[] = [];

function rendezvousOf(n: Node): string {
  const url = /^rendezvous (ws:\/\/\S+)/m.exec(n.err())?.[1];
  if (url === undefined || !/^expose ws:/m.test(n.err())) throw new Error(`no rendezvous or expose line:\n${n.err()}`);
  return url;
}

async function session(url: string, user: string): Promise<RawSession> {
  const s = await rawSession(url, user, `${user}-pw`);
  sessions.push(s);
  await s.waitFor((m) => m.type === 'welcome');
  return s;
}

/** Sends an expose request and resolves with its answer (exposed or refused). */
async function expose(
  s: RawSession,
  id: number,
  port: number,
  extra: Partial<Extract<ExposeControlMessage, { type: 'expose' }>> = {},
): Promise<ExposeControlMessage> {
  s.send({ v: EXPOSE_VERSION, type: 'expose', id, transport: 'tcp', port, ...extra });
  return s.waitFor((m) => (m.type === 'exposed' || m.type === 'refused') && 'ref' in m && m.ref === id, 15_000);
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [NAT_CLI, ...args], { timeout: 20_000 }, (e, stdout, stderr) =>
      resolve({ code: e === null ? 0 : Number((e as { code?: number }).code ?? 1), stdout, stderr }),
    );
  });
}

async function ownerVia(node: Node, port: number, host?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${urlOf(node)}/expose/owner?port=${port}${host === undefined ? '' : `&host=${host}`}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const urlOf = (n: Node): string => (n === a ? urlA : urlB).replace(/^ws:/, 'http:').replace(/\/$/, '');

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'nat-expose-cluster-'));
  const config = join(dir, 'server.json');
  writeFileSync(config, JSON.stringify({ exposePortsPerUser: 2, exposeGrace: GRACE_MS / 1000 }));
  const net = randomNet();
  const args = (id: string): string[] => [
    '--config',
    config,
    '--no-alt-port',
    '--no-tcp',
    '--rendezvous-port',
    '0',
    '--expose-ports',
    `${range.min}-${range.max}`,
    '--user',
    'alice:alice-pw',
    '--user',
    'bob:bob-pw',
    '--redis',
    redis.url,
    '--node-id',
    id,
    '--quota-lease',
    String(LEASE_MS / 1000),
  ];
  [a, b] = await Promise.all([startNode(`${net}.1`, args('a')), startNode(`${net}.2`, args('b'))]);
  urlA = rendezvousOf(a);
  urlB = rendezvousOf(b);
}, 60_000);

afterAll(async () => {
  for (const s of sessions) s.socket.destroy();
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('public exposure across nodes sharing Redis', () => {
  it("counts a user's ports on both nodes together; an unexposed port frees its slot on every node, a disconnected one after the grace period", async () => {
    const onA = await session(urlA, 'alice');
    const onB = await session(urlB, 'alice');
    expect(await expose(onA, 1, range.min)).toMatchObject({ type: 'exposed', port: range.min, address: `${a.ip}:${range.min}` });
    expect(await expose(onB, 1, range.min + 1)).toMatchObject({ type: 'exposed', port: range.min + 1, address: `${b.ip}:${range.min + 1}` });
    // Each node holds one of alice's ports: its own count (1 of 2) admits a third, the shared one does not.
    for (const s of [onA, onB]) {
      const third = await expose(s, 2, range.min + 2);
      expect(third).toMatchObject({ type: 'refused', code: 'over-quota' });
      expect((third as { message: string }).message).toMatch(/nodes together/);
    }
    // The key layout (as documented): one member per port, leased.
    expect(await redis.command('ZCARD', 'nat:expose:ports:user:alice')).toMatch(/^:2/);
    // Another user is not counted with alice.
    expect(await expose(await session(urlB, 'bob'), 1, range.min + 3)).toMatchObject({ type: 'exposed' });
    // B's port unexposed: A may take a second one (the slot goes back at once, not after a lease).
    onB.send({ v: EXPOSE_VERSION, type: 'unexpose', transport: 'tcp', port: range.min + 1 });
    let granted: ExposeControlMessage | undefined;
    for (let id = 10; id < 60 && granted?.type !== 'exposed'; id++) {
      granted = await expose(onA, id, range.min + 4);
      if (granted.type !== 'exposed') await new Promise((r) => setTimeout(r, 50));
    }
    expect(granted).toMatchObject({ type: 'exposed', port: range.min + 4 });
    onA.send({ v: EXPOSE_VERSION, type: 'unexpose', transport: 'tcp', port: range.min + 4 });

    // A client on B goes away: its port still counts during the grace period, then frees its slot.
    const again = await session(urlB, 'alice');
    let back: ExposeControlMessage | undefined;
    for (let id = 1; id < 50 && back?.type !== 'exposed'; id++) {
      back = await expose(again, id, range.min + 1);
      if (back.type !== 'exposed') await new Promise((r) => setTimeout(r, 50));
    }
    expect(back).toMatchObject({ type: 'exposed' });
    again.socket.destroy();
    const gone = Date.now();
    expect(await expose(onA, 100, range.min + 4)).toMatchObject({ type: 'refused', code: 'over-quota' });
    let after: ExposeControlMessage | undefined;
    for (let id = 101; id < 200 && after?.type !== 'exposed'; id++) {
      after = await expose(onA, id, range.min + 4);
      if (after.type !== 'exposed') await new Promise((r) => setTimeout(r, 100));
    }
    expect(after).toMatchObject({ type: 'exposed', port: range.min + 4 });
    expect(Date.now() - gone).toBeLessThan(GRACE_MS + 4000);
    onA.send({ v: EXPOSE_VERSION, type: 'unexpose', transport: 'tcp', port: range.min + 4 });
  }, 30_000);

  it("answers for node A's advertised owner on node B (?host=A, nat owner A:PORT); A killed: its port and owner go within the lease", async () => {
    const key = generateKeyPairSync('ed25519');
    const publicKey = key.publicKey.export({ format: 'jwk' }).x!;
    const peer = peerIdFromPublicKey(Buffer.from(publicKey, 'base64url'));
    const bobA = await session(urlA, 'bob');
    const nonce = (bobA.messages.find((m) => m.type === 'challenge') as { nonce: string }).nonce;
    const signature = sign(null, exposeAdvertisePayload(nonce, peer), key.privateKey).toString('base64url');
    const port = range.max;
    expect(await expose(bobA, 1, port, { advertise: { publicKey, signature } })).toMatchObject({ type: 'exposed', port });

    const viaB = await ownerVia(b, port, a.ip);
    expect(viaB).toEqual({ status: 200, body: { v: EXPOSE_VERSION, transport: 'tcp', port, address: `${a.ip}:${port}`, peer } });
    // Without host, B answers for its own address, where nobody holds the port.
    expect((await ownerVia(b, port)).status).toBe(404);
    expect((await ownerVia(b, port, 'not-an-ip')).status).toBe(400);
    const cli = await run(['owner', `${a.ip}:${port}`, '--rendezvous', urlB, '--json']);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ event: 'owner', peer, address: `${a.ip}:${port}`, port, transport: 'tcp' });

    // alice still holds range.min on A: with her port on B released, she holds 1 of 2. Take the
    // second on B, so that A's port is what stands between her and a third.
    const aliceB = await session(urlB, 'alice');
    expect(await expose(aliceB, 1, range.min + 5)).toMatchObject({ type: 'exposed' });
    await a.stop({ kill: true });
    const killed = Date.now();
    expect(await expose(aliceB, 2, range.min + 6)).toMatchObject({ type: 'refused', code: 'over-quota' });
    let answer: ExposeControlMessage | undefined;
    for (let id = 3; id < 200 && answer?.type !== 'exposed'; id++) {
      answer = await expose(aliceB, id, range.min + 6);
      if (answer.type !== 'exposed') await new Promise((r) => setTimeout(r, 100));
    }
    const freedAfter = Date.now() - killed;
    expect(answer).toMatchObject({ type: 'exposed', port: range.min + 6 });
    // The lease (3 s) from A's last renewal, plus a margin for a busy machine.
    expect(freedAfter).toBeLessThan(LEASE_MS + 3000);
    // The advertisement has its own lease (renewed with the ports, written when advertised).
    let status = 200;
    while (status === 200 && Date.now() - killed < LEASE_MS + 5000) {
      status = (await ownerVia(b, port, a.ip)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(404);
    expect(Date.now() - killed).toBeLessThan(LEASE_MS + 3000);
  }, 30_000);

  it('fails closed while Redis is down: a new port is refused unavailable, an owner lookup for another node answers 503', async () => {
    const s = await session(urlB, 'bob');
    await redis.stop({ kill: true });
    expect(await expose(s, 1, range.min + 7)).toMatchObject({ type: 'refused', code: 'unavailable' });
    expect(await ownerVia(b, range.max, a.ip)).toMatchObject({ status: 503, body: { error: 'unavailable' } });
    const cli = await run(['owner', `${a.ip}:${range.max}`, '--rendezvous', urlB, '--json']);
    expect(cli.code).toBe(3);
    expect(JSON.parse(cli.stdout)).toMatchObject({ event: 'failed', code: 'UNREACHABLE' });
  }, 30_000);
});
