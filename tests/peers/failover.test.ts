/**
 * Rendezvous failover on loopback, without Redis: two `nat-server` processes (the built binary),
 * `nat listen -r URL_A -r URL_B` registered with one of them. When that node is SIGKILLed (its
 * TCP connections close at once) or SIGSTOPped (it sends nothing: only the ping deadline notices),
 * the listener registers with the other within the 5 s budget and `nat ping` through the other
 * reaches it; a 4000 "replaced" from the node it left does not stop it. Plus a host name with
 * several addresses: one target per address, the name kept for the Host header.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '@nat/cli';
import { connectRendezvousTargets, generateIdentity, loadOrCreateIdentity, RendezvousClient, resolveRendezvousTargets } from '@nat/client';
import { startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture, roundTrip, sha256, startHashService } from '../tunnel/helpers.js';
import { PeerRuns, serverArgs } from './harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BUDGET_MS = 5000;
let dir: string;
const runs = new PeerRuns();
const nodes: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nat-failover-'));
});
afterAll(async () => {
  await runs.close();
  // SIGKILL ends a stopped process too
  for (const n of nodes) if (n.exitCode === null && n.signalCode === null) n.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

interface Node {
  readonly child: ChildProcess;
  readonly url: string;
}

/** `nat-server` (the built binary) on `host`: STUN on a free UDP port, the rendezvous on a free TCP port. */
async function startNode(host: string): Promise<Node> {
  const args = [...(await serverArgs(host)), '--auth-secret', 'S3CRET'];
  const child = spawn(process.execPath, [join(root, 'apps/server/dist/main.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  nodes.push(child);
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (c) => {
      err += String(c);
      const m = /rendezvous (ws:\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`nat-server on ${host} exited (${code}): ${err}`)));
  });
  return { child, url };
}

/** `nat ping PEER -r URL` once, in-process, on loopback host candidates. */
async function pingThrough(url: string, peer: string): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await runCli(['ping', peer, '-r', url, '-n', '1', '--json', '--host-address', '127.0.0.1', '--no-punch', '--timeout', '8000'], io.io);
  return { code, out: io.out(), err: io.err() };
}

/** Two nodes and `nat listen -r A -r B` (or `-r A,B`): which node it registered with, and the other. */
async function listenOnTwo(hosts: [string, string], name: string, form: 'repeated' | 'comma') {
  const [a, b] = await Promise.all(hosts.map(startNode));
  const file = join(dir, `${name}.pem`);
  const listen = runs.start([
    'listen',
    ...(form === 'comma' ? ['-r', `${a!.url},${b!.url}`] : ['-r', a!.url, '-r', b!.url]),
    '--json',
    '--identity',
    file,
    '--host-address',
    '127.0.0.1',
    '--no-punch',
  ]);
  const first = await listen.waitFor((l) => typeof l.id === 'string');
  const id = first.id as string;
  expect([a!.url, b!.url]).toContain(first.rendezvous);
  const [on, other] = first.rendezvous === a!.url ? [a!, b!] : [b!, a!];
  // registered with `on`, and only there: a ping through it reaches the listener
  const before = await pingThrough(on.url, id);
  expect(before.code, before.out + before.err).toBe(0);
  return { listen, id, file, on, other };
}

describe('nat listen with two rendezvous nodes', () => {
  it('moves to the other node within 5 s of its node being SIGKILLed, and is reachable through it', async () => {
    const { listen, id, on, other } = await listenOnTwo(['127.0.18.41', '127.0.18.42'], 'killed', 'repeated');
    const killedAt = performance.now();
    on.child.kill('SIGKILL');
    const switched = await listen.waitFor((l) => l.event === 'rendezvous-switched', 15_000);
    const switchMs = performance.now() - killedAt;
    expect(switched).toMatchObject({ from: on.url, to: other.url });
    const ping = await pingThrough(other.url, id);
    const reachableMs = performance.now() - killedAt;
    expect(ping.code, ping.out + ping.err).toBe(0);
    expect(JSON.parse(ping.out.trim())).toMatchObject({ peer: id, path: 'direct' });
    console.log(
      `failover after SIGKILL: registered with the other node ${Math.round(switchMs)} ms after the kill, a ping through it done at ${Math.round(reachableMs)} ms`,
    );
    expect(switchMs).toBeLessThan(BUDGET_MS);
    expect(listen.events().find((l) => l.event === 'rendezvous-lost')).toMatchObject({ code: 1006, from: on.url, retryMs: 0 });
  }, 40_000);

  it('leaves a SIGSTOPped node on the ping deadline within 5 s; a 4000 "replaced" from that node afterwards does not stop it', async () => {
    const { listen, id, file, on, other } = await listenOnTwo(['127.0.18.43', '127.0.18.44'], 'stopped', 'comma');
    let exitCode: number | undefined;
    void listen.done.then((c) => (exitCode = c));
    const stoppedAt = performance.now();
    on.child.kill('SIGSTOP');
    const switched = await listen.waitFor((l) => l.event === 'rendezvous-switched', 15_000);
    const switchMs = performance.now() - stoppedAt;
    expect(switched).toMatchObject({ from: on.url, to: other.url });
    // the stopped node sent nothing: the client gave up on its silence, not on a close
    expect(listen.events().find((l) => l.event === 'rendezvous-lost')).toMatchObject({
      code: 1006,
      reason: expect.stringMatching(/no answer to ping within \d+ ms/),
    });
    console.log(`failover from a stopped node: registered with the other node ${Math.round(switchMs)} ms after SIGSTOP`);
    expect(switchMs).toBeLessThan(BUDGET_MS);
    const ping = await pingThrough(other.url, id);
    expect(ping.code, ping.out + ping.err).toBe(0);

    // The node comes back and, as a cluster node does when the peer registered elsewhere, the
    // registration of the listener's id there replaces (4000) whatever connection it had for it.
    on.child.kill('SIGCONT');
    const identity = await loadOrCreateIdentity(file);
    const replacer = await RendezvousClient.connect({ url: on.url, identity });
    await replacer.close();
    // still registered with the other node and answering; never said it was replaced
    const again = await pingThrough(other.url, id);
    expect(again.code, again.out + again.err).toBe(0);
    expect(exitCode).toBeUndefined();
    expect(listen.err()).not.toMatch(/replaced/);
    expect(listen.events().filter((l) => l.event === 'rendezvous-switched')).toHaveLength(1);
  }, 40_000);
});

