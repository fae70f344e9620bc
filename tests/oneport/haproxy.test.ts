/**
 * PROXY protocol v2 from a real load balancer (issue 17 item 5): Debian's haproxy, in TCP mode
 * with `send-proxy-v2`, passes TLS through to nat-server's TLS port from its own source address
 * (`source`). nat-server (`--proxy-protocol-from` that address) must see the client behind it:
 * in XOR-MAPPED-ADDRESS, and in the per-source share (`--max-connections-per-source`). A
 * PROXY header from any other source is refused, and so is a connection from the balancer's
 * address that carries none.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { stunBinding } from '@nat/client';
import { Attr, StunClass, StunMethod, decodeStunMessage, encodeProxyV2Header, encodeStunMessage } from '@nat/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, freePort, loopbackNet, startServer, writeCert } from './helpers.js';

const net = loopbackNet();
const SERVER = `${net}1`;
const HAPROXY = `${net}2`;
const BALANCER_SOURCE = `${net}3`;
const dir = mkdtempSync(join(tmpdir(), 'nat-haproxy-'));
let server: RunningServer;
let haproxy: ChildProcess | undefined;
let haproxyLog = '';
let ca = '';
let tlsPort = 0;
let tcpPort = 0;
let frontPort = 0;
const open: TLSSocket[] = [];

/** Resolves once a plain TCP connection to host:port succeeds (haproxy is listening). */
async function tcpReady(host: string, port: number, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (haproxy?.exitCode !== null || Date.now() > deadline) throw new Error(`haproxy is not listening on ${host}:${port}:\n${haproxyLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  const cert = await writeCert(dir, [SERVER, HAPROXY]);
  ca = cert.certPem;
  const args = ['--listen', SERVER, '--port', '0', '--no-alt-port', '--tls-port', '0', '--tls-cert', cert.cert, '--tls-key', cert.key];
  const governance = ['--proxy-protocol-from', BALANCER_SOURCE, '--max-connections-per-source', '2', '--tls-handshake-timeout', '5'];
  const rendezvous = ['--rendezvous-port', '0', '--rendezvous-connections-per-source', '1'];
  server = await startServer([...args, ...governance, ...rendezvous], /rendezvous wss:\/\/\S+ \(on the TLS port/);
  tlsPort = Number((await server.line(/listening tls {1,2}\S+:(\d+) \(PP\)/))[1]);
  tcpPort = Number((await server.line(/listening tcp {1,2}\S+:(\d+) \(PP\)/))[1]);
  frontPort = await freePort(HAPROXY);
  const cfg = [
    'global',
    '  maxconn 64',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend fe',
    `  bind ${HAPROXY}:${frontPort}`,
    '  default_backend be',
    'backend be',
    `  server nat ${SERVER}:${tlsPort} send-proxy-v2 source ${BALANCER_SOURCE}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'haproxy.cfg'), cfg);
  // -db: foreground, no daemon; its own process, stopped in afterAll.
  haproxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.on('error', (e) => (haproxyLog += `spawn failed: ${e.message} (install haproxy: scripts/install-test-deps.sh)\n`));
  haproxy.stdout!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
  haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
  await tcpReady(HAPROXY, frontPort);
}, 60_000);

afterAll(async () => {
  for (const s of open) s.destroy();
  if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
    const exited = new Promise((r) => haproxy!.once('exit', r));
    haproxy.kill('SIGTERM');
    await exited;
  }
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const binding = () => encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, attributes: [] });

/**
 * A TLS connection (optionally after `preface` in the clear, as a balancer writes its header)
 * that sends a Binding request: resolves with its XOR-MAPPED-ADDRESS and leaves the connection
 * open, or rejects when the server closes it first.
 */
function bindOver(host: string, port: number, localAddress: string, preface?: Uint8Array): Promise<{ address: string; port: number; local: number }> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host, port, localAddress }, () => {
      if (preface) raw.write(preface);
      const s = tlsConnect({ socket: raw, ca, servername: undefined, checkServerIdentity: () => undefined }, () => s.write(binding()));
      open.push(s);
      s.once('data', (d: Buffer) => {
        const m = decodeStunMessage(d);
        const x = m.get(Attr.XorMappedAddress);
        if (m.class !== StunClass.SuccessResponse || x === undefined) return reject(new Error('no Binding success response'));
        resolve({ address: x.address, port: x.port, local: raw.localPort! });
      });
      s.once('error', (e: Error) => reject(e));
      s.once('close', () => reject(new Error('closed by the server before answering')));
    });
    raw.on('error', (e: Error) => reject(e));
  });
}

