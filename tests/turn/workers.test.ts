/**
 * `nat-server --workers 2` on a loopback alias (the built binary): STUN Binding from many
 * sources answered on the shared port; TURN allocations of several users land on both workers
 * (300 Try Alternate to each worker's own port, seen in the client's server address and in the
 * per-worker metrics); relay works through each worker; a user quota of 3 holds across workers;
 * a worker killed with SIGKILL is restarted and the server keeps answering; coturn's
 * turnutils_uclient follows the redirect and relays; SIGHUP reloads every worker; SIGTERM stops
 * every process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StunClientError, TurnClient, stunBinding } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../apps/server/dist/main.js', import.meta.url));
const UCLIENT = '/usr/bin/turnutils_uclient';
const NET = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
const IP = `${NET}.1`;
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];
const PASSWORD = 'pw-workers';

interface Server {
  child: ChildProcess;
  err: () => string;
  exited: Promise<number | null>;
}

let server: Server;
const dir = mkdtempSync(join(tmpdir(), 'workers-test-'));
const usersFile = join(dir, 'users');
let sharedPort = 0;
let admin = '';

function waitFor<T>(what: string, read: () => T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const v = read();
      if (v !== undefined) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`${what} not seen within ${ms} ms; stderr:\n${server.err()}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

/** The worker whose own TURN port is `port`, from the start-up (and restart) lines. */
function workerOfPort(port: number): number | undefined {
  const re = /worker (\d+) (?:pid \d+:|\(pid \d+\) restarted:) TURN allocations on udp [\d.]+:(\d+)/g;
  let owner: number | undefined;
  for (const m of server.err().matchAll(re)) if (Number(m[2]) === port) owner = Number(m[1]);
  return owner;
}

/** The worker whose own TURN TCP port is `port`. */
function workerOfTcpPort(port: number): number | undefined {
  const re = /worker (\d+) (?:pid \d+:|\(pid \d+\) restarted:) TURN allocations on udp [\d.]+:\d+, tcp [\d.]+:(\d+)/g;
  let owner: number | undefined;
  for (const m of server.err().matchAll(re)) if (Number(m[2]) === port) owner = Number(m[1]);
  return owner;
}

async function metric(name: string): Promise<string> {
  const text = await (await fetch(admin)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

function connect(username: string, transport: 'udp' | 'tcp' = 'udp'): Promise<TurnClient> {
  return TurnClient.connect({ server: `${IP}:${sharedPort}`, transport, username, password: PASSWORD, localAddress: IP });
}

/** Relays one datagram client -> peer -> client through `client`'s allocation. */
async function relayOnce(client: TurnClient): Promise<void> {
  const peer = createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, `${NET}.200`, r));
  try {
    const peerAddress = { family: 'IPv4' as const, address: `${NET}.200`, port: peer.address().port };
    await client.createPermission(peerAddress);
    const atPeer = new Promise<{ data: Buffer; port: number }>((r) => peer.once('message', (data, rinfo) => r({ data, port: rinfo.port })));
    client.send(peerAddress, new TextEncoder().encode('to the peer'));
    const got = await atPeer;
    expect(got.data.toString()).toBe('to the peer');
    expect(got.port).toBe(client.relayedAddress.port);
    const back = new Promise<string>((r) => client.on('data', (m) => r(new TextDecoder().decode(m.data))));
    peer.send('to the client', client.relayedAddress.port, client.relayedAddress.address);
    expect(await back).toBe('to the client');
  } finally {
    peer.close();
  }
}

beforeAll(async () => {
  const args = ['--workers', '2', '--listen', IP, '--port', '0', '--alt-port', '0', '--realm', 'workers.test', '--user-quota', '3'];
  writeFileSync(usersFile, USERS.map((u) => `${u}:${PASSWORD}\n`).join(''));
  args.push('--users-file', usersFile);
  args.push('--allow-peer', '127.0.0.0/8', '--rate-limit', '0', '--admin-port', '0', '--log-level', 'warn');
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c) => (err += String(c)));
  server = { child, err: () => err, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
  admin = await waitFor('the admin line', () => /admin (http:\/\/\S+\/metrics)/.exec(err)?.[1]);
  sharedPort = Number(/listening udp [\d.]+:(\d+) \(PP\)/.exec(err)![1]);
}, 90_000);

