// Server-reflexive gathering goes through the client's STUN transaction layer (issue 15,
// Structure): a Binding request from a host socket is retransmitted (200, 400 ms), a response
// whose FINGERPRINT does not verify is not taken (RFC 8489 section 14.7), and the candidate comes
// from the first valid response. The "STUN server" here is a scripted UDP socket on a loopback
// alias: it answers the first request with a forged response (a mapped address of its own and a
// broken FINGERPRINT), ignores the second, and answers the third properly.
import { type Socket, createSocket } from 'node:dgram';
import { type IceConnection, RendezvousClient, acceptPeers, connectPeer, generateIdentity } from '@nat/client';
import { Attr, StunClass, attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const STUN_IP = '127.0.15.61';
const FORGED = { family: 'IPv4', address: '127.0.15.98', port: 1111 } as const;
const MAPPED = { family: 'IPv4', address: '127.0.15.99', port: 4242 } as const;

let rv: RendezvousServer;
let stun: Socket;
let stunPort: number;
const requests: number[] = [];

function respond(request: Uint8Array, mapped: typeof MAPPED | typeof FORGED, breakFingerprint: boolean): Uint8Array {
  const m = decodeStunMessage(request);
  const bytes = encodeStunMessage(
    { method: m.method, class: StunClass.SuccessResponse, transactionId: m.transactionId, attributes: [attr(Attr.XorMappedAddress, mapped)] },
    { fingerprint: true },
  );
  if (breakFingerprint) bytes[bytes.length - 1]! ^= 0xff;
  return bytes;
}

beforeAll(async () => {
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
  stun = createSocket('udp4');
  stun.on('message', (msg, from) => {
    requests.push(performance.now());
    const n = requests.length;
    if (n === 1) stun.send(respond(msg, FORGED, true), from.port, from.address);
    else if (n === 3) stun.send(respond(msg, MAPPED, false), from.port, from.address);
  });
  await new Promise<void>((resolve) => stun.bind(0, STUN_IP, resolve));
  stunPort = stun.address().port;
});

afterAll(async () => {
  stun?.close();
  await rv?.close();
});

describe('server-reflexive gathering through the transaction layer', () => {
  it('retransmits the Binding request, refuses a response with a bad FINGERPRINT, and trickles the valid mapped address', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const trickled: string[] = [];
    bob.on('message', (m) => {
      if (m.type === 'candidate') trickled.push(m.candidate);
    });
    const accepted: IceConnection[] = [];
    const stop = acceptPeers(bob, (c) => accepted.push(c), { hostAddresses: ['127.0.0.1'], iceServers: [] });
    const started = performance.now();
    const conn = await connectPeer(alice, bob.id, { hostAddresses: ['127.0.0.1'], iceServers: [{ urls: `stun:${STUN_IP}:${stunPort}` }], relay: false });
    try {
      const deadline = Date.now() + 8000;
      while (!trickled.some((l) => l.includes(' typ srflx')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // no fourth request once answered (the transaction is over)
      await new Promise((r) => setTimeout(r, 1500));
      const srflx = trickled.filter((l) => l.includes(' typ srflx'));
      expect(srflx).toHaveLength(1);
      expect(srflx[0]).toMatch(/ 127\.0\.15\.99 4242 typ srflx raddr 127\.0\.0\.1 rport \d+$/);
      expect(trickled.some((l) => l.includes('127.0.15.98'))).toBe(false);
      expect(requests).toHaveLength(3);
      // retransmissions after 200 and 400 ms (timers never fire early; upper bounds are generous)
      expect(requests[0]! - started).toBeLessThan(5000);
      expect(requests[1]! - requests[0]!).toBeGreaterThanOrEqual(150);
      expect(requests[2]! - requests[1]!).toBeGreaterThanOrEqual(350);
      expect(requests[2]! - requests[0]!).toBeLessThan(5000);
    } finally {
      stop();
      await conn.close();
      await Promise.all(accepted.map((c) => c.close()));
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});
