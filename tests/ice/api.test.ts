// The public API of the ICE connection driver on loopback: server-reflexive candidates from a
// `mappedAddress` source (as a port-mapping helper will give them), checked through a real UDP
// port forward; and the async iterators (paths, data, events, acceptedConnections) with their
// AbortSignals.
import { type Socket, createSocket } from 'node:dgram';
import { type IceConnection, type IceConnectionEvent, RendezvousClient, acceptedConnections, connectPeer, generateIdentity } from '@nat/client';
import { type TransportAddress, parseCandidate } from '@nat/protocol';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let rv: RendezvousServer;
beforeAll(async () => {
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await rv?.close();
});

/**
 * A UDP port forward on 127.0.0.5, as a router's port mapping is: what arrives on its port goes
 * to `target` from a socket of its own per remote, and what `target` answers goes back out of
 * the forwarded port. Counts STUN success responses sent back out.
 */
async function portForward(target: TransportAddress): Promise<{ address: TransportAddress; successes: () => number; close: () => void }> {
  const bind = (ip: string): Promise<Socket> =>
    new Promise((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, ip, () => resolve(s));
    });
  const outside = await bind('127.0.0.5');
  // One inner socket per outside source; the map holds the bind in progress, so that a second
  // packet from the same source while the first bind runs does not open a second socket.
  const inner = new Map<string, Promise<Socket>>();
  let successes = 0;
  outside.on('message', (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let s = inner.get(key);
    if (s === undefined) {
      s = bind('127.0.0.5').then((sock) => {
        sock.on('message', (back) => {
          if (back.length >= 20 && back.readUInt16BE(0) === 0x0101) successes++; // Binding success
          outside.send(back, from.port, from.address);
        });
        return sock;
      });
      inner.set(key, s);
    }
    void s.then((sock) => sock.send(msg, target.port, target.address));
  });
  return {
    address: { family: 'IPv4', address: '127.0.0.5', port: outside.address().port },
    successes: () => successes,
    close: () => {
      outside.close();
      for (const s of inner.values()) void s.then((sock) => sock.close());
    },
  };
}

async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!pred() && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  return pred();
}

describe('mappedAddress: server-reflexive candidates from a port mapping', () => {
  it('gathers the mapped address as srflx of its base, trickles it, and checks through it succeed', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const forwards: Awaited<ReturnType<typeof portForward>>[] = [];
    const bases: TransportAddress[] = [];
    const srflx: string[] = [];
    bob.on('message', (m) => {
      if (m.type === 'candidate' && / typ srflx/.test(m.candidate)) srflx.push(m.candidate);
    });
    const ac = new AbortController();
    const accepted: IceConnection[] = [];
    void (async () => {
      for await (const c of acceptedConnections(bob, { signal: ac.signal, hostAddresses: ['127.0.0.1'], iceServers: [] })) accepted.push(c);
    })();
    const conn = await connectPeer(alice, bob.id, {
      hostAddresses: ['127.0.0.3'],
      iceServers: [],
      mappedAddress: async (base) => {
        bases.push(base);
        const f = await portForward(base);
        forwards.push(f);
        return f.address;
      },
    });
    try {
      expect(bases).toHaveLength(1);
      expect(bases[0]!.address).toBe('127.0.0.3');
      expect(await waitFor(() => srflx.length > 0, 2000)).toBe(true);
      const c = parseCandidate(srflx[0]!);
      expect(c).toMatchObject({
        type: 'srflx',
        address: '127.0.0.5',
        port: forwards[0]!.address.port,
        relatedAddress: '127.0.0.3',
        relatedPort: bases[0]!.port,
      });
      // bob's checks to the mapped address went through the forward and were answered
      expect(await waitFor(() => forwards[0]!.successes() > 0, 3000)).toBe(true);
    } finally {
      ac.abort();
      await conn.close();
      await Promise.all(accepted.map((a) => a.close()));
      for (const f of forwards) f.close();
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it('ignores a mapping source that fails or says nothing', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const ac = new AbortController();
    const it = acceptedConnections(bob, { signal: ac.signal, hostAddresses: ['127.0.0.1'], iceServers: [] });
    let calls = 0;
    const conn = await connectPeer(alice, bob.id, {
      hostAddresses: ['127.0.0.3', '127.0.0.4'],
      iceServers: [],
      mappedAddress: async (base) => {
        calls++;
        if (base.address === '127.0.0.3') throw new Error('no UPnP here');
        return undefined;
      },
    });
    const first = await it.next();
    try {
      expect(calls).toBe(2);
      expect(conn.path?.path).toBe('direct');
    } finally {
      ac.abort();
      await conn.close();
      if (!first.done) await first.value.close();
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});

describe('async iterators and signals', () => {
  it('paths, data and events iterate what happens; acceptedConnections ends with its signal', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const ac = new AbortController();
    const incoming = acceptedConnections(bob, { signal: ac.signal, hostAddresses: ['127.0.0.1'], iceServers: [] });
    const echoing = (async () => {
      const got: IceConnection[] = [];
      for await (const c of incoming) {
        got.push(c);
        void (async () => {
          for await (const d of c.data()) c.send(new Uint8Array([...d, 0x21]));
        })();
      }
      return got;
    })();
    const conn = await connectPeer(alice, bob.id, { hostAddresses: ['127.0.0.1'], iceServers: [] });
    const events: IceConnectionEvent[] = [];
    const collecting = (async () => {
      for await (const e of conn.events()) events.push(e);
    })();
    // paths() starts with the current path; a signal ends it
    const pathsAc = new AbortController();
    const paths = conn.paths({ signal: pathsAc.signal });
    const p = await paths.next();
    expect(p.done).toBe(false);
    expect(p.value).toEqual(conn.path);
    pathsAc.abort();
    expect((await paths.next()).done).toBe(true);

    const replies = conn.data();
    expect(conn.send(Buffer.from('one'))).toBe(true);
    expect(Buffer.from((await replies.next()).value as Uint8Array).toString()).toBe('one!');
    await replies.return?.();

    // acceptedConnections yielded bob's side and ends when its signal fires
    ac.abort();
    const accepted = await echoing;
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.peerId).toBe(alice.id);

    // the peer's bye: events ends with a close event after the data
    await accepted[0]!.close();
    await collecting;
    expect(events.some((e) => e.type === 'data' && Buffer.from(e.data).toString() === 'one!')).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'close', reason: 'bye' });
    // a closed connection's iterators end at once
    expect((await conn.paths().next()).done).toBe(true);
    await Promise.all([alice.close(), bob.close()]);
  });
});