afterAll(async () => {
  if (server.child.exitCode === null) server.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('nat-server --workers 2', () => {
  it('answers STUN Binding from many sources on the shared port', async () => {
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => stunBinding(`${IP}:${sharedPort}`, { localAddress: `${NET}.${10 + i}`, rto: 200, rc: 7 })),
    );
    answers.forEach((a, i) => expect(a.mappedAddress.address).toBe(`${NET}.${10 + i}`));
  }, 60_000);

  const clients: TurnClient[] = [];
  it('spreads the allocations of several users over both workers and relays through each', async () => {
    for (const u of USERS.slice(0, 6)) clients.push(await connect(u));
    const owners = clients.map((c) => workerOfPort(c.serverAddress.port));
    expect(owners.every((o) => o === 0 || o === 1)).toBe(true);
    expect(new Set(owners)).toEqual(new Set([0, 1]));
    for (const w of [0, 1]) await relayOnce(clients[owners.indexOf(w)]!);
    // The admin listener sums the workers: 6 allocations, some on each.
    const deadline = Date.now() + 20_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await metric('nat_');
      if (/nat_turn_allocations_active 6/.test(text)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(text).toMatch(/nat_turn_allocations_active 6/);
    for (const w of [0, 1]) {
      const n = owners.filter((o) => o === w).length;
      expect(text).toContain(`nat_worker_turn_allocations_active{worker="${w}"} ${n}`);
    }
    expect(text).toMatch(/nat_stun_requests_total\{outcome="answered"\} (\d+)/);
    expect(Number(/nat_stun_requests_total\{outcome="answered"\} (\d+)/.exec(text)![1])).toBeGreaterThanOrEqual(60);
  }, 90_000);

  it('redirects TURN over TCP to the TCP port of the same worker, and relays there', async () => {
    const tcp = await connect(USERS[1]!, 'tcp');
    expect(tcp.transport).toBe('tcp');
    expect(tcp.serverAddress.port).not.toBe(sharedPort);
    expect(workerOfTcpPort(tcp.serverAddress.port)).toBe(workerOfPort(clients[1]!.serverAddress.port));
    await relayOnce(tcp);
    await tcp.close();
  }, 60_000);

  it('holds a user quota of 3 across workers', async () => {
    const user = USERS[0]!;
    const more = [await connect(user), await connect(user)];
    const ports = new Set([clients[0]!, ...more].map((c) => c.serverAddress.port));
    expect(ports.size).toBe(1); // one worker holds all of the user's allocations
    const fourth = await connect(user).then(
      (c) => c,
      (e: unknown) => e,
    );
    expect(fourth).toBeInstanceOf(StunClientError);
    expect((fourth as StunClientError).stunErrorCode).toBe(486);
    await Promise.all(more.map((c) => c.close()));
  }, 60_000);

  it('restarts a worker killed with SIGKILL and keeps answering', async () => {
    const victim = workerOfPort(clients[0]!.serverAddress.port)!;
    const pid = Number(new RegExp(`worker ${victim} pid (\\d+):`).exec(server.err())![1]);
    process.kill(pid, 'SIGKILL');
    await waitFor('the restart line', () =>
      new RegExp(`worker ${victim} \\(pid ${pid}\\) exited \\(signal SIGKILL\\); restarting it`).test(server.err()) ? true : undefined,
    );
    await waitFor('the restarted line', () =>
      new RegExp(`worker ${victim} \\(pid \\d+\\) restarted: TURN allocations on udp`).test(server.err()) ? true : undefined,
    );
    for (let i = 0; i < 20; i++) {
      const a = await stunBinding(`${IP}:${sharedPort}`, { localAddress: `${NET}.${100 + i}`, rto: 200, rc: 7 });
      expect(a.mappedAddress.address).toBe(`${NET}.${100 + i}`);
    }
    // The user's new allocation goes to the restarted worker, which binds the same own port (the
    // first free ones of its relay slice), and relays.
    const again = await connect(USERS[0]!);
    expect(workerOfPort(again.serverAddress.port)).toBe(victim);
    expect(again.serverAddress.port).toBe(clients[0]!.serverAddress.port);
    await relayOnce(again);
    await again.close();
    expect(await metric('nat_worker_restarts')).toContain(`nat_worker_restarts{worker="${victim}"} 1`);
  }, 90_000);

  it('relays for coturn turnutils_uclient, which follows the 300 to the worker', async () => {
    if (!existsSync(UCLIENT)) throw new Error(`${UCLIENT} is missing: install coturn (scripts/install-test-deps.sh)`);
    const args = [
      '-u',
      USERS[7]!,
      '-w',
      PASSWORD,
      '-r',
      'workers.test',
      '-y',
      '-n',
      '20',
      '-m',
      '1',
      '-l',
      '120',
      '-z',
      '5',
      '-c',
      '-p',
      String(sharedPort),
      IP,
    ];
    const output = await new Promise<string>((resolve, reject) =>
      execFile(UCLIENT, args, { timeout: 60_000 }, (e, stdout, stderr) =>
        e ? reject(new Error(`${e.message}\n${stdout}${stderr}`)) : resolve(`${stdout}${stderr}`),
      ),
    );
    expect(output).toContain('error 300 (Try Alternate)');
    expect(output).toMatch(/tot_send_msgs=40, tot_recv_msgs=40/);
  }, 90_000);

  it('reloads every worker on SIGHUP: a user added to the users file can allocate', async () => {
    await expect(connect('late')).rejects.toMatchObject({ stunErrorCode: 401 });
    appendFileSync(usersFile, `late:${PASSWORD}\n`);
    server.child.kill('SIGHUP');
    await waitFor('the reload line', () => (/SIGHUP: reloaded: .*worker 0: reloaded; worker 1: reloaded/.test(server.err()) ? true : undefined));
    const late = await connect('late');
    await relayOnce(late);
    await late.close();
  }, 60_000);

  it('stops every process on SIGTERM (exit 0)', async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    const pids = [...server.err().matchAll(/worker \d+ (?:pid (\d+):|\(pid (\d+)\) restarted)/g)].map((m) => Number(m[1] ?? m[2]));
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(pids.filter(alive)).toEqual([]);
  }, 60_000);
});

describe('nat-server --workers 2 whose primary dies', () => {
  it('leaves no worker behind when the primary is killed with SIGKILL', async () => {
    const child = spawn(process.execPath, [BIN, '--workers', '2', '--listen', `${NET}.2`, '--port', '0', '--alt-port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (c) => (err += String(c)));
    const deadline = Date.now() + 60_000;
    while (!/worker 1 pid/.test(err) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const pids = [...err.matchAll(/worker \d+ pid (\d+):/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2);
    child.kill('SIGKILL');
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const gone = Date.now() + 20_000;
    while (pids.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
    const left = pids.filter(alive);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    expect(left).toEqual([]);
  }, 90_000);
});
