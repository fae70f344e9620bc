/**
 * `nat expose TARGET --proxy-protocol` without --public: each connection a peer opens over the
 * peer link reaches TARGET starting with a PROXY protocol v2 header whose source is the peer's
 * end of the link's path (the address the exposing side sees the peer at), then the peer's bytes.
 * Loopback, in-process, with our rendezvous service.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProxyHeader, formatTransportAddress } from '@nat/protocol';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from './helpers.js';

let rv: RendezvousServer;
let dir: string;
let target: Server;
let targetPort: number;
/** What each connection to the target delivered, once its sender half-closed. */
const received: Promise<Buffer>[] = [];
const { start, stopAll } = cliRunner();

beforeAll(async () => {
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
  dir = await mkdtemp(join(tmpdir(), 'nat-proxy-link-'));
  target = createServer({ allowHalfOpen: true }, (s: Socket) => {
    s.on('error', () => {});
    received.push(
      new Promise((resolve) => {
        const chunks: Buffer[] = [];
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('end', () => {
          resolve(Buffer.concat(chunks));
          s.end('bye');
        });
      }),
    );
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  targetPort = (target.address() as { port: number }).port;
});

afterAll(async () => {
  await stopAll();
  target?.close();
  await rv?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('nat expose --proxy-protocol over peer links', () => {
  it("TARGET gets a PROXY v2 header naming the peer link's remote address, then the bytes", async () => {
    const expose = start([
      'expose',
      `127.0.0.1:${targetPort}`,
      '--name',
      'proxied',
      '--allow-any',
      '--proxy-protocol',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'expose.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    await expose.waitFor((l) => l.event === 'ready');
    const conn = start([
      'connect',
      'proxied',
      '--listen',
      '127.0.0.1:0',
      '--rendezvous',
      rv.url,
      '--identity',
      join(dir, 'connect.pem'),
      '--host-address',
      '127.0.0.1',
      '--json',
    ]);
    const listening = await conn.waitFor((l) => l.event === 'listening');
    const port = Number(String(listening.listen).split(':')[1]);
    const reply = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => s.end('hello over the link'));
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => resolve(Buffer.concat(chunks).toString()));
      s.on('error', reject);
    });
    expect(reply).toBe('bye');
    expect(received).toHaveLength(1);
    const bytes = await received[0]!;
    const decoded = decodeProxyHeader(bytes);
    expect(decoded.kind).toBe('header');
    if (decoded.kind !== 'header') return;
    expect(decoded.header).toMatchObject({ version: 2, command: 'proxy', transport: 'tcp' });
    // The source is the connecting peer's end of the path as the exposing side saw it.
    const path = await expose.waitFor((l) => l.event === 'path');
    const remote = (path.remoteCandidate as { address: string }).address;
    const local = (path.localCandidate as { address: string }).address;
    expect(formatTransportAddress(decoded.header.source!)).toBe(remote);
    expect(formatTransportAddress(decoded.header.destination!)).toBe(local);
    expect(Buffer.from(decoded.rest).toString()).toBe('hello over the link');
  }, 60_000);
});
