/**
 * The platform's ceiling for a TURN relay in Node: the data path of a relay and nothing else.
 * One client-facing node:dgram socket and, per client, one "relay" socket, all fixed at start.
 * A ChannelData message (RFC 8656 section 12.4) on channel 0x4000 + k from client k loses its
 * 4-byte header and leaves client k's relay socket for the relay socket of client k ^ 1; a
 * datagram arriving on client k's relay socket gets the header of channel 0x4000 + k and goes to
 * client k. That is the same path through the kernel as a TURN relay between two clients (two
 * receives and two sends per packet), with no allocations, permissions, channel lookups, expiry,
 * authentication or STUN: a yardstick, not a server. A client's address is learnt from its
 * first ChannelData (the load generator's --mode bare sends an empty one first).
 *
 * Usage: node --import tsx bench/turn/bare-forwarder.ts --listen 127.0.0.1 --port P [--clients 2] [--dns-lookup]
 * Prints "listening udp IP:PORT" on stderr when ready; exits on SIGINT/SIGTERM.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const listenIp = arg('--listen', '127.0.0.1');
const nclients = Number(arg('--clients', '2'));
if (!Number.isInteger(nclients) || nclients < 2 || nclients % 2 !== 0 || nclients > 512) {
  process.stderr.write('bare-forwarder: --clients must be an even number from 2 to 512\n');
  process.exit(2);
}
// Each send's IP literal is resolved synchronously, as nat-server does (udp-lookup.ts); with
// --dns-lookup, node:dgram's default: dns.lookup, which answers on the next tick.
const dnsLookup = process.argv.includes('--dns-lookup');
const open = (): Socket =>
  dnsLookup
    ? createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
    : createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: (address, _o, cb) => cb(null, address, 4) });

const front = open();
const relays: Socket[] = [];
const relayPorts: number[] = [];
const clientPorts: number[] = new Array<number>(nclients).fill(0);
const clientAddresses: string[] = new Array<string>(nclients).fill('');

front.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
  if (msg.length < 4) return;
  const k = ((msg[0]! << 8) | msg[1]!) - 0x4000;
  const length = (msg[2]! << 8) | msg[3]!;
  if (k < 0 || k >= nclients || 4 + length > msg.length) return;
  if (clientPorts[k] === 0) {
    clientPorts[k] = rinfo.port;
    clientAddresses[k] = rinfo.address;
  }
  if (length === 0) return;
  relays[k]!.send(msg.subarray(4, 4 + length), relayPorts[k ^ 1]!, listenIp);
});

function onRelay(k: number): (data: Buffer) => void {
  const hi = (0x4000 + k) >> 8;
  const lo = (0x4000 + k) & 0xff;
  return (data: Buffer) => {
    const port = clientPorts[k]!;
    if (port === 0) return;
    const out = Buffer.allocUnsafe(4 + data.length);
    out[0] = hi;
    out[1] = lo;
    out[2] = data.length >> 8;
    out[3] = data.length & 0xff;
    data.copy(out, 4);
    front.send(out, port, clientAddresses[k]!);
  };
}

function bind(socket: Socket, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: listenIp, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

async function main(): Promise<void> {
  for (let k = 0; k < nclients; k++) {
    const s = open();
    relayPorts.push(await bind(s, 0));
    s.on('message', onRelay(k));
    relays.push(s);
  }
  const port = await bind(front, Number(arg('--port', '3478')));
  for (const s of [front, ...relays]) s.on('error', (e) => process.stderr.write(`bare-forwarder: ${e.message}\n`));
  process.stderr.write(`listening udp ${listenIp}:${port}\n`);
}

const stop = (): void => {
  for (const s of relays) s.close();
  front.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
main().catch((e: unknown) => {
  process.stderr.write(`bare-forwarder: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
