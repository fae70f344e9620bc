/**
 * Starting independent STUN servers for interop tests: coturn's `turnserver` (RFC 5780 with two
 * listening IPs) and Vovida's classic `stund` (Debian package stun-server), both on 127.0.0.1
 * with 127.0.0.2 as the alternate address, on random free high ports (retried on collision).
 * Each start returns the server or, when it cannot run here, the reason to skip.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TransportAddress } from '@nat/protocol';
import { stunBinding } from '../../src/index.js';

export interface ExternalServer {
  readonly name: string;
  /** 127.0.0.1:port */
  readonly primary: TransportAddress;
  /** The second port (127.0.0.1 and 127.0.0.2 listen on both). */
  readonly altPort: number;
  /** What the process printed (the last 64 KiB). */
  output(): string;
  stop(): Promise<void>;
}

/** The full path of an executable on PATH (plus the sbin directories), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function udpFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, address, () => s.close(() => resolve(true)));
  });
}

function tcpFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, address, () => s.close(() => resolve(true)));
  });
}

/** A random port P with P and P+1 free for UDP and TCP on both loopback addresses. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 30000 + 2 * Math.floor(Math.random() * 14000);
    const checks = await Promise.all(['127.0.0.1', '127.0.0.2'].flatMap((a) => [udpFree(a, p), udpFree(a, p + 1), tcpFree(a, p), tcpFree(a, p + 1)]));
    if (checks.every(Boolean)) return p;
  }
  throw new Error('no free port pair found');
}

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Waits until the server answers a CHANGE-REQUEST for IP and port (all four sockets up). */
async function waitReady(child: ChildProcess, primary: TransportAddress, deadlineMs: number): Promise<boolean> {
  const until = performance.now() + deadlineMs;
  while (performance.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      const r = await stunBinding(primary, { localAddress: '127.0.0.1', changeIp: true, changePort: true, rto: 100, rc: 2, rm: 2 });
      if (r.sourceAddress.address === '127.0.0.2' && r.sourceAddress.port === primary.port + 1) return true;
    } catch {
      // not yet
    }
  }
  return false;
}

async function startServer(name: string, binary: string, args: (port: number, dir: string) => string[]): Promise<ExternalServer | string> {
  let lastOutput = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePortPair();
    const dir = mkdtempSync(join(tmpdir(), `nat-client-${name}-`));
    const child = spawn(binary, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (b: Buffer): void => {
      output = (output + b.toString('utf8')).slice(-65536);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.on('error', (e) => collect(Buffer.from(String(e))));
    const primary: TransportAddress = { family: 'IPv4', address: '127.0.0.1', port };
    const stop = async (): Promise<void> => {
      await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    };
    if (await waitReady(child, primary, 5000)) {
      return { name, primary, altPort: port + 1, output: () => output, stop };
    }
    lastOutput = output;
    await stop();
  }
  return `${name} did not come up on loopback: ${lastOutput.slice(-500)}`;
}

/** coturn as an RFC 5780 STUN server on 127.0.0.1 and 127.0.0.2, ports P and P+1. */
export async function startCoturn(): Promise<ExternalServer | string> {
  const bin = findBinary('turnserver');
  if (!bin) return 'coturn is not installed (Debian: apt-get install coturn)';
  return startServer('coturn', bin, (port, dir) => [
    '-n', // no configuration file
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--stun-only',
    '-L',
    '127.0.0.1',
    '-L',
    '127.0.0.2',
    '-p',
    String(port),
    '--alt-listening-port',
    String(port + 1),
    '-m',
    '1',
    '--log-file',
    'stdout',
    '--simple-log',
    '--pidfile',
    join(dir, 'turnserver.pid'),
    '--userdb',
    join(dir, 'turndb'),
  ]);
}

/** Vovida stund (Debian stun-server), a classic RFC 3489 server, on 127.0.0.1 and 127.0.0.2. */
export async function startStund(): Promise<ExternalServer | string> {
  const bin = findBinary('stund');
  if (!bin) return 'stund is not installed (Debian: apt-get install stun-server)';
  return startServer('stund', bin, (port) => ['-h', '127.0.0.1', '-a', '127.0.0.2', '-p', String(port), '-o', String(port + 1)]);
}
