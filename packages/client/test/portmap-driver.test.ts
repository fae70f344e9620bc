/**
 * The NAT-PMP and PCP drivers on loopback against scripted responders that lose, garble and
 * answer requests: retransmission timing, matching of answers to requests (PCP nonce), version
 * fallback, epoch resets, and /proc/net/route parsing.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodePcpResponse } from '@nat/protocol';
import { NatPmpClient, PcpClient, PortMapError, defaultGateways, natPmpSchedule, pcpSchedule } from '../src/index.js';

interface Responder {
  port: number;
  seen: { at: number; bytes: Buffer }[];
  close(): void;
}

/** A UDP responder on 127.0.0.1 whose `answer` decides, per request, what to send back. */
async function responder(answer: (req: Buffer, n: number, from: RemoteInfo, s: Socket) => Buffer[] | undefined): Promise<Responder> {
  const s = createSocket('udp4');
  const seen: { at: number; bytes: Buffer }[] = [];
  const t0 = performance.now();
  s.on('message', (m, r) => {
    seen.push({ at: performance.now() - t0, bytes: m });
    for (const out of answer(m, seen.length, r, s) ?? []) s.send(out, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, seen, close: () => s.close() };
}

const open: { close(): void }[] = [];
afterEach(() => {
  for (const x of open.splice(0)) x.close();
});

const natPmpMapAnswer = (req: Buffer, epoch: number, externalPort = req.readUInt16BE(6)): Buffer => {
  const b = Buffer.alloc(16);
  b[1] = 128 + req[1]!;
  b.writeUInt32BE(epoch, 4);
  b.writeUInt16BE(req.readUInt16BE(4), 8);
  b.writeUInt16BE(externalPort, 10);
  b.writeUInt32BE(req.readUInt32BE(8), 12);
  return b;
};
const natPmpExternal = (epoch: number): Buffer => Buffer.from([0, 128, 0, 0, 0, 0, 0, epoch, 203, 0, 113, 254]);

describe('NAT-PMP driver', () => {
  it('retransmits at 0, 250, 750 ms (RFC 6886 3.1) until answered, ignoring garbage', async () => {
    const r = await responder((req, n) => {
      if (n < 3) return n === 2 ? [Buffer.from('garbage')] : undefined;
      return req[1] === 0 ? [natPmpExternal(9)] : [natPmpMapAnswer(req, 9)];
    });
    open.push(r);
    const c = new NatPmpClient({ gateway: '127.0.0.1', port: r.port });
    open.push(c);
    expect(await c.externalAddress()).toBe('203.0.113.254');
    expect(r.seen.map((x) => x.bytes.toString('hex'))).toEqual(['0000', '0000', '0000']);
    const gaps = r.seen.slice(1).map((x, i) => x.at - r.seen[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(240);
    expect(gaps[0]).toBeLessThan(450);
    expect(gaps[1]).toBeGreaterThanOrEqual(490);
  });

  it('gives up with TIMEOUT after its schedule, and maps with the port the gateway chose', async () => {
    const silent = await responder(() => undefined);
    open.push(silent);
    const c = new NatPmpClient({ gateway: '127.0.0.1', port: silent.port, schedule: natPmpSchedule(2) });
    open.push(c);
    await expect(c.externalAddress()).rejects.toMatchObject({ name: 'PortMapError', code: 'TIMEOUT' });
    expect(silent.seen).toHaveLength(2);

    const r = await responder((req) => (req[1] === 0 ? [natPmpExternal(9)] : [natPmpMapAnswer(req, 9, 40000)]));
    open.push(r);
    const c2 = new NatPmpClient({ gateway: '127.0.0.1', port: r.port });
    open.push(c2);
    const g = await c2.map({ protocol: 'tcp', internalPort: 15441, lifetime: 600 });
    expect(g).toMatchObject({
      method: 'natpmp',
      protocol: 'tcp',
      internalAddress: '127.0.0.1',
      internalPort: 15441,
      externalPort: 40000,
      externalAddress: '203.0.113.254',
      lifetime: 600,
      epochReset: false,
    });
    await expect(c2.map({ protocol: 'tcp', internalPort: 15441, lifetime: 600, exactPort: true })).rejects.toMatchObject({ code: 'PORT_TAKEN' });
  });

  it('reports an epoch that went backwards as a reset; result codes as REFUSED', async () => {
    let epoch = 1000;
    const r = await responder((req) => {
      if (req.length === 12 && req.readUInt16BE(4) === 9) return [Buffer.from([0, 129, 0, 2, 0, 0, 0, 5])];
      return req[1] === 0 ? [natPmpExternal(9)] : [natPmpMapAnswer(req, epoch)];
    });
    open.push(r);
    const c = new NatPmpClient({ gateway: '127.0.0.1', port: r.port });
    open.push(c);
    const first = await c.map({ protocol: 'udp', internalPort: 5000, lifetime: 60 });
    epoch = 3;
    const second = await c.map({ protocol: 'udp', internalPort: 5000, lifetime: 60 }, first);
    expect(second.epochReset).toBe(true);
    const err = await c.map({ protocol: 'udp', internalPort: 9, lifetime: 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortMapError);
    expect(err).toMatchObject({ code: 'REFUSED', resultCode: 2 });
  });
});

describe('PCP driver', () => {
  it('matches answers by nonce (a stale one is ignored) and deletes with the same nonce', async () => {
    const r = await responder((req) => {
      const nonce = req.subarray(24, 36);
      const lifetime = req.readUInt32BE(4);
      const answer = (n: Uint8Array): Buffer =>
        Buffer.from(
          encodePcpResponse({
            opcode: 'map',
            resultCode: 0,
            lifetime,
            epoch: 77,
            nonce: n,
            protocol: 'udp',
            internalPort: req.readUInt16BE(40),
            assignedExternalPort: lifetime ? 7001 : 0,
            assignedExternalAddress: '203.0.113.254',
          }),
        );
      return [answer(new Uint8Array(12).fill(9)), answer(nonce)];
    });
    open.push(r);
    const c = new PcpClient({ gateway: '127.0.0.1', port: r.port, schedule: pcpSchedule(3, 200) });
    open.push(c);
    const g = await c.map({ protocol: 'udp', internalPort: 7000, lifetime: 120 });
    expect(g).toMatchObject({ method: 'pcp', externalAddress: '203.0.113.254', externalPort: 7001, lifetime: 120, internalAddress: '127.0.0.1' });
    await c.unmap(g);
    expect(r.seen.at(-1)!.bytes.subarray(24, 36).toString('hex')).toBe(g.nonce);
    expect(r.seen.at(-1)!.bytes.readUInt32BE(4)).toBe(0);
  });

  it('a NAT-PMP-only server (version 0 answer) is UNSUPPORTED at once; result codes are REFUSED', async () => {
    const old = await responder(() => [Buffer.from([0, 129, 0, 1, 0, 0, 0, 5])]);
    open.push(old);
    const c = new PcpClient({ gateway: '127.0.0.1', port: old.port, schedule: pcpSchedule(3, 200) });
    open.push(c);
    await expect(c.map({ protocol: 'udp', internalPort: 7000, lifetime: 60 })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(old.seen).toHaveLength(1);
    const refusing = await responder((req) => [
      Buffer.from(
        encodePcpResponse({ opcode: 'map', resultCode: 2, lifetime: 30, epoch: 1, nonce: req.subarray(24, 36), protocol: 'udp', internalPort: 7000 }),
      ),
    ]);
    open.push(refusing);
    const c2 = new PcpClient({ gateway: '127.0.0.1', port: refusing.port, schedule: pcpSchedule(3, 200) });
    open.push(c2);
    await expect(c2.map({ protocol: 'udp', internalPort: 7000, lifetime: 60 })).rejects.toMatchObject({ code: 'REFUSED', resultCode: 2 });
  });
});

describe('default gateway', () => {
  it('reads IPv4 default routes from /proc/net/route, lowest metric first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'route-'));
    const file = join(dir, 'route');
    writeFileSync(
      file,
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
        'eth1\t00000000\t0164A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n' +
        'eth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n' +
        'eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n',
    );
    expect(await defaultGateways(file)).toEqual(['198.18.0.1', '192.168.100.1']);
    expect(await defaultGateways(join(dir, 'missing'))).toEqual([]);
  });
});
