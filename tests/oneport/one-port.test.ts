/**
 * One TLS port (issue 17 item 5), on loopback: nat-server's --tls-port carries STUN/TURN over
 * TLS and the rendezvous (wss:) together, told apart by ALPN ("stun.turn", "http/1.1") or by
 * the first bytes; the rendezvous hands out a `turns:` URI on that same port, and TURN over TLS
 * allocates there with the credentials it handed out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { type AddressInfo, connect as netConnect, createServer as createNetServer } from 'node:net';
import { RendezvousClient, TurnClient, exposePublic, generateIdentity, stunBinding } from '@nat/client';
import { Attr, StunClass, StunMethod, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { loadTlsCredentials } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, loopbackNet, startServer, writeCert } from './helpers.js';

const net = loopbackNet();
const host = `${net}1`;
const dir = mkdtempSync(join(tmpdir(), 'nat-oneport-'));
let server: RunningServer;
let ca = '';
let tlsPort = 0;
let wssUrl = '';

beforeAll(async () => {
  const cert = await writeCert(dir, [host]);
  ca = cert.certPem;
  const args = ['--listen', host, '--port', '0', '--no-alt-port', '--tls-port', '0', '--tls-cert', cert.cert, '--tls-key', cert.key];
  const turn = ['--realm', 'one.test', '--auth-secret', 'one-port-secret', '--allow-peer', '127.0.0.0/8', '--rendezvous-port', '0'];
  const expose = ['--user', 'alice:alice-pw', '--expose-ports', '20000-20009'];
  server = await startServer([...args, ...turn, ...expose], /rendezvous (wss:\/\/\S+) \(on the TLS port/);
  wssUrl = (await server.line(/rendezvous (wss:\/\/\S+) \(on the TLS port/))[1]!;
  tlsPort = Number((await server.line(/listening tls {1,2}\S+:(\d+) \(PP\)/))[1]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens TLS to the port with `alpn`, writes `bytes`, and collects what comes back until the server closes or `ms` pass. */
function exchange(alpn: string[] | undefined, bytes: Uint8Array | string, ms = 5000): Promise<{ alpn: string | false; got: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host, port: tlsPort, localAddress: `${net}9` });
    const s = tlsConnect({ socket: raw, host, ca, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => s.write(bytes));
    const chunks: Buffer[] = [];
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      resolve({ alpn: s.alpnProtocol ?? false, got: Buffer.concat(chunks), closed });
      s.destroy();
    };
    const timer = setTimeout(() => done(false), ms);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (typeof bytes !== 'string' && chunks.reduce((n, b) => n + b.length, 0) >= 20) done(false);
    });
    s.on('close', () => done(true));
    s.on('error', (e: Error) => (chunks.length === 0 ? reject(e) : undefined));
  });
}

const binding = () => encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, attributes: [] });

describe('one TLS port: STUN/TURN and the rendezvous together', () => {
  it('a STUN Binding over TLS without ALPN (told by its first bytes) learns the client address', { timeout: 30_000 }, async () => {
    const r = await stunBinding(`${host}:${tlsPort}`, { transport: 'tls', localAddress: `${net}7`, tls: { ca }, signal: AbortSignal.timeout(10_000) });
    expect(r.mappedAddress.address).toBe(`${net}7`);
  });

  it('ALPN "stun.turn" and "stun.nat-discovery" (RFC 7443) go to STUN', { timeout: 30_000 }, async () => {
    for (const alpn of ['stun.turn', 'stun.nat-discovery']) {
      const r = await exchange([alpn], binding());
      expect(r.alpn).toBe(alpn);
      const m = decodeStunMessage(r.got);
      expect(m.class).toBe(StunClass.SuccessResponse);
      expect(m.get(Attr.XorMappedAddress)?.address).toBe(`${net}9`);
    }
  });

  it('the TURN client offers ALPN "stun.turn" over TLS', { timeout: 30_000 }, async () => {
    const offered: (string | false | null)[] = [];
    const creds = await loadTlsCredentials({ selfSigned: true, altIps: [`${net}20`] });
    const probe = createTlsServer({ cert: creds.cert, key: creds.key, ALPNProtocols: ['stun.turn', 'other'] }, (s) => {
      offered.push(s.alpnProtocol);
      s.destroy();
    });
    await new Promise<void>((r) => probe.listen(0, `${net}20`, r));
    try {
      const server = `${net}20:${(probe.address() as AddressInfo).port}`;
      const init = { server, transport: 'tls' as const, username: 'u', password: 'p', tls: { ca: String(creds.cert) }, signal: AbortSignal.timeout(5000) };
      await expect(TurnClient.connect(init)).rejects.toThrow();
      expect(offered).toEqual(['stun.turn']);
    } finally {
      probe.close();
    }
  });

  it('ALPN "http/1.1" goes to the rendezvous HTTP server (426 for a plain GET)', { timeout: 30_000 }, async () => {
    const r = await exchange(['http/1.1'], `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(r.alpn).toBe('http/1.1');
    expect(r.got.toString('latin1')).toMatch(/^HTTP\/1\.1 426 /);
  });

  it('neither STUN nor HTTP: closed without an answer', { timeout: 30_000 }, async () => {
    const r = await exchange(undefined, 'hello, is this the server?\r\n');
    expect(r.closed).toBe(true);
    expect(r.got.length).toBe(0);
  });

  it('wss: on the TLS port registers; the turns: URI handed out allocates over TLS on the same port', { timeout: 60_000 }, async () => {
    expect(wssUrl).toBe(`wss://${host}:${tlsPort}/`);
    const peer = await RendezvousClient.connect({ url: wssUrl, identity: generateIdentity(), tls: { ca }, signal: AbortSignal.timeout(10_000) });
    try {
      const turns = peer.iceServers.find((s) => [s.urls].flat().includes(`turns:${host}:${tlsPort}?transport=tcp`));
      expect(turns, JSON.stringify(peer.iceServers)).toBeDefined();
      const turn = await TurnClient.connect({
        server: `${host}:${tlsPort}`,
        transport: 'tls',
        username: turns!.username!,
        password: turns!.credential!,
        tls: { ca },
        signal: AbortSignal.timeout(10_000),
      });
      try {
        expect(turn.relayedAddress.address).toBe(host);
      } finally {
        await turn.close();
      }
    } finally {
      await peer.close();
    }
  });

  it('the expose control connection on the TLS port: a public port opens and reaches the local service', { timeout: 60_000 }, async () => {
    const echo = createNetServer((c) => c.pipe(c));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const target = { host: '127.0.0.1', port: (echo.address() as AddressInfo).port };
    const t = exposePublic({ url: wssUrl, credentials: { username: 'alice', password: 'alice-pw' }, tls: { ca }, target });
    try {
      const a = await t.ready;
      expect(a.address).toBe(`${host}:${a.port}`);
      const back = await new Promise<string>((resolve, reject) => {
        const c = netConnect({ host, port: a.port }, () => c.end('through the public port'));
        let got = '';
        c.on('data', (d: Buffer) => (got += d.toString()));
        c.on('close', () => resolve(got));
        c.on('error', reject);
      });
      expect(back).toBe('through the public port');
    } finally {
      await t.close();
      echo.close();
    }
  });
});
