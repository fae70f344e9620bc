/**
 * What the peer commands say when they cannot work as asked, on loopback (in-process `nat` and
 * `nat-server`): connecting to one's own peer id is refused before anything is sent; a process
 * whose registration another process with the same identity replaced stops and says so; `nat
 * listen` registers again after a rendezvous restart; and an ICE failure reports what was
 * observed (no relay offered, permissions the relay refused) with the flag that fixes it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateIdentity } from '@nat/client';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '@nat/cli';
import { capture } from '../tunnel/helpers.js';
import { PeerRuns } from './harness.js';

let dir: string;
const runs = new PeerRuns();
const start = (args: string[]) => runs.start(args);
const startServer = async (host: string, extra: string[]): Promise<string> => (await runs.startServer(host, extra)).url;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nat-peer-failures-'));
});
afterAll(async () => {
  await runs.close();
  await rm(dir, { recursive: true, force: true });
});

const until = async (what: string, ok: () => boolean, ms = 20_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("connecting to this peer's own id", () => {
  it('nat ping and nat connect refuse at once, before contacting the rendezvous, and name --identity', async () => {
    const file = join(dir, 'self.pem');
    const me = await loadOrCreateIdentity(file);
    // nothing listens on port 9 here: the refusal must come before any connection attempt
    const nowhere = 'ws://127.0.13.10:9/';
    const ping = capture();
    expect(await runCli(['ping', me.id, '--rendezvous', nowhere, '--identity', file], ping.io)).toBe(2);
    expect(ping.err()).toMatch(/is this peer's own id/);
    expect(ping.err()).toContain(file);
    expect(ping.err()).toMatch(/--identity FILE/);
    const connect = capture();
    expect(await runCli(['connect', me.id, '--listen', '127.0.13.10:0', '--rendezvous', nowhere, '--identity', file], connect.io)).toBe(2);
    expect(connect.err()).toMatch(/is this peer's own id.*--identity FILE/s);
  });

  it("nat connect NAME where the name is this same identity's: connect says so, the exposer says it was replaced", async () => {
    const url = await startServer('127.0.13.11', ['--auth-secret', 'S3CRET']);
    const file = join(dir, 'both.pem');
    const expose = start(['expose', '127.0.13.11:9', '--name', 'self-svc', '--allow-any', '--rendezvous', url, '--identity', file, '--json']);
    await expose.waitFor((l) => l.event === 'ready');
    const connect = capture();
    expect(await runCli(['connect', 'self-svc', '--listen', '127.0.13.11:0', '--rendezvous', url, '--identity', file], connect.io)).toBe(2);
    expect(connect.err()).toMatch(/the name self-svc is exposed by peer [a-z2-7]{32}, which is this peer's own id/);
    expect(connect.err()).toMatch(/--identity FILE/);
    expect(await expose.done).toBe(1);
    expect(expose.err()).toMatch(/another process registered with the rendezvous under the same identity/);
  });
});

describe('two processes with one identity', () => {
  it('the replaced nat listen stops with a message naming the identity file and --identity; the newer one stays', async () => {
    const url = await startServer('127.0.13.12', ['--auth-secret', 'S3CRET']);
    const file = join(dir, 'twice.pem');
    // --host-address: this machine's other interfaces stay out of the test (loopback only)
    const first = start(['listen', '--rendezvous', url, '--identity', file, '--host-address', '127.0.13.12']);
    await until('the first id', () => first.out().length > 0);
    const second = start(['listen', '--rendezvous', url, '--identity', file, '--host-address', '127.0.13.12']);
    expect(await first.done).toBe(1);
    expect(first.err()).toMatch(
      new RegExp(`another process registered with the rendezvous under the same identity \\(${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
    );
    expect(first.err()).toMatch(/--identity FILE/);
    // the newer one did not get replaced back: it answers a ping
    await until('the second id', () => second.out().length > 0);
    const ping = capture();
    expect(await runCli(['ping', second.out().trim(), '--rendezvous', url, '--count', '1', '--host-address', '127.0.13.12'], ping.io), ping.err()).toBe(0);
    expect(second.err()).not.toMatch(/another process/);
    second.stop.abort();
    expect(await second.done).toBe(0);
  }, 40_000);
});

describe('nat listen across a rendezvous restart', () => {
  it('registers again and answers pings afterwards', async () => {
    const host = '127.0.13.13';
    let rv: RendezvousServer = await startRendezvous({ host, port: 0 });
    const port = rv.address.port;
    const file = join(dir, 'restart.pem');
    const listen = start(['listen', '--rendezvous', rv.url, '--identity', file, '--no-punch', '--json', '--host-address', host]);
    const first = await listen.waitFor((l) => typeof l.id === 'string');
    await rv.close();
    await listen.waitFor((l) => l.event === 'rendezvous-lost');
    rv = await startRendezvous({ host, port });
    runs.keep({ stop: () => rv.close() });
    await listen.waitFor((l) => l.event === 'rendezvous-reconnected' && l.id === first.id, 30_000);
    const ping = capture();
    expect(await runCli(['ping', String(first.id), '--rendezvous', rv.url, '--count', '1', '--no-punch', '--host-address', host], ping.io), ping.err()).toBe(0);
    listen.stop.abort();
    expect(await listen.done).toBe(0);
  }, 60_000);
});

describe('an ICE failure says what was observed', () => {
  it('a rendezvous with static users only: "no relay was offered", with the server flag; connect does not blame --allow', async () => {
    const url = await startServer('127.0.13.14', ['--user', 'alice:secret']);
    const listen = start(['listen', '--rendezvous', url, '--identity', join(dir, 'static-listen.pem'), '--host-address', '127.0.13.14']);
    await until('the id', () => listen.out().length > 0);
    const ping = capture();
    expect(await runCli(['ping', listen.out().trim(), '--rendezvous', url, '--relay-only'], ping.io)).toBe(1);
    expect(ping.err()).toMatch(
      /no relay was offered by the rendezvous: the ICE servers it handed out were stun:127\.0\.13\.14:\d+ \(no TURN server with credentials\)/,
    );
    expect(ping.err()).toMatch(/--auth-secret/);
    expect(ping.err()).toMatch(/drop --relay-only/);

    const connector = await loadOrCreateIdentity(join(dir, 'static-connect.pem'));
    const expose = start([
      'expose',
      '127.0.13.14:9',
      '--name',
      'static-svc',
      '--allow',
      connector.id,
      '--rendezvous',
      url,
      '--identity',
      join(dir, 'static-expose.pem'),
      '--host-address',
      '127.0.13.14',
      '--json',
    ]);
    await expose.waitFor((l) => l.event === 'ready');
    const connect = capture();
    const code = await runCli(
      ['connect', 'static-svc', '--listen', '127.0.13.14:0', '--rendezvous', url, '--identity', connector.path, '--relay-only'],
      connect.io,
    );
    expect(code).not.toBe(0);
    expect(connect.err()).toMatch(/no relay was offered by the rendezvous/);
    expect(connect.err()).not.toMatch(/--allow\b/);
  }, 40_000);

  it("a relay that refuses loopback peers (403): the error names the server's --allow-peer 127.0.0.0/8", async () => {
    const url = await startServer('127.0.13.15', ['--auth-secret', 'S3CRET']);
    const listen = start(['listen', '--rendezvous', url, '--identity', join(dir, 'forbidden-listen.pem'), '--host-address', '127.0.13.16']);
    await until('the id', () => listen.out().length > 0);
    const ping = capture();
    expect(await runCli(['ping', listen.out().trim(), '--rendezvous', url, '--relay-only', '--json'], ping.io)).toBe(1);
    expect(ping.err()).toMatch(/the relay refused permissions toward the peer's addresses: .*127\.0\.13\.16 \(403\)/);
    expect(ping.err()).toMatch(/start nat-server with --allow-peer 127\.0\.0\.0\/8/);
    const r = JSON.parse(ping.out().trim()) as { diagnosis: { relay: string; local: { relay: number } }; hints: string[] };
    expect(r.diagnosis.relay).toBe('obtained');
    expect(r.hints.join('\n')).toMatch(/--allow-peer 127\.0\.0\.0\/8/);
  }, 40_000);
});
