/**
 * Service names on the rendezvous service: a name is bound to the key of the first peer that
 * claims it; another key cannot take it, even while the owner is away; anyone registered can
 * resolve it to the owner's peer id.
 */
import { RendezvousClient, generateIdentity } from '@nat/client';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, expect, it } from 'vitest';

let rv: RendezvousServer;
beforeAll(async () => {
  rv = await startRendezvous({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await rv?.close();
});

it('binds a name to the claiming key; others resolve it and cannot take it', async () => {
  const ownerId = generateIdentity();
  const owner = await RendezvousClient.connect({ url: rv.url, identity: ownerId });
  const thief = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
  try {
    expect(await owner.claimName('zeronet-home')).toEqual({ peerId: owner.id, online: true });
    expect(await owner.claimName('zeronet-home')).toEqual({ peerId: owner.id, online: true }); // idempotent
    await expect(thief.claimName('zeronet-home')).rejects.toMatchObject({ name: 'RendezvousError', code: 'name-taken' });
    expect(await thief.resolveName('zeronet-home')).toEqual({ peerId: owner.id, online: true });
    await expect(thief.resolveName('nobody-here')).rejects.toMatchObject({ code: 'unknown-name' });
    await expect(thief.claimName('Not A Label')).rejects.toMatchObject({ name: 'RendezvousError', code: 'bad-message' });
    await owner.close();
    // the owner is away: the name stays its own
    await expect(thief.claimName('zeronet-home')).rejects.toMatchObject({ code: 'name-taken' });
    expect(await thief.resolveName('zeronet-home')).toEqual({ peerId: owner.id, online: false });
    const back = await RendezvousClient.connect({ url: rv.url, identity: ownerId });
    expect(await back.claimName('zeronet-home')).toEqual({ peerId: owner.id, online: true });
    await back.close();
  } finally {
    await owner.close();
    await thief.close();
  }
});
