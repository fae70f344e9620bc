/**
 * @nat/client's TurnClient against coturn's `turnserver` (an independent TURN implementation),
 * started by this test on loopback: two clients allocate, exchange data through Send/Data
 * indications and through channels, over UDP and TCP; wrong credentials fail with 401; a
 * refused peer fails with 403; closing deallocates. Skipped, with the reason printed, when
 * turnserver is not installed (Debian package coturn).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransportAddress } from '@nat/protocol';
import { type TurnClient as TurnClientType, type TurnPeerData, TurnClient, isStunClientError } from '@nat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TURNSERVER = ['/usr/bin/turnserver', '/usr/local/bin/turnserver'].find((p) => existsSync(p));
if (!TURNSERVER) console.warn('[interop] turnserver not installed (package coturn): client-coturn tests skipped');

const REALM = 'coturn.test';
let proc: ChildProcess | undefined;
let port = 0;
let dir = '';
let log = '';

/** Starts turnserver on a random high port; resolves once it serves Allocate, or rejects. */
async function startCoturn(): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    port = 20_000 + Math.floor(Math.random() * 20_000);
    const minPort = 40_000 + Math.floor(Math.random() * 9) * 1000;
    log = '';
    proc = spawn(
      TURNSERVER!,
      [
        '-n',
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '-L',
        '127.0.0.1',
        '-E',
        '127.0.0.1',
        '-p',
        String(port),
        '--min-port',
        String(minPort),
        '--max-port',
        String(minPort + 999),
        '--lt-cred-mech',
        '--user',
        'alice:alice-pw',
        '--user',
        'bob:bob-pw',
        '--realm',
        REALM,
        '--allow-loopback-peers',
        '--denied-peer-ip',
        '10.0.0.0-10.255.255.255',
        '--log-file',
        'stdout',
        '--simple-log',
        '--pidfile',
        join(dir, `turnserver-${port}.pid`),
        '--userdb',
        join(dir, `turndb-${port}`),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && proc.exitCode === null) {
      // Ready when an Allocate gets an answer (a probe with a 401 is enough).
      const probe = await TurnClient.connect({
        server: `127.0.0.1:${port}`,
        username: 'alice',
        password: 'wrong',
        retransmission: { rto: 100, rc: 2, rm: 2 },
      }).catch((e: unknown) => e);
      if (isStunClientError(probe, 'ERROR_RESPONSE')) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopCoturn();
  }
  throw new Error(`turnserver did not start:\n${log.slice(-3000)}`);
}

async function stopCoturn(): Promise<void> {
  const p = proc;
  proc = undefined;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  if (!TURNSERVER) return;
  dir = mkdtempSync(join(tmpdir(), 'nat-coturn-'));
  await startCoturn();
}, 60_000);

afterAll(async () => {
  await stopCoturn();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function connect(user: 'alice' | 'bob', transport: 'udp' | 'tcp', password = `${user}-pw`): Promise<TurnClientType> {
  return TurnClient.connect({
    server: `127.0.0.1:${port}`,
    username: user,
    password,
    transport,
    retransmission: { rto: 200, rc: 5, rm: 4 },
    signal: AbortSignal.timeout(10_000),
  });
}

function nextData(client: TurnClientType, ms = 3000): Promise<TurnPeerData> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('data', on);
      reject(new Error(`no data within ${ms} ms\n${log.slice(-2000)}`));
    }, ms);
    const on = (m: TurnPeerData): void => {
      clearTimeout(timer);
      client.off('data', on);
      resolve(m);
    };
    client.on('data', on);
  });
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const same = (a: TransportAddress, b: TransportAddress): boolean => a.address === b.address && a.port === b.port;

describe.skipIf(!TURNSERVER).each(['udp', 'tcp'] as const)('TurnClient against coturn over %s', (transport) => {
  it('allocates, relays through indications and channels both ways, and deallocates', async () => {
    const alice = await connect('alice', transport);
    const bob = await connect('bob', transport);
    try {
      expect(alice.relayedAddress.address).toBe('127.0.0.1');
      expect(alice.mappedAddress?.port).toBe(alice.localAddress.port);
      await Promise.all([alice.createPermission(bob.relayedAddress), bob.createPermission(alice.relayedAddress)]);

      let got = nextData(bob);
      expect(alice.send(bob.relayedAddress, text('indication to bob'))).toBe('indication');
      let m = await got;
      expect(str(m.data)).toBe('indication to bob');
      expect(same(m.peer, alice.relayedAddress)).toBe(true);
      expect(m.channel).toBeUndefined();

      got = nextData(alice);
      bob.send(alice.relayedAddress, text('indication to alice'));
      expect(str((await got).data)).toBe('indication to alice');

      const [ca, cb] = await Promise.all([alice.bindChannel(bob.relayedAddress), bob.bindChannel(alice.relayedAddress)]);
      expect(ca).toBeGreaterThanOrEqual(0x4000);
      got = nextData(bob);
      expect(alice.send(bob.relayedAddress, text('channel to bob, 23 B'))).toBe('channel');
      m = await got;
      expect(str(m.data)).toBe('channel to bob, 23 B');
      expect(m.channel).toBe(cb);
      expect(same(m.peer, alice.relayedAddress)).toBe(true);

      got = nextData(alice);
      expect(bob.send(alice.relayedAddress, text('channel to alice'))).toBe('channel');
      m = await got;
      expect(str(m.data)).toBe('channel to alice');
      expect(m.channel).toBe(ca);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
    expect(alice.state).toBe('closed');
    expect(bob.state).toBe('closed');
  });

  it('a wrong password fails with 401', async () => {
    const error = await connect('alice', transport, 'wrong').catch((e: unknown) => e);
    expect(isStunClientError(error, 'ERROR_RESPONSE')).toBe(true);
    expect((error as { stunErrorCode: number }).stunErrorCode).toBe(401);
  });

  it('a denied peer fails createPermission with 403 and the allocation lives on', async () => {
    const alice = await connect('alice', transport);
    try {
      const error = await alice.createPermission('10.1.2.3').catch((e: unknown) => e);
      expect(isStunClientError(error, 'ERROR_RESPONSE'), String(error)).toBe(true);
      expect((error as { stunErrorCode: number }).stunErrorCode).toBe(403);
      expect(alice.state).toBe('allocated');
    } finally {
      await alice.close();
    }
  });
});
