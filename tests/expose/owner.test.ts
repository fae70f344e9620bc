/**
 * Who owns a public port (nat expose --public --advertise-peer, nat owner PORT, GET
 * /expose/owner?port=P): told only when the owner opted in and proved its key on its own control
 * connection; the built binaries as child processes, curl as an independent HTTP client.
 */
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EXPOSE_VERSION, exposeAdvertisePayload, exposeSigningPayload, peerIdFromPublicKey } from '@nat/protocol';
import { echoServer, portBlock } from './harness.js';
import { rawSession } from './raw.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = join(repo, 'apps/server/dist/main.js');
const NAT_CLI = join(repo, 'apps/cli/dist/main.js');

function run(args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [NAT_CLI, ...args], { timeout: timeoutMs }, (e, stdout, stderr) =>
      resolve({ code: e === null ? 0 : Number((e as { code?: number }).code ?? 1), stdout, stderr }),
    );
  });
}

function curl(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['--silent', '--max-time', '20', '--write-out', '\n%{http_code}', url], (e, stdout) => {
      if (e !== null) return reject(new Error(e.message));
      const i = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) });
    });
  });
}

/** A long-running child with its output. */
function start(args: string[]): { out: () => string; err: () => string; stop: () => Promise<void>; wait: (re: RegExp) => Promise<RegExpExecArray> } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    out: () => out,
    err: () => err,
    async wait(re) {
      const end = Date.now() + 20_000;
      for (;;) {
        const m = re.exec(out) ?? re.exec(err);
        if (m) return m;
        if (child.exitCode !== null || Date.now() > end) throw new Error(`waited for ${re} (exit ${child.exitCode}):\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exit;
      }
    },
  };
}

describe('nat expose --public --advertise-peer and nat owner', () => {
  let dir: string;
  let server: ReturnType<typeof start>;
  let url: string;
  let base: string;
  let range: { min: number; max: number };
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const children: ReturnType<typeof start>[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nat-owner-'));
    echo = await echoServer();
    range = portBlock(6);
    server = start([
      NAT_SERVER,
      '--listen',
      '127.0.0.2',
      '--port',
      '0',
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
      '--log-level',
      'silent',
    ]);
    children.push(server);
    const m = await server.wait(/rendezvous (ws:\/\/(127\.0\.0\.2:\d+)\/)/);
    await server.wait(/expose ws:/);
    url = m[1]!;
    base = `http://${m[2]!}`;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    echo?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("an owner who advertised is told, by nat owner and by a plain HTTP GET; its peer id is the identity's", async () => {
    const identity = join(dir, 'alice.key');
    const id = (await run(['id', '--identity', identity])).stdout.trim();
    expect(id).toMatch(/^[a-z2-7]{32}$/);
    const alice = start([
      NAT_CLI,
      'expose',
      `127.0.0.1:${echo.port}`,
      '--public',
      '--rendezvous',
      url,
      '--user',
      'alice:alice-pw',
      '--public-port',
      String(range.min),
      '--advertise-peer',
      '--identity',
      identity,
      '--json',
    ]);
    children.push(alice);
    const ev = JSON.parse((await alice.wait(/\{"time"[^\n]*"event":"exposed"[^\n]*\}/))[0]) as Record<string, unknown>;
    expect(ev).toMatchObject({ event: 'exposed', port: range.min, user: 'alice', peer: id });

    const told = await run(['owner', String(range.min), '--rendezvous', url]);
    expect(told).toMatchObject({ code: 0, stdout: `${id}\n` });
    const json = await run(['owner', String(range.min), '--rendezvous', url, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ event: 'owner', transport: 'tcp', port: range.min, address: `127.0.0.2:${range.min}`, peer: id });
    const http = await curl(`${base}/expose/owner?port=${range.min}`);
    expect(http.status).toBe(200);
    expect(JSON.parse(http.body)).toEqual({ v: 1, transport: 'tcp', port: range.min, address: `127.0.0.2:${range.min}`, peer: id });

    // once the owner is gone (its port held for the grace period), it is no longer told
    await alice.stop();
    for (let i = 0; i < 100 && (await curl(`${base}/expose/owner?port=${range.min}`)).status !== 404; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await run(['owner', String(range.min), '--rendezvous', url])).code).toBe(1);
  });

  test('an owner who did not opt in, and a port nobody holds, get the same 404; nat owner exits 1 and says why', async () => {
    const bob = start([
      NAT_CLI,
      'expose',
      `127.0.0.1:${echo.port}`,
      '--public',
      '--rendezvous',
      url,
      '--user',
      'bob:bob-pw',
      '--public-port',
      String(range.min + 1),
    ]);
    children.push(bob);
    await bob.wait(/public tcp/);
    const notAdvertised = await curl(`${base}/expose/owner?port=${range.min + 1}`);
    const notHeld = await curl(`${base}/expose/owner?port=${range.max}`);
    expect(notAdvertised.status).toBe(404);
    expect(notHeld.status).toBe(404);
    expect(JSON.parse(notAdvertised.body)).toMatchObject({ v: 1, error: 'not-advertised' });
    expect(notAdvertised.body.replace(String(range.min + 1), 'P')).toBe(notHeld.body.replace(String(range.max), 'P'));
    const r = await run(['owner', String(range.min + 1), '--rendezvous', url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--advertise-peer/);
    expect((await curl(`${base}/expose/owner?port=0`)).status).toBe(400);
    // the rendezvous HTTP server still answers other plain requests as before
    expect((await curl(`${base}/`)).status).toBe(426);
    expect((await run(['owner', '70000', '--rendezvous', url])).code).toBe(2);
    expect((await run(['owner', String(range.min), '--rendezvous', 'ws://127.0.0.1:1/'])).code).toBe(3);
    await bob.stop();
  });

  test('the --config file of nat expose --public takes outboundSocks and advertisePeer', async () => {
    const identity = join(dir, 'carol.key');
    const id = (await run(['id', '--identity', identity])).stdout.trim();
    const config = join(dir, 'expose.json');
    writeFileSync(config, JSON.stringify({ rendezvous: url, user: 'alice:alice-pw', identity, outboundSocks: '127.0.0.1:0', advertisePeer: true }), {
      mode: 0o600,
    });
    const nat = start([NAT_CLI, 'expose', `127.0.0.1:${echo.port}`, '--public', '--config', config, '--public-port', String(range.min + 4), '--json']);
    children.push(nat);
    await nat.wait(/"event":"outbound-socks","address":"127\.0\.0\.1:\d+"/);
    expect(JSON.parse((await nat.wait(/\{"time"[^\n]*"event":"exposed"[^\n]*\}/))[0])).toMatchObject({ port: range.min + 4, user: 'alice', peer: id });
    expect((await run(['owner', String(range.min + 4), '--rendezvous', url])).stdout).toBe(`${id}\n`);
    await nat.stop();
  });

  test("a key the requester cannot sign for, or a proof made for another connection, is refused (forbidden): nobody advertises another peer's id", async () => {
    const victim = generateKeyPairSync('ed25519');
    const mallory = generateKeyPairSync('ed25519');
    const raw = async (): Promise<Awaited<ReturnType<typeof rawSession>>> => {
      const s = await rawSession(url, 'bob', 'bob-pw');
      await s.waitFor((m) => m.type === 'welcome');
      return s;
    };
    const publicKey = Buffer.from(victim.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64url');
    const victimId = peerIdFromPublicKey(Buffer.from(publicKey, 'base64url'));
    const s1 = await raw();
    const nonce = (s1.messages.find((m) => m.type === 'challenge') as { nonce: string }).nonce;
    // signed by another key
    s1.send({
      v: EXPOSE_VERSION,
      type: 'expose',
      id: 1,
      transport: 'tcp',
      port: range.min + 2,
      advertise: { publicKey, signature: sign(null, exposeAdvertisePayload(nonce, victimId), mallory.privateKey).toString('base64url') },
    });
    expect(await s1.waitFor((m) => m.type === 'refused')).toMatchObject({ code: 'forbidden', ref: 1 });
    // the victim's signature, but over the authentication payload (not the advertise one)
    s1.send({
      v: EXPOSE_VERSION,
      type: 'expose',
      id: 2,
      transport: 'tcp',
      port: range.min + 2,
      advertise: { publicKey, signature: sign(null, exposeSigningPayload(nonce, victimId), victim.privateKey).toString('base64url') },
    });
    expect(await s1.waitFor((m) => m.type === 'refused' && m.ref === 2)).toMatchObject({ code: 'forbidden' });
    // a valid proof from connection 1 replayed on connection 2
    const replayed = sign(null, exposeAdvertisePayload(nonce, victimId), victim.privateKey).toString('base64url');
    const s2 = await raw();
    s2.send({ v: EXPOSE_VERSION, type: 'expose', id: 3, transport: 'tcp', port: range.min + 3, advertise: { publicKey, signature: replayed } });
    expect(await s2.waitFor((m) => m.type === 'refused')).toMatchObject({ code: 'forbidden', ref: 3 });
    // the same proof on its own connection is accepted, and told
    s1.send({ v: EXPOSE_VERSION, type: 'expose', id: 4, transport: 'tcp', port: range.min + 2, advertise: { publicKey, signature: replayed } });
    expect(await s1.waitFor((m) => m.type === 'exposed')).toMatchObject({ ref: 4, port: range.min + 2 });
    expect(JSON.parse((await curl(`${base}/expose/owner?port=${range.min + 2}`)).body)).toMatchObject({ peer: victimId });
    for (const s of [s1, s2]) s.socket.destroy();
  });
});