describe('the ping deadline', () => {
  it("does not take a stall of the client's own process for a silent node when the pong came in meanwhile", async () => {
    const node = await startNode('127.0.18.50');
    const client = await RendezvousClient.connect({ url: node.url, identity: generateIdentity(), pingIntervalMs: 200, pingTimeoutMs: 1000 });
    // the node holds its answer while a ping goes out (one goes every 200 ms)...
    node.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 400));
    // ...then answers it while this process is stalled past the ping's deadline: when the stall
    // ends the deadline's timer runs before the socket is read, and the pong waiting there counts
    node.child.kill('SIGCONT');
    const until = performance.now() + 1600;
    while (performance.now() < until); // a synchronous stall, on purpose
    expect(await client.ping({ timeoutMs: 5000 })).toBeGreaterThan(0);
    expect(client.closeInfo).toBeUndefined();
    await client.close();
  }, 20_000);
});

describe('nat expose with two rendezvous nodes (a config file listing both)', () => {
  it('claims its name again on the other node when its node is SIGKILLed: nat connect NAME through the other node carries data', async () => {
    const [a, b] = await Promise.all(['127.0.18.48', '127.0.18.49'].map(startNode));
    const hash = await startHashService();
    const config = join(dir, 'expose.json');
    await writeFile(
      config,
      JSON.stringify({ rendezvous: [a!.url, b!.url], services: [{ name: 'moving-svc', target: `127.0.0.1:${hash.port}`, allowAny: true }] }),
    );
    const expose = runs.start(['expose', '--config', config, '--identity', join(dir, 'expose.pem'), '--host-address', '127.0.0.1', '--no-punch', '--json']);
    const ready = await expose.waitFor((l) => l.event === 'ready');
    expect([a!.url, b!.url]).toContain(ready.rendezvous);
    const [on, other] = ready.rendezvous === a!.url ? [a!, b!] : [b!, a!];
    on.child.kill('SIGKILL');
    await expose.waitFor((l) => l.event === 'rendezvous-switched', 15_000);
    // the name is known to the other node only because the exposer claimed it there again
    const connect = runs.start(['connect', 'moving-svc', '--listen', '127.0.0.1:0', '-r', other.url, '--host-address', '127.0.0.1', '--no-punch', '--json']);
    const listening = await connect.waitFor((l) => l.event === 'listening');
    expect(listening.peer).toBe(ready.id);
    const data = randomBytes(256 << 10);
    expect(await roundTrip(Number(String(listening.listen).split(':')[1]), data)).toBe(sha256(data));
    connect.stop.abort();
    hash.server.close();
  }, 40_000);
});

describe('a rendezvous host name with several addresses', () => {
  it('is one target per address; the next address is tried when one refuses, with the name in the Host header', async () => {
    const hosts: string[] = [];
    const http = createServer((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.writeHead(404).end();
    });
    // the rendezvous on 127.0.18.46 only; the same port on 127.0.18.45 refuses
    const rv = await startRendezvous({ host: '127.0.18.46', port: 0 });
    const port = Number(new URL(rv.url).port);
    const url = `ws://rv.failover.test:${port}/`;
    const targets = await resolveRendezvousTargets([url, url], { resolve: async () => ['127.0.18.45', '127.0.18.46', '127.0.18.45'] });
    expect(targets).toEqual([
      { url, address: '127.0.18.45' },
      { url, address: '127.0.18.46' },
    ]);
    const failed: string[] = [];
    const { client, index } = await connectRendezvousTargets({
      targets,
      identity: generateIdentity(),
      onAttemptFailed: (t, e) => failed.push(`${t.address} ${e.code}`),
    });
    expect(index).toBe(1);
    expect(client.address).toBe('127.0.18.46');
    expect(failed).toEqual(['127.0.18.45 SOCKET']);
    expect(await client.ping()).toBeGreaterThan(0);
    await client.close();
    await rv.close();
    // the Host header carries the name, not the address connected to
    await new Promise<void>((r) => http.listen(0, '127.0.18.47', r));
    const httpPort = (http.address() as { port: number }).port;
    const named = `ws://rv.failover.test:${httpPort}/`;
    await expect(RendezvousClient.connect({ url: named, address: '127.0.18.47', identity: generateIdentity() })).rejects.toThrow(/404/);
    expect(hosts).toEqual([`rv.failover.test:${httpPort}`]);
    http.close();
  }, 20_000);
});
