// Issue 14 finding 2: over TCP, answers were written without backpressure and reading never
// paused: a client that sends requests and reads nothing grew the server by hundreds of MB in
// seconds. The nat-server binary runs as a child process and its RSS is read from /proc.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { StunClass, StunMethod, StunStreamFramer, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { resolveConfig, toStunServerInit } from '../src/config.js';
import { start, until } from './helpers.js';

const rssBytes = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
const binding = (): Uint8Array => encodeStunMessage({ class: StunClass.Request, method: StunMethod.Binding, attributes: [] });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function connect(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/** One UDP Binding round trip from `localAddress`; true when answered within 2 s. */
async function udpServed(port: number, localAddress: string): Promise<boolean> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, localAddress, () => r()));
  try {
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      s.once('message', (m) => {
        clearTimeout(t);
        resolve(decodeStunMessage(new Uint8Array(m)).class === StunClass.SuccessResponse);
      });
      s.send(binding(), port, '127.0.0.1');
    });
  } finally {
    s.close();
  }
}

/** One TCP Binding round trip on a fresh connection; true when answered within 3 s. */
async function tcpServed(port: number, localAddress: string): Promise<boolean> {
  const s = await connect(port, localAddress);
  try {
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 3000);
      const framer = new StunStreamFramer();
      s.on('data', (d: Buffer) => {
        framer.push(new Uint8Array(d));
        if (framer.next()) {
          clearTimeout(t);
          resolve(true);
        }
      });
      s.write(binding());
    });
  } finally {
    s.destroy();
  }
}

describe('nat-server over TCP', () => {
  it('finding 2: a TCP client that reads nothing does not grow the server', async () => {
    // No per-source rate limit (--rate-limit 0): every Binding request gets its answer, so only
    // backpressure can bound what the server queues for a client that does not read.
    const s = start([
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--no-alt-port',
      '--rate-limit',
      '0',
      '--realm',
      'flood.test',
      '--user',
      'u:p',
      '--log-level',
      'warn',
    ]);
    const flooders: Socket[] = [];
    try {
      expect(await until(() => /listening tcp 127\.0\.0\.1:\d+/.test(s.err()))).toBe(true);
      const tcpPort = Number(/listening tcp 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      const udpPort = Number(/listening udp 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      const pid = s.child.pid!;
      expect(await udpServed(udpPort, '127.0.6.9')).toBe(true);
      await sleep(300);
      const before = rssBytes(pid);

      // Four connections send requests as fast as the server takes them and never read.
      const batch = Buffer.concat(Array.from({ length: 2000 }, binding));
      for (let i = 0; i < 4; i++) {
        const f = await connect(tcpPort, `127.0.6.${i + 1}`);
        f.pause();
        f.on('error', () => {});
        flooders.push(f);
      }
      let maxRss = before;
      let sent = 0;
      let served = 0;
      let probes = 0;
      const end = Date.now() + 6000;
      let nextProbe = Date.now() + 500;
      while (Date.now() < end) {
        for (const f of flooders) {
          if (!f.destroyed && f.writableLength < 1 << 20) {
            f.write(batch);
            sent += batch.length;
          }
        }
        maxRss = Math.max(maxRss, rssBytes(pid));
        if (Date.now() >= nextProbe) {
          probes++;
          if (await udpServed(udpPort, '127.0.6.9')) served++;
          nextProbe = Date.now() + 500;
        }
        await sleep(5);
      }
      const growth = maxRss - before;
      expect(growth, `server RSS grew ${(growth / 1e6).toFixed(1)} MB (${(sent / 1e6).toFixed(1)} MB of requests sent)`).toBeLessThan(50e6);
      // Another client is served meanwhile, over UDP and over TCP.
      expect(probes).toBeGreaterThan(3);
      expect(served).toBe(probes);
      expect(await tcpServed(tcpPort, '127.0.6.10')).toBe(true);
      expect(s.child.exitCode).toBe(null);
    } finally {
      for (const f of flooders) f.destroy();
      s.child.kill('SIGTERM');
      await s.exited;
    }
  }, 60_000);

  it('--max-connections-per-source and --tls-handshake-timeout govern the TCP and TLS listeners', async () => {
    const s = start([
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--no-alt-port',
      '--tls-port',
      '0',
      '--max-connections-per-source',
      '3',
      '--tls-handshake-timeout',
      '1',
      '--log-level',
      'warn',
    ]);
    const open: Socket[] = [];
    try {
      expect(await until(() => /listening tls 127\.0\.0\.1:\d+/.test(s.err()))).toBe(true);
      const tcpPort = Number(/listening tcp 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      const tlsPort = Number(/listening tls 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      let closed = 0;
      for (let i = 0; i < 4; i++) {
        const c = await connect(tcpPort, '127.0.6.20');
        c.on('error', () => {});
        c.once('close', () => closed++);
        open.push(c);
      }
      // The fourth connection from the same source is over its share: closed at once.
      expect(await until(() => closed === 1, 5000)).toBe(true);
      expect(await tcpServed(tcpPort, '127.0.6.21')).toBe(true);
      // A TLS connection that never starts its handshake is closed after about a second.
      const silent = await connect(tlsPort, '127.0.6.22');
      silent.on('error', () => {});
      open.push(silent);
      const t0 = Date.now();
      await new Promise((r) => silent.once('close', r));
      expect(Date.now() - t0).toBeGreaterThan(700);
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(closed).toBe(1);
    } finally {
      for (const c of open) c.destroy();
      s.child.kill('SIGTERM');
      await s.exited;
    }
  }, 30_000);

  it('config keys maxConnections, maxConnectionsPerSource, idleTimeout, tlsHandshakeTimeout reach the listeners (seconds to ms)', () => {
    const c = resolveConfig({ listen: '127.0.0.1', maxConnections: 500, idleTimeout: 2.5 }, { maxConnectionsPerSource: 7, tlsHandshakeTimeout: 4 }, 'test');
    expect(toStunServerInit(c).streams).toEqual({ maxConnections: 500, maxConnectionsPerSource: 7, idleTimeoutMs: 2500, handshakeTimeoutMs: 4000 });
    expect(toStunServerInit(resolveConfig({ listen: '127.0.0.1' }, {}, 'test')).streams).toEqual({
      maxConnections: 10_000,
      maxConnectionsPerSource: 256,
      idleTimeoutMs: 30_000,
      handshakeTimeoutMs: 10_000,
    });
  });
});
