// The client's ICE and rendezvous failures, as real failure paths throw them: an IceError (a
// NatClientError, not a StunClientError) when no pair works, a RendezvousError carrying the
// refusal code when the rendezvous says no. All on loopback, against our rendezvous service.
import { createSocket, type Socket } from 'node:dgram';
import {
  IceError,
  NatClientError,
  RendezvousClient,
  RendezvousError,
  StunClientError,
  connectPeer,
  connectionDiagnosis,
  generateIdentity,
  peerIdOf,
} from '@nat/client';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let rv: RendezvousServer;
let sink: Socket;

beforeAll(async () => {
  // no ICE servers: the peers have host candidates only
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
  // a UDP socket that takes every check and answers none: a candidate nobody can reach
  sink = createSocket('udp4');
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  sink?.close();
  await rv?.close();
});

describe('IceError', () => {
  it("rejects with IceError 'all-pairs-failed' when the only pair gets no answer to its checks", async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    // bob answers with one host candidate on the sink, then ends its candidates
    bob.on('message', (m) => {
      if (m.type !== 'offer') return;
      const to = m.from;
      const sessionId = m.sessionId;
      const candidates = [`candidate:1 1 udp 2130706431 127.0.0.1 ${sink.address().port} typ host`];
      bob.send({ type: 'answer', to, sessionId, ufrag: 'bobX', pwd: 'bobPasswordOf22CharsOrMore', candidates });
      bob.send({ type: 'end-of-candidates', to, sessionId });
    });
    try {
      // a failure timeout far beyond the checks' own budget: only the checks can end it
      const e = await connectPeer(alice, bob.id, { hostAddresses: ['127.0.0.1'], relay: false, agent: { failureTimeout: 60_000 } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(IceError);
      expect(e).toBeInstanceOf(NatClientError);
      expect(e).not.toBeInstanceOf(StunClientError);
      expect(e).toMatchObject({ name: 'IceError', code: 'all-pairs-failed', message: 'ICE failed: all-pairs-failed' });
      // what the connection saw comes with it: one host candidate each side
      expect(connectionDiagnosis(e)).toMatchObject({ local: { host: 1 }, remote: { host: 1 } });
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it("rejects with IceError 'no-remote-candidates' when the peer never answers", async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const mute = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const e = await connectPeer(alice, mute.id, { hostAddresses: ['127.0.0.1'], relay: false, agent: { failureTimeout: 1500 } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(IceError);
      expect(e).toMatchObject({ name: 'IceError', code: 'no-remote-candidates' });
    } finally {
      await Promise.all([alice.close(), mute.close()]);
    }
  });
});

describe('RendezvousError', () => {
  it('carries the refusal code of the rendezvous: unknown peer, name taken, unknown name, own id', async () => {
    const alice = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    const bob = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
    try {
      const offline = await connectPeer(alice, peerIdOf(generateIdentity()), { hostAddresses: ['127.0.0.1'], relay: false }).catch((x: unknown) => x);
      expect(offline).toBeInstanceOf(RendezvousError);
      expect(offline).not.toBeInstanceOf(StunClientError);
      expect(offline).toMatchObject({ name: 'RendezvousError', code: expect.stringMatching(/^(unknown-peer|peer-offline)$/) });
      expect(connectionDiagnosis(offline)).toBeDefined();

      await alice.claimName('errors-test-name');
      const taken = await bob.claimName('errors-test-name').catch((x: unknown) => x);
      expect(taken).toBeInstanceOf(RendezvousError);
      expect(taken).toMatchObject({ name: 'RendezvousError', code: 'name-taken' });
      await expect(bob.resolveName('nobody-claimed-this')).rejects.toMatchObject({ name: 'RendezvousError', code: 'unknown-name' });

      await expect(connectPeer(alice, alice.id)).rejects.toMatchObject({ name: 'RendezvousError', code: 'self' });
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it("refuses a registration: 'unauthorized' for a key not admitted, 'http-refused' without the invite token", async () => {
    const admitted = generateIdentity();
    const closed = await startRendezvous({ host: '127.0.0.1', port: 0, admission: { peerKeys: [peerIdOf(admitted)] } });
    const invite = await startRendezvous({ host: '127.0.0.1', port: 0, admission: { tokens: ['errors-test-token'] } });
    try {
      const stranger = await RendezvousClient.connect({ url: closed.url, identity: generateIdentity() }).catch((x: unknown) => x);
      expect(stranger).toBeInstanceOf(RendezvousError);
      expect(stranger).toMatchObject({
        name: 'RendezvousError',
        code: 'unauthorized',
        message: expect.stringMatching(/refused the registration: unauthorized/),
      });
      const noToken = await RendezvousClient.connect({ url: invite.url, identity: generateIdentity() }).catch((x: unknown) => x);
      expect(noToken).toBeInstanceOf(RendezvousError);
      expect(noToken).toMatchObject({ name: 'RendezvousError', code: 'http-refused', message: expect.stringMatching(/401/) });
      // the admitted key and the token still get in
      const ok = await RendezvousClient.connect({ url: closed.url, identity: admitted });
      await ok.close();
    } finally {
      await Promise.all([closed.close(), invite.close()]);
    }
  });
});
