/**
 * Trust tiers with the documented setup (`nat-server --realm R --auth-secret S --rendezvous-port P
 * --expose-ports X`), in-process on loopback aliases 127.0.14.x: what the rendezvous hands to any
 * key is a narrower credential. It exposes no port, allocates no TCP relay, and relays only
 * toward what its own sessions signalled; two peers that met at the rendezvous still connect
 * through the relay, and an operator's static user keeps exposing and relaying to anywhere.
 */
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { runCli } from '@nat/cli';
import { RendezvousClient, StunClientError, TurnClient, exposePublic } from '@nat/client';
import { run as runServer, type RunningServer } from '@nat/server-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoServer, portBlock, roundTrip } from '../expose/harness.js';
import { capture } from '../tunnel/helpers.js';

const HOST = '127.0.14.1';
/** An address no session signalled: the "arbitrary internet address" of the attack. */
const OUTSIDE = '127.0.14.99';

let server: RunningServer;
let url: string;
let turnUdp: string;
let range: { min: number; max: number };
let dir: string;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nat-tiers-'));
  range = portBlock(32);
  const io = capture();
  // The documented setup, plus a static operator user and --allow-peer for loopback peers.
  server = (await runServer(
    [
      '--listen',
      HOST,
      '--port',
      '0',
      '--no-alt-port',
      '--realm',
      'tiers.test',
      '--auth-secret',
      'S3CRET',
      '--rendezvous-port',
      '0',
      '--expose-ports',
      `${range.min}-${range.max}`,
      '--user',
      'alice:alice-pw',
      '--allow-peer',
      '127.0.0.0/8',
      '--log-level',
      'silent',
    ],
    io.io,
  ))!;
  url = /rendezvous (ws:\S+)/.exec(io.err())![1]!;
  turnUdp = /listening udp (\S+)/.exec(io.err())![1]!;
});