describe('PROXY protocol v2 from haproxy in front of the TLS port', () => {
  it('a STUN Binding over TLS through haproxy learns the client address, not the balancer one', { timeout: 30_000 }, async () => {
    const r = await stunBinding(`${HAPROXY}:${frontPort}`, { transport: 'tls', localAddress: `${net}4`, tls: { ca }, signal: AbortSignal.timeout(10_000) });
    expect(r.mappedAddress.address).toBe(`${net}4`);
    expect(r.mappedAddress.port).toBe(r.localAddress.port);
    expect(r.mappedAddress.address).not.toBe(BALANCER_SOURCE);
  });

  it('the per-source share counts the client behind haproxy: its third connection is refused, another client still gets in', { timeout: 60_000 }, async () => {
    const a = `${net}5`;
    for (let i = 0; i < 2; i++) expect((await bindOver(HAPROXY, frontPort, a)).address).toBe(a);
    await expect(bindOver(HAPROXY, frontPort, a)).rejects.toThrow();
    // All three came from haproxy's one address: only the PROXY header tells the clients apart.
    expect((await bindOver(HAPROXY, frontPort, `${net}6`)).address).toBe(`${net}6`);
  });

  it('a PROXY header from a source not in --proxy-protocol-from is refused; from the balancer address it is read', { timeout: 60_000 }, async () => {
    const claimed = { family: 'IPv4' as const, address: '192.0.2.77', port: 4242 };
    const header = encodeProxyV2Header('tcp', claimed, { family: 'IPv4', address: SERVER, port: tlsPort });
    await expect(bindOver(SERVER, tlsPort, `${net}7`, header)).rejects.toThrow();
    // The same bytes from the listed balancer address: the claimed client is the one answered.
    expect(await bindOver(SERVER, tlsPort, BALANCER_SOURCE, header)).toMatchObject({ address: '192.0.2.77', port: 4242 });
  });

  it('a connection from the balancer address without a PROXY header is refused, and the log says why', { timeout: 60_000 }, async () => {
    await expect(bindOver(SERVER, tlsPort, BALANCER_SOURCE)).rejects.toThrow();
    const deadline = Date.now() + 10_000;
    while (!server.stdout().includes('--proxy-protocol-from lists this source') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(server.stdout()).toMatch(/"source":"127\.\d+\.\d+\.3".*not a PROXY protocol header.*--proxy-protocol-from lists this source/);
  });

  it('the TCP listener too, with a v1 text header: the claimed client is answered', { timeout: 30_000 }, async () => {
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const c = netConnect({ host: SERVER, port: tcpPort, localAddress: BALANCER_SOURCE }, () => {
        c.write(`PROXY TCP4 192.0.2.88 ${SERVER} 5555 ${tcpPort}\r\n`);
        c.write(binding());
      });
      c.once('data', (d: Buffer) => {
        c.destroy();
        resolve(d);
      });
      c.on('error', reject);
    });
    expect(decodeStunMessage(answer).get(Attr.XorMappedAddress)).toMatchObject({ address: '192.0.2.88', port: 5555 });
  });

  it('the rendezvous on the TLS port behind haproxy holds each client behind it to its own share', { timeout: 60_000 }, async () => {
    // --rendezvous-connections-per-source 1: a second WebSocket from one client is closed 1013;
    // another client's first one is not (all three reach the server from haproxy's address).
    expect(await upgradeThroughHaproxy(`${net}8`)).toBe('open');
    expect(await upgradeThroughHaproxy(`${net}8`)).toBe('closed 1013');
    expect(await upgradeThroughHaproxy(`${net}9`)).toBe('open');
  });
});

/**
 * A WebSocket upgrade through haproxy from `localAddress`, kept open: 'open' when the server
 * switched protocols and sent nothing more within a second, 'closed CODE' when it sent a close frame.
 */
function upgradeThroughHaproxy(localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host: HAPROXY, port: frontPort, localAddress });
    const s = tlsConnect({ socket: raw, ca, checkServerIdentity: () => undefined }, () =>
      s.write(
        `GET / HTTP/1.1\r\nHost: ${HAPROXY}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
    );
    open.push(s);
    let got = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!got.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${got.toString().slice(0, 80)}`));
      const frame = got.subarray(end + 4);
      // A close frame from the server: 0x88, a payload length, then the 2-byte code.
      if (frame.length >= 4 && frame[0] === 0x88) {
        clearTimeout(timer);
        return resolve(`closed ${frame.readUInt16BE(2)}`);
      }
      timer ??= setTimeout(() => resolve('open'), 1000);
    });
    s.on('error', reject);
  });
}
