import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../dist/main.js', import.meta.url));

function start(args: string[]) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += String(c)));
  child.stderr.on('data', (c) => (err += String(c)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe('nat-server binary', () => {
  it('starts, prints what it listens on, answers, and exits 0 on SIGTERM', async () => {
    const s = start(['--listen', '127.0.0.1', '--alternate', '127.0.0.2', '--port', '0', '--alt-port', '0']);
    try {
      const deadline = Date.now() + 10_000;
      while (!/listening tcp 127\.0\.0\.2/.test(s.err()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const port = Number(/listening udp 127\.0\.0\.1:(\d+) \(PP\)/.exec(s.err())?.[1]);
      expect(port).toBeGreaterThan(0);
      // structured JSON log lines on stdout
      const lines = s
        .out()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; transport?: string });
      expect(lines.filter((l) => l.msg === 'listening').length).toBe(8);
      const sock = createSocket('udp4');
      const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
      sock.send(encodeStunMessage({ method: 1, class: 0 }), port, '127.0.0.1');
      const m = decodeStunMessage(await reply);
      expect(m.get(Attr.XorMappedAddress)?.address).toBe('127.0.0.1');
      sock.close();
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
    expect(s.out()).toMatch(/"msg":"stopped"/);
  });

  it('exits 2 with a message naming the bad key', async () => {
    const s = start(['--listen', '127.0.0.1', '--alternate', '300.1.1.1']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toMatch(/--alternate: expected an IP address or a list of up to 2 IP addresses .*, got the string "300\.1\.1\.1" \(not an IP address\)/);
  });

  it('exits 1 when the port is taken', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const s = start(['--listen', '127.0.0.1', '--port', String(sock.address().port)]);
    expect(await s.exited).toBe(1);
    expect(s.err()).toMatch(/cannot listen on UDP/);
    sock.close();
  });
});

describe('nat-server signals', () => {
  it('a SIGTERM while it is still starting (after its first line, before the rendezvous is up) stops it with exit 0', async () => {
    const s = start(['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--realm', 'rv.test', '--auth-secret', 'S3CRET', '--rendezvous-port', '0']);
    const deadline = Date.now() + 15_000;
    while (!/listening udp/.test(s.err()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    s.child.kill('SIGTERM');
    const code = await s.exited;
    expect({ code, signal: s.child.signalCode }).toEqual({ code: 0, signal: null });
  });
});

describe('nat-server --rendezvous-port', () => {
  it('serves the rendezvous service and hands out anonymous relay credentials (EXPIRY:~PEERID) to registered peers', async () => {
    const { RendezvousClient, generateIdentity, TurnClient } = await import('@nat/client');
    const s = start([
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--no-alt-port',
      '--realm',
      'rv.test',
      '--auth-secret',
      'S3CRET',
      '--allow-peer',
      '127.0.0.0/8',
      '--rendezvous-port',
      '0',
    ]);
    try {
      const deadline = Date.now() + 10_000;
      while (!/rendezvous ws:/.test(s.err()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const url = /rendezvous (ws:\/\/\S+)/.exec(s.err())![1]!;
      const client = await RendezvousClient.connect({ url, identity: generateIdentity() });
      const turn = client.iceServers.find((i) => [i.urls].flat().some((u: string) => u.startsWith('turn:')))!;
      expect(turn.username).toMatch(new RegExp(`^\\d+:~${client.id}$`));
      // with --port 0 the URLs carry the ports actually bound, per transport (never ":0")
      const port = Number(/listening udp 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      const tcpPort = Number(/listening tcp 127\.0\.0\.1:(\d+)/.exec(s.err())![1]);
      expect([turn.urls].flat().sort()).toEqual([`turn:127.0.0.1:${port}`, `turn:127.0.0.1:${tcpPort}?transport=tcp`].sort());
      // the credentials work on this server's TURN
      const relay = await TurnClient.connect({ server: `127.0.0.1:${port}`, username: turn.username!, password: turn.credential! });
      expect(relay.relayedAddress.address).toBe('127.0.0.1');
      await relay.close();
      await client.close();
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
  });
});
