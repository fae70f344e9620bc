/**
 * Two peers of the loopback ICE tests: alice connects (controlling) to bob, who accepts every
 * offer and echoes data back with a `!` appended; and the echo round trip itself.
 */
import { type IceConnection, type IceConnectionOptions, RendezvousClient, acceptPeers, connectPeer, generateIdentity } from '@nat/client';
import type { AnswerMessage, OfferMessage } from '@nat/protocol';
import { expect } from 'vitest';

/** Registers alice and bob at `url`; bob accepts with `bobOptions` and echoes; alice connects with `aliceOptions`. */
export async function connectPair(url: string, aliceOptions: IceConnectionOptions, bobOptions: IceConnectionOptions = aliceOptions) {
  const alice = await RendezvousClient.connect({ url, identity: generateIdentity() });
  const bob = await RendezvousClient.connect({ url, identity: generateIdentity() });
  const offers: OfferMessage[] = [];
  const answers: AnswerMessage[] = [];
  alice.on('message', (m) => {
    if (m.type === 'answer') answers.push(m);
  });
  bob.on('message', (m) => {
    if (m.type === 'offer') offers.push(m);
  });
  const accepted: IceConnection[] = [];
  const stop = acceptPeers(
    bob,
    (c) => {
      accepted.push(c);
      c.on('data', (d) => c.send(new Uint8Array([...d, 0x21])));
    },
    bobOptions,
  );
  const started = performance.now();
  const conn = await connectPeer(alice, bob.id, aliceOptions);
  const connectMs = performance.now() - started;
  const cleanup = async (): Promise<void> => {
    stop();
    await conn.close();
    await Promise.all(accepted.map((c) => c.close()));
    await Promise.all([alice.close(), bob.close()]);
  };
  return { alice, bob, conn, accepted, offers, answers, connectMs, cleanup };
}

/** Sends `text` and waits (3 s at most) for the echo, with the `!` the echoing side appends. */
export function echo(conn: IceConnection, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo')), 3000);
    const onData = (d: Uint8Array): void => {
      clearTimeout(timer);
      conn.off('data', onData);
      resolve(Buffer.from(d).toString());
    };
    conn.on('data', onData);
    expect(conn.send(Buffer.from(text))).toBe(true);
  });
}
