/**
 * Times the UDP 'message' handler of startStunServer (the whole per-datagram JS path: first-byte
 * demultiplexing, decoding, the responder or the TURN core, the send call) without the kernel:
 * the server is started on loopback, its sockets' `send` is replaced by a counter, and the
 * handler is called directly. Works on any build of the server (the handler is found by
 * wrapping node:dgram's Socket#on), so the same script compares two checkouts on a busy machine
 * where bench:stun and bench:turn cannot (their "other cpu" column).
 *
 * Cases: a Binding request (STUN only; and with TURN on), a ChannelData packet client -> peer
 * on a bound channel (TURN), a datagram that is not STUN (dropped).
 *
 * Usage: pnpm build && tsx bench/stun/handler.ts [--iterations N] [--rounds R]
 */
import { type RemoteInfo, type Socket, createSocket } from 'node:dgram';
import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeChannelData, encodeStunMessage, longTermKey } from '../../packages/protocol/dist/index.js';
import { startStunServer, staticUsers } from '../../packages/server/dist/index.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--iterations', 1_000_000);
const ROUNDS = arg('--rounds', 5);

type Handler = (msg: Buffer, rinfo: RemoteInfo) => void;
const handlers: { socket: Socket; handler: Handler }[] = [];
const sockets: Socket[] = [];
const on = createSocket('udp4').constructor.prototype.on as (this: Socket, event: string, fn: (...a: unknown[]) => void) => Socket;
(createSocket('udp4').constructor.prototype as { on: typeof on }).on = function (this: Socket, event, fn) {
  if (event === 'message') handlers.push({ socket: this, handler: fn as Handler });
  if (!sockets.includes(this)) sockets.push(this);
  return on.call(this, event, fn);
};

let sent = 0;
/** From here on, every server socket's send only counts. */
function stubSends(): void {
  for (const s of sockets) (s as unknown as { send: () => void }).send = () => void sent++;
}

function time(name: string, handler: Handler, msg: Buffer, rinfo: RemoteInfo): void {
  for (let k = 0; k < N / 10; k++) handler(msg, rinfo); // warm up the JIT
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < N; k++) handler(msg, rinfo);
    runs.push(Number(process.hrtime.bigint() - t0) / N);
  }
  runs.sort((a, b) => a - b);
  const median = runs[Math.floor(runs.length / 2)]!;
  process.stdout.write(`${name.padEnd(44)} ${median.toFixed(0).padStart(6)} ns/datagram (min ${runs[0]!.toFixed(0)}, ${ROUNDS} rounds of ${N})\n`);
}

const client: RemoteInfo = { address: '127.0.9.1', family: 'IPv4', port: 40000, size: 20 };
const binding = Buffer.from(encodeStunMessage({ class: StunClass.Request, method: StunMethod.Binding, attributes: [] }));

// STUN only.
{
  const server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: false, rateLimit: { perSecond: 0 } });
  stubSends();
  const h = handlers.at(-1)!.handler;
  time('STUN only: Binding request', h, binding, client);
  time('STUN only: not STUN (first byte 0x16, dropped)', h, Buffer.from([0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), client);
  await server.close();
}

// TURN: a real allocation and channel over loopback first, then the handler alone.
{
  handlers.length = 0;
  sockets.length = 0;
  const realm = 'bench';
  const server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    tcp: false,
    rateLimit: { perSecond: 0 },
    turn: { realm, auth: staticUsers({ u: 'p' }), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 1e9 },
  });
  const port = server.listeners[0]!.address.port;
  const h = handlers.at(-1)!.handler;
  const c = createSocket('udp4');
  await new Promise<void>((r) => c.bind({ address: client.address, port: 0 }, () => r()));
  const ask = (bytes: Uint8Array) =>
    new Promise<ReturnType<typeof decodeStunMessage>>((resolve) => {
      c.once('message', (m) => resolve(decodeStunMessage(m)));
      c.send(bytes, port, '127.0.0.1');
    });
  const key = longTermKey({ username: 'u', realm, password: 'p' });
  const nonce = (await ask(encodeStunMessage({ class: StunClass.Request, method: StunMethod.Allocate, attributes: [attr(Attr.RequestedTransport, 17)] }))).get(
    Attr.Nonce,
  )!;
  const auth = [attr(Attr.Username, 'u'), attr(Attr.Realm, realm), attr(Attr.Nonce, nonce)];
  const req = (method: number, attrs: ReturnType<typeof attr>[]) =>
    encodeStunMessage({ class: StunClass.Request, method, attributes: [...attrs, ...auth] }, { integrity: key });
  const allocated = await ask(req(StunMethod.Allocate, [attr(Attr.RequestedTransport, 17)]));
  if (allocated.class !== StunClass.SuccessResponse) throw new Error('Allocate failed');
  const bound = await ask(
    req(StunMethod.ChannelBind, [attr(Attr.ChannelNumber, 0x4000), attr(Attr.XorPeerAddress, { family: 'IPv4', address: '127.0.9.2', port: 9 })]),
  );
  if (bound.class !== StunClass.SuccessResponse) throw new Error('ChannelBind failed');
  const from: RemoteInfo = { ...client, port: (c.address() as { port: number }).port };
  c.close();
  stubSends();
  time('TURN on: Binding request', h, binding, from);
  time('TURN on: ChannelData 100 bytes, client -> peer', h, Buffer.from(encodeChannelData(0x4000, new Uint8Array(100))), from);
  time('TURN on: not STUN (first byte 0x16, dropped)', h, Buffer.from([0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), from);
  await server.close();
}
process.stdout.write(`(${sent} sends counted)\n`);
