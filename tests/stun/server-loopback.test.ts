/**
 * nat-server's STUN service on loopback aliases, checked with raw sockets (no client library):
 * every CHANGE-REQUEST variant must come back from the right address and port, classic RFC 3489
 * requests get classic answers, TCP and TLS work, and hostile input leaves valid requests answered.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Attr, StunClass, StunStreamFramer, attr, decodeStunMessage, encodeStunMessage, type StunMessage } from '@nat/protocol';
import { startStunServer, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: StunServer;
let client: Socket;
const replies: { msg: Buffer; from: { address: string; port: number } }[] = [];

beforeAll(async () => {
  server = await startStunServer({ listen: ['127.0.0.1'], alternate: ['127.0.0.2'], port: 0, altPort: 0, tlsPort: 0, rateLimit: { perSecond: 0 } });
  client = createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.3', () => r()));
  client.on('message', (msg, rinfo) => replies.push({ msg, from: { address: rinfo.address, port: rinfo.port } }));
});
afterAll(async () => {
  client.close();
  await server.close();
});

const ep = () => server.endpoints[0]!;
const addr = (role: 'PP' | 'PA' | 'AP' | 'AA') => ({
  address: role[0] === 'P' ? '127.0.0.1' : '127.0.0.2',
  port: role[1] === 'P' ? ep().port : ep().altPort!,
});

async function ask(
  bytes: Uint8Array,
  to: { address: string; port: number },
  timeoutMs = 1000,
): Promise<{ msg: StunMessage; from: { address: string; port: number } } | undefined> {
  const tid = Buffer.from(bytes.subarray(4, 20)).toString('hex');
  client.send(bytes, to.port, to.address);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const i = replies.findIndex((r) => r.msg.length >= 20 && r.msg.subarray(4, 20).toString('hex') === tid);
    if (i >= 0) {
      const [r] = replies.splice(i, 1);
      return { msg: decodeStunMessage(r!.msg), from: r!.from };
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return undefined;
}

const binding = (attributes: ReturnType<typeof attr>[] = []) => encodeStunMessage({ method: 1, class: StunClass.Request, attributes });

describe('nat-server STUN on 127.0.0.1 + 127.0.0.2', () => {
  it('listens on four UDP sockets, four TCP listeners and two TLS listeners', () => {
    const count = (t: string) => server.listeners.filter((l) => l.transport === t).length;
    expect([count('udp'), count('tcp'), count('tls')]).toEqual([4, 4, 2]);
  });

  for (const to of ['PP', 'PA', 'AP', 'AA'] as const) {
    for (const [changeIp, changePort] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`request to ${to} with change ip=${changeIp} port=${changePort} is answered from the right socket`, async () => {
        const r = await ask(binding([attr(Attr.ChangeRequest, { changeIp, changePort })]), addr(to));
        expect(r).toBeDefined();
        const ip = changeIp ? (to[0] === 'P' ? 'A' : 'P') : to[0];
        const port = changePort ? (to[1] === 'P' ? 'A' : 'P') : to[1];
        const expected = addr(`${ip}${port}` as 'PP');
        expect(r!.from).toEqual(expected);
        expect(r!.msg.get(Attr.ResponseOrigin)).toEqual({ family: 'IPv4', ...expected });
        expect(r!.msg.get(Attr.XorMappedAddress)).toEqual({ family: 'IPv4', address: '127.0.0.3', port: client.address().port });
      });
    }
  }

  it('sends a RESPONSE-PORT answer to the requester IP at that port', async () => {
    const other = createSocket('udp4');
    await new Promise<void>((r) => other.bind(0, '127.0.0.3', () => r()));
    const got = new Promise<Buffer>((r) => other.once('message', (m) => r(m)));
    client.send(binding([attr(Attr.ResponsePort, other.address().port)]), ep().port, '127.0.0.1');
    const m = decodeStunMessage(await got);
    expect(m.get(Attr.XorMappedAddress)?.port).toBe(client.address().port);
    other.close();
  });

  it('answers a classic RFC 3489 request with MAPPED-, SOURCE- and CHANGED-ADDRESS', async () => {
    const req = encodeStunMessage({
      method: 1,
      class: 0,
      transactionId: new Uint8Array(16).fill(0x33),
      attributes: [attr(Attr.ChangeRequest, { changeIp: false, changePort: true })],
    });
    const r = await ask(req, addr('PP'));
    expect(r!.msg.classic).toBe(true);
    expect(r!.from).toEqual(addr('PA'));
    expect(r!.msg.get(Attr.MappedAddress)).toEqual({ family: 'IPv4', address: '127.0.0.3', port: client.address().port });
    expect(r!.msg.get(Attr.SourceAddress)).toEqual({ family: 'IPv4', ...addr('PA') });
    expect(r!.msg.get(Attr.ChangedAddress)).toEqual({ family: 'IPv4', ...addr('AA') });
  });

  it('answers over TCP and TLS, several requests on one connection, split across writes', async () => {
    for (const transport of ['tcp', 'tls'] as const) {
      const listener = server.listeners.find((l) => l.transport === transport && l.role === 'PP')!;
      const socket =
        transport === 'tcp'
          ? tcpConnect({ host: '127.0.0.1', port: listener.address.port, localAddress: '127.0.0.4' })
          : tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port: listener.address.port, localAddress: '127.0.0.4' }), rejectUnauthorized: false });
      await new Promise<void>((r) => socket.once(transport === 'tcp' ? 'connect' : 'secureConnect', () => r()));
      const framer = new StunStreamFramer();
      const frames: StunMessage[] = [];
      socket.on('data', (c: Buffer) => {
        framer.push(c);
        for (let f = framer.next(); f; f = framer.next()) frames.push(decodeStunMessage(f.bytes));
      });
      const reqs = [binding(), binding(), binding()];
      const all = Buffer.concat(reqs);
      socket.write(all.subarray(0, 7));
      await new Promise((r) => setTimeout(r, 20));
      socket.write(all.subarray(7));
      const deadline = Date.now() + 2000;
      while (frames.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(frames.map((f) => Buffer.from(f.transactionId).toString('hex'))).toEqual(reqs.map((q) => Buffer.from(q.subarray(8, 20)).toString('hex')));
      expect(frames[0]!.get(Attr.XorMappedAddress)).toEqual({ family: 'IPv4', address: '127.0.0.4', port: socket.localPort });
      socket.destroy();
    }
  });

  it('keeps answering valid requests while random datagrams and garbage streams arrive', async () => {
    const before = server.stats();
    const junk = createSocket('udp4');
    await new Promise<void>((r) => junk.bind(0, '127.0.0.5', () => r()));
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const valid = binding([attr(Attr.Software, 'x')]);
    for (let i = 0; i < 3000; i++) {
      const kind = i % 3;
      let b: Uint8Array;
      if (kind === 0) b = Uint8Array.from({ length: rand() % 200 }, () => rand() & 0xff);
      else if (kind === 1) b = valid.subarray(0, rand() % valid.length);
      else {
        b = Uint8Array.from(valid);
        b[20 + (rand() % (b.length - 20))] = rand() & 0xff;
      }
      junk.send(b, addr(['PP', 'PA', 'AP', 'AA'][i % 4] as 'PP').port, addr(['PP', 'PA', 'AP', 'AA'][i % 4] as 'PP').address);
    }
    // garbage over TCP: the server must close the connection and stay up
    const tcp = tcpConnect({ host: '127.0.0.1', port: ep().port });
    await new Promise<void>((r) => tcp.once('connect', () => r()));
    const closed = new Promise<void>((r) => tcp.once('close', () => r()));
    tcp.on('error', () => {});
    tcp.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await closed;
    for (let i = 0; i < 20; i++) {
      const r = await ask(binding(), addr('PP'));
      expect(r?.msg.class).toBe(StunClass.SuccessResponse);
    }
    const after = server.stats();
    expect(after.dropped - before.dropped).toBeGreaterThan(500);
    expect(after.answered - before.answered).toBeGreaterThanOrEqual(20);
    junk.close();
  });
});