afterAll(async () => {
  for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A throwaway key registered with the rendezvous, and the TURN credentials it was handed. */
async function throwawayKey(): Promise<{ rv: RendezvousClient; username: string; password: string }> {
  const rv = await RendezvousClient.connect({ url, identity: generateKeyPairSync('ed25519') });
  closers.push(() => rv.close());
  const turn = rv.iceServers.find((s) => s.username !== undefined)!;
  return { rv, username: turn.username!, password: turn.credential! };
}

async function turnError(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (e instanceof StunClientError) return e.stunErrorCode;
    throw e;
  }
}

describe('trust tiers', () => {
  it('finding 1: 8 throwaway keys get zero public ports, and their credentials relay only toward their sessions (403 elsewhere)', async () => {
    const echo = await echoServer(HOST);
    closers.push(() => echo.server.close());
    const keys = await Promise.all(Array.from({ length: 8 }, () => throwawayKey()));
    // The attack: each key's rendezvous credentials as an expose user, 4 ports each.
    let granted = 0;
    const reasons = new Set<string>();
    for (const k of keys) {
      for (let i = 0; i < 4; i++) {
        const t = exposePublic({ url, credentials: { username: k.username, password: k.password }, target: { host: HOST, port: echo.port }, reconnect: false });
        closers.push(() => t.close());
        try {
          await t.ready;
          granted++;
        } catch (e) {
          reasons.add((e as Error).message);
        }
      }
    }
    expect(granted).toBe(0);
    expect([...reasons].join('\n')).toMatch(/anonymous relay credentials .* cannot expose ports/);

    // The open proxy: relaying toward an address no session of this key signalled.
    const k = keys[0]!;
    const udp = await TurnClient.connect({ server: turnUdp, username: k.username, password: k.password });
    closers.push(() => udp.close());
    expect(await turnError(udp.createPermission(`${OUTSIDE}:53`))).toBe(403);
    expect(await turnError(udp.bindChannel(`${OUTSIDE}:53`))).toBe(403);
    // (no RFC 6062 TCP relay for this tier either: packages/server/test/turn-tiers.test.ts)

    // A colluding key names OUTSIDE as its candidate: not its own source, so still 403.
    const other = keys[1]!;
    other.rv.send({
      type: 'offer',
      to: k.rv.id,
      sessionId: 'collude-1',
      ufrag: 'abcd',
      pwd: 'abcdefghijklmnopqrstuv',
      candidates: [`candidate:1 1 udp 2130706431 ${OUTSIDE} 5000 typ host`],
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(await turnError(udp.createPermission(`${OUTSIDE}:5000`))).toBe(403);
    // What that key really signals on its own address is in scope.
    other.rv.send({ type: 'candidate', to: k.rv.id, sessionId: 'collude-1', candidate: `candidate:2 1 udp 2130706431 127.0.0.1 5001 typ host` });
    await new Promise((r) => setTimeout(r, 300));
    expect(await turnError(udp.createPermission('127.0.0.1:5001'))).toBeUndefined();
  }, 60_000);

  it('finding 1: two peers that met at the rendezvous connect through the relay with the credentials it handed out', async () => {
    const listen = capture();
    const stop = new AbortController();
    closers.push(() => stop.abort());
    const done = runCli(['listen', '--rendezvous', url, '--identity', join(dir, 'listen.pem'), '--host-address', HOST, '--no-punch'], listen.io, stop.signal);
    const deadline = Date.now() + 20_000;
    while (!/^[a-z2-7]{32}\n/.test(listen.out()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const peerId = listen.out().split('\n')[0]!;
    const ping = capture();
    const code = await runCli(['ping', peerId, '--rendezvous', url, '--relay-only', '--no-punch', '--count', '2', '--json'], ping.io);
    expect(code, `${ping.out()}${ping.err()}\n${listen.err()}`).toBe(0);
    const r = JSON.parse(ping.out().trim()) as { path: string; localCandidate: { type: string }; rttMs: number[] };
    expect(r.path).toBe('relay');
    expect(r.localCandidate.type).toBe('relay');
    expect(r.rttMs.length).toBeGreaterThan(0);
    stop.abort();
    expect(await done).toBe(0);
  }, 60_000);

  it("an operator's static user still exposes a public port and relays toward any allowed address", async () => {
    const echo = await echoServer(HOST);
    closers.push(() => echo.server.close());
    const t = exposePublic({ url, credentials: { username: 'alice', password: 'alice-pw' }, target: { host: HOST, port: echo.port }, reconnect: false });
    closers.push(() => t.close());
    const got = await t.ready;
    expect(got.port).toBeGreaterThanOrEqual(range.min);
    expect((await roundTrip(got.port, Buffer.from('hello'), HOST)).toString()).toBe('hello');
    const udp = await TurnClient.connect({ server: turnUdp, username: 'alice', password: 'alice-pw' });
    closers.push(() => udp.close());
    expect(await turnError(udp.createPermission(`${OUTSIDE}:53`))).toBeUndefined();
  }, 60_000);
});

describe('a members-only rendezvous (nat-server --rendezvous-token)', () => {
  it('nat listen without the invite token is refused (401, naming --rendezvous-token); with it, listen and ping meet', async () => {
    const io = capture();
    const members = (await runServer(
      [
        '--listen',
        '127.0.14.2',
        '--port',
        '0',
        '--no-alt-port',
        '--no-tcp',
        '--rendezvous-port',
        '0',
        '--rendezvous-token',
        'invite-0123',
        '--log-level',
        'silent',
      ],
      io.io,
    ))!;
    closers.push(() => members.stop());
    const rv = /rendezvous (ws:\S+)/.exec(io.err())![1]!;
    const refused = capture();
    // refused (1), not "no server answered" (3)
    expect(await runCli(['listen', '--rendezvous', rv, '--identity', join(dir, 'member.pem')], refused.io)).toBe(1);
    expect(refused.err()).toMatch(/401.*--rendezvous-token/);
    const listen = capture();
    const stop = new AbortController();
    closers.push(() => stop.abort());
    const done = runCli(
      ['listen', '--rendezvous', rv, '--rendezvous-token', 'invite-0123', '--identity', join(dir, 'member.pem'), '--host-address', '127.0.14.2', '--no-punch'],
      listen.io,
      stop.signal,
    );
    const deadline = Date.now() + 20_000;
    while (!/^[a-z2-7]{32}\n/.test(listen.out()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const ping = capture();
    const code = await runCli(
      [
        'ping',
        listen.out().split('\n')[0]!,
        '--rendezvous',
        rv,
        '--rendezvous-token',
        'invite-0123',
        '--host-address',
        '127.0.14.2',
        '--no-punch',
        '--count',
        '1',
      ],
      ping.io,
    );
    expect(code, `${ping.err()}\n${listen.err()}`).toBe(0);
    stop.abort();
    expect(await done).toBe(0);
  }, 60_000);
});
