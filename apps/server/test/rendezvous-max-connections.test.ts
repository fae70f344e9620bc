/**
 * `--rendezvous-max-connections N` / config key `rendezvousMaxConnections`: the rendezvous' cap of
 * WebSocket connections in all (default 10,000). With N = 3, three WebSockets from three source
 * addresses are upgraded and kept; the fourth, from a fourth address (so no per-source share is
 * involved), is upgraded and closed at once with 1013 "too many connections", from the flag and
 * from a config file alike; one of the three leaving frees its place. The built nat-server, on
 * loopback only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BASE = ['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0', '--workers', '1', '--log-level', 'silent'];

/** Starts nat-server with `args`; resolves with its rendezvous URL. */
async function rendezvous(args: string[]): Promise<string> {
  const s = start([...BASE, ...args]);
  cleanups.push(async () => {
    if (s.child.exitCode === null) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
  });
  const found = await until(() => /rendezvous ws:\S+/.test(s.err()) || s.child.exitCode !== null, 30_000);
  const url = /rendezvous (ws:\S+)/.exec(s.err())?.[1];
  if (!found || url === undefined) throw new Error(`nat-server gave no rendezvous URL (exit ${s.child.exitCode}): ${s.err()}`);
  return url;
}

interface Upgraded {
  readonly socket: Socket;
  /** The first frame the server sends once upgraded: a close frame's code, 'message' (a registration challenge) or 'gone' (closed without a frame). */
  readonly first: Promise<number | 'message' | 'gone'>;
}

/** A WebSocket upgrade from `localAddress`; resolves once the server switched protocols. */
function upgrade(url: string, localAddress: string): Promise<Upgraded> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), localAddress }, () => {
      const key = randomBytes(16).toString('base64');
      socket.write(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    cleanups.push(() => socket.destroy());
    let buffered = Buffer.alloc(0);
    let upgraded = false;
    let onFrame: (first: number | 'message' | 'gone') => void = () => undefined;
    const first = new Promise<number | 'message' | 'gone'>((r) => (onFrame = r));
    socket.on('data', (c: Buffer) => {
      buffered = Buffer.concat([buffered, c]);
      if (!upgraded) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101 ')) return reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
        upgraded = true;
        buffered = buffered.subarray(end + 4);
        resolve({ socket, first });
      }
      if (buffered.length >= 4) onFrame(buffered[0] === 0x88 ? buffered.readUInt16BE(2) : 'message');
    });
    socket.once('error', reject);
    socket.once('close', () => (upgraded ? onFrame('gone') : reject(new Error('closed before the upgrade'))));
  });
}

/** Three WebSockets kept (each sent its registration challenge), the fourth closed 1013; once one of the three leaves, another is kept. */
async function capsAtThree(url: string): Promise<void> {
  const kept = [await upgrade(url, '127.0.31.1'), await upgrade(url, '127.0.31.2'), await upgrade(url, '127.0.31.3')];
  for (const k of kept) expect(await k.first).toBe('message');
  const fourth = await upgrade(url, '127.0.31.4');
  expect(await fourth.first).toBe(1013);
  kept[0]!.socket.destroy();
  // the server frees the place when it sees the close: retry (bounded) until a new one is kept
  const deadline = Date.now() + 15_000;
  for (;;) {
    const next = await upgrade(url, '127.0.31.5');
    const first = await next.first;
    if (first === 'message') break;
    expect(first).toBe(1013);
    if (Date.now() > deadline) throw new Error('the cap stayed full after a connection left');
    next.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
  }
  // the cap closed none of the kept ones
  for (const k of kept.slice(1)) expect(k.socket.destroyed).toBe(false);
}

describe('the rendezvous connection cap (--rendezvous-max-connections, rendezvousMaxConnections)', () => {
  it('from the flag: the fourth WebSocket is closed 1013, a place freed is taken again', { timeout: 60_000 }, async () => {
    await capsAtThree(await rendezvous(['--rendezvous-max-connections', '3']));
  });

  it('from the config file, the same', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nat-rv-cap-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'server.json');
    writeFileSync(file, JSON.stringify({ rendezvousMaxConnections: 3 }));
    await capsAtThree(await rendezvous(['--config', file]));
  });

  it('refuses a cap below 1, naming the flag', { timeout: 30_000 }, async () => {
    const s = start([...BASE, '--rendezvous-max-connections', '0']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toMatch(/--rendezvous-max-connections: expected a whole number of at least 1/);
  });
});
